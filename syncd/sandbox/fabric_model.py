"""Records of the fabric simulator and their JSON, shaped after seed 003's samples.

Pure data: no locking, no clock. :mod:`syncd.sandbox.fabric_state` owns
the behaviour (orders decrement inventory, supplier writes) and calls these
renderers under its lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.sandbox.simkit import iso_utc


def _opt_iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else iso_utc(timestamp)


@dataclass(slots=True)
class FabricItem:
    inventory_id: int
    """fabric's inventory-item id: the supplier write key (brief §1)."""
    variant_id: int
    """The variant id of retailer paths and order lines (seed 003 L4864, L4985)."""
    brand_sku: str
    """syncd's SKU (not visible to fabric; kept for the admin view)."""
    brand_identifier: str
    identifier: str
    upc: str
    name: str
    inventory: int
    inventory_updated_at: float | None
    brand_inventory_updated_at: float | None
    last_submitted: int | None
    sellable: bool = True
    discontinued: bool = False
    estimated_availability_date: str | None = None


@dataclass(slots=True)
class FabricLine:
    line_id: int
    order_line_number: str
    inventory_id: int
    quantity: int
    price: str
    quantity_shipped: int = 0
    quantity_canceled: int = 0
    canceled_at: float | None = None

    @property
    def quantity_open(self) -> int:
        return self.quantity - self.quantity_shipped - self.quantity_canceled

    @property
    def status(self) -> str:
        """``open`` while units are open (L5177), then ``closed`` or ``canceled``."""
        if self.quantity_open > 0:
            return "open"
        return "closed" if self.quantity_shipped > 0 else "canceled"


@dataclass(slots=True)
class FabricOrder:
    order_id: int
    purchase_order_number: str
    customer_order_number: str
    retailer_order_number: str
    ordered_at: float
    received_at: float
    updated_at: float
    lines: list[FabricLine]
    shipments: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[dict[str, Any]] = field(default_factory=list)
    closed_at: float | None = None
    fulfilled_at: float | None = None
    canceled_at: float | None = None

    @property
    def status(self) -> str:
        statuses = {line.status for line in self.lines}
        if "open" in statuses:
            return "open"
        return "closed" if "closed" in statuses else "canceled"


def brand_json(brand_id: int) -> dict[str, Any]:
    return {"id": brand_id, "code": "syncd-brand", "name": "syncd Sandbox Brand"}


def variant_json(item: FabricItem, brand: dict[str, Any]) -> dict[str, Any]:
    """The ``variant`` object of inventory positions and order lines (L4882-4895)."""
    return {
        "id": item.variant_id,
        "name": item.name,
        "brand": brand,
        "identifier": item.identifier,
        "brand_identifier": item.brand_identifier,
        "upc": item.upc,
        "retailer_identifiers": [],
        "retailer_price": "9.99",
    }


def item_json(item: FabricItem, brand: dict[str, Any], *, supplier: bool = False) -> dict[str, Any]:
    """An inventory position (seed 003 L4881-4915); the supplier view adds the item ``id``."""
    body: dict[str, Any] = {"id": item.inventory_id} if supplier else {}
    body |= {
        "variant": variant_json(item, brand),
        "inventory_policy": "managed",
        "inventory": item.inventory,
        "inventory_updated_at": _opt_iso(item.inventory_updated_at),
        "inventory_last_submitted_at": _opt_iso(item.brand_inventory_updated_at),
        "brand_inventory_updated_at": _opt_iso(item.brand_inventory_updated_at),
        "discontinued": item.discontinued,
        "discontinued_updated_at": None,
        "replenishable": None,
        "sellable": "Yes" if item.sellable else "No",
        "sellable_updated_at": None,
        "estimated_availability_date": item.estimated_availability_date,
        "locations": [
            {"id": 1, "address": None, "inventory": item.inventory, "nickname": "Warehouse"}
        ],
    }
    return body


def order_json(
    order: FabricOrder, items: Mapping[int, FabricItem], retailer_id: int, brand: dict[str, Any]
) -> dict[str, Any]:
    """An order (seed 003 L4992-5181): the fields a client reads, same names and types."""
    return {
        "id": order.order_id,
        "customer_order_number": order.customer_order_number,
        "purchase_order_number": order.purchase_order_number,
        "retailer_order_number": order.retailer_order_number,
        "brand_identifier": None,
        "retailer": {"id": retailer_id, "name": "Sandbox Store", "code": "sandbox-store"},
        "brand": brand | {"inventory_policy": "managed"},
        "connection_id": 4,
        "status": order.status,
        "is_acknowledged": False,
        "ordered_at": iso_utc(order.ordered_at),
        "acknowledged_at": None,
        "fulfill_by": iso_utc(order.received_at + 5 * 86_400),
        "fulfilled_at": _opt_iso(order.fulfilled_at),
        "closed_at": _opt_iso(order.closed_at),
        "received_at": iso_utc(order.received_at),
        "is_on_hold": False,
        "backordered_until": None,
        "canceled_at": _opt_iso(order.canceled_at),
        "updated_at": iso_utc(order.updated_at),
        "order_lines": [
            {
                "id": line.line_id,
                "order_line_number": line.order_line_number,
                "quantity": line.quantity,
                "quantity_open": line.quantity_open,
                "quantity_shipped": line.quantity_shipped,
                "quantity_returned": 0,
                "quantity_canceled": line.quantity_canceled,
                "quantity_invoiced": 0,
                "price": line.price,
                "status": line.status,
                "canceled_at": _opt_iso(line.canceled_at),
                "backordered_until": None,
                "variant": variant_json(items[line.inventory_id], brand),
            }
            for line in order.lines
        ],
        "cancels": list(order.cancels),
        "shipments": list(order.shipments),
    }
