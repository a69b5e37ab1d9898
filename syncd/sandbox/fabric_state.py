"""The fabric Marketplace the simulator serves (seed 003 + supplier brief).

One retailer and one brand (the syncd user, a supplier in fabric's terms).
Every variant the brand publishes on fabric is an *inventory item* with two
ids that must not be confused: fabric's inventory-item id (the supplier
write key, ``fabric_inventory_id`` in the catalog) and the variant id
(retailer paths, order lines; seed 003 L4864, L4985). ``brand_identifier``
is the brand's fabric SKU; ``identifier`` is the retailer's SKU for a share
of the items (seed 003 L2566 vs L2127), so a client keying on it is caught.

Inventory is "managed" (L4896): placing an order decrements the item's
inventory and stamps ``inventory_updated_at`` (brief §4, [EXT]). An order
line asking for more than the item's inventory is refused unless
``allow_oversell`` (fabric only sells what it shows; the oversell is then
counted). Cancelling does not give units back: the brand's next absolute
submission is what corrects fabric (decision; the documents are silent).
A supplier write below zero is stored as 0 (fabric's Oct 2024 release note,
brief §4) and counted in ``clamped_writes``.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Mapping
from typing import Any

from syncd.sandbox.catalog import SandboxCatalog
from syncd.sandbox.fabric_model import (
    FabricItem,
    FabricLine,
    FabricOrder,
    brand_json,
    item_json,
    order_json,
    variant_json,
)
from syncd.sandbox.limits import SimClock
from syncd.sandbox.simkit import Counters, TokenStore, iso_utc

TOKEN_LIFETIME = 36_000
"""10 hours (seed 003 L41, L1482)."""
DEFAULT_RATE_LIMIT = 60
"""Requests per minute; fabric documents none (brief §2.3)."""
DEFAULT_PAGE_SIZE = 50
"""No page size is documented; DRF-style page-number paging ([EXT] ``?page=N``)."""
VARIANT_ID_OFFSET = 5_000_000
DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a loopback simulator's fixed credential


class FabricState:
    """Inventory items, orders and credentials of the simulated marketplace. Thread-safe."""

    def __init__(
        self,
        catalog: SandboxCatalog,
        *,
        retailer_id: int = 500,
        brand_id: int = 510,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        token_lifetime: int = TOKEN_LIFETIME,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        page_size: int = DEFAULT_PAGE_SIZE,
        clock: SimClock | None = None,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.clock = clock or SimClock()
        self.retailer_id = retailer_id
        self.brand_id = brand_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.rate_limit = rate_limit
        self.page_size = page_size
        self.tokens = TokenStore(self.clock, token_lifetime)
        self.counters = Counters()
        self.lock = threading.RLock()
        self.items: dict[int, FabricItem] = {}
        self.orders: dict[int, FabricOrder] = {}
        self._by_sku: dict[str, int] = {}
        self._by_variant: dict[int, int] = {}
        self.clamped_writes = 0
        self.rejected_orders = 0
        self.oversold_units = 0
        self._ids = itertools.count(1015)  # the seed's sample order id (L4994)
        self._line_ids = itertools.count(1025)  # sample line id (L5150)
        self._event_ids = itertools.count(1000)  # shipments / cancels (L5860)
        self._seed(catalog)

    def _seed(self, catalog: SandboxCatalog) -> None:
        # Not for security: seeded so every sandbox run starts identical.
        rng = random.Random(catalog.seed * 104_729 + 3)  # noqa: S311
        # Stale levels from an earlier brand submission, three days back:
        # syncd's first pushes have to correct them.
        stale = self.clock.now() - 3 * 86_400
        published: list[tuple[str, str, int, str]] = [
            (v.sku, v.fabric_sku, v.fabric_inventory_id, v.barcode)
            for v in catalog.variants
            if "fabric" in v.channels
        ]
        published += [
            (b.sku, b.fabric_sku, b.fabric_inventory_id, b.barcode)
            for b in catalog.bundles
            if "fabric" in b.channels
        ]
        for sku, fabric_sku, inventory_id, barcode in published:
            level = rng.randint(0, 30)
            mapped = rng.random() < 0.2
            self.items[inventory_id] = FabricItem(
                inventory_id=inventory_id,
                variant_id=inventory_id + VARIANT_ID_OFFSET,
                brand_sku=sku,
                brand_identifier=fabric_sku,
                identifier=f"RTL-{fabric_sku}" if mapped else fabric_sku,
                upc=barcode,
                name=f"Product {sku}",
                inventory=level,
                inventory_updated_at=stale,
                brand_inventory_updated_at=stale,
                last_submitted=level,
            )
            self._by_sku[sku] = inventory_id
            self._by_sku[fabric_sku] = inventory_id
            self._by_variant[inventory_id + VARIANT_ID_OFFSET] = inventory_id

    # --- lookups -------------------------------------------------------------

    def item(self, key: str | int) -> FabricItem:
        """An item by brand SKU, fabric SKU (``brand_identifier``) or inventory id."""
        with self.lock:
            inventory_id = key if isinstance(key, int) else self._by_sku.get(key)
            if inventory_id is None or inventory_id not in self.items:
                raise KeyError(f"unknown fabric item {key!r}")
            return self.items[inventory_id]

    def item_by_variant(self, variant_id: int) -> FabricItem:
        with self.lock:
            inventory_id = self._by_variant.get(variant_id)
            if inventory_id is None:
                raise KeyError(f"unknown variant {variant_id}")
            return self.items[inventory_id]

    def inventory(self, key: str | int) -> int:
        """What fabric shows for an item now (managed, order-decremented)."""
        with self.lock:
            return self.item(key).inventory

    # --- supplier writes -------------------------------------------------------

    def submit_inventory(self, key: str | int, value: int) -> FabricItem:
        """The brand sets an absolute level; below zero becomes 0 (and is counted)."""
        with self.lock:
            item = self.item(key)
            if value < 0:
                self.clamped_writes += 1
                value = 0
            now = self.clock.now()
            item.inventory = value
            item.last_submitted = value
            item.inventory_updated_at = now
            item.brand_inventory_updated_at = now
            return item

    # --- orders ----------------------------------------------------------------

    def place_order(
        self,
        lines: Mapping[str | int, int],
        *,
        purchase_order_number: str | None = None,
        allow_oversell: bool = False,
        price: str = "35.00",
    ) -> FabricOrder:
        """A retailer order: all lines or none (seed 003 L4991); decrements inventory."""
        if not lines:
            raise ValueError("an order needs at least one line")
        with self.lock:
            order_id = next(self._ids)
            po_number = purchase_order_number or f"PO{order_id:07d}"
            if any(o.purchase_order_number == po_number for o in self.orders.values()):
                raise ValueError(f"order with purchase_order_number {po_number!r} already exists")
            wanted: list[tuple[FabricItem, int]] = []
            for key, quantity in lines.items():
                if quantity <= 0:
                    raise ValueError(f"quantity for {key!r} must be > 0")
                wanted.append((self.item(key), quantity))
            short = [item for item, quantity in wanted if quantity > item.inventory]
            if short and not allow_oversell:
                self.rejected_orders += 1
                names = ", ".join(item.brand_identifier for item in short)
                raise ValueError(f"insufficient inventory for {names}")
            now = self.clock.now()
            order_lines: list[FabricLine] = []
            for number, (item, quantity) in enumerate(wanted, start=1):
                self.oversold_units += max(0, quantity - item.inventory)
                item.inventory = max(0, item.inventory - quantity)
                item.inventory_updated_at = now
                order_lines.append(
                    FabricLine(
                        line_id=next(self._line_ids),
                        order_line_number=f"{number:05d}",
                        inventory_id=item.inventory_id,
                        quantity=quantity,
                        price=price,
                    )
                )
            order = FabricOrder(
                order_id=order_id,
                purchase_order_number=po_number,
                customer_order_number=f"CO{order_id:07d}",
                retailer_order_number=str(order_id),
                ordered_at=now,
                received_at=now,
                updated_at=now,
                lines=order_lines,
            )
            self.orders[order_id] = order
            return order

    def ship_lines(self, order_id: int, quantities: Mapping[int, int] | None = None) -> FabricOrder:
        """Ship ``{line_id: units}`` (default: everything open) in one shipment."""
        with self.lock:
            order, chosen = self._chosen_lines(order_id, quantities)
            now = self.clock.now()
            shipment_lines = []
            for line, quantity in chosen:
                line.quantity_shipped += quantity
                shipment_lines.append(
                    {
                        "id": next(self._event_ids),
                        "order_line_number": line.order_line_number,
                        "quantity": quantity,
                        "variant": variant_json(self.items[line.inventory_id], self.brand_json()),
                    }
                )
            order.shipments.append(
                {
                    "id": next(self._event_ids),
                    "order_id": order.order_id,
                    "status": "closed",
                    "shipped_at": iso_utc(now),
                    "shipment_lines": shipment_lines,
                }
            )
            self._settle(order, now)
            return order

    def cancel_lines(
        self, order_id: int, quantities: Mapping[int, int] | None = None
    ) -> FabricOrder:
        """Cancel ``{line_id: units}`` (default: everything open). Inventory is not restored."""
        with self.lock:
            order, chosen = self._chosen_lines(order_id, quantities)
            now = self.clock.now()
            cancel_lines = []
            for line, quantity in chosen:
                line.quantity_canceled += quantity
                if line.quantity_open == 0 and line.quantity_shipped == 0:
                    line.canceled_at = now
                cancel_lines.append(
                    {"order_line_number": line.order_line_number, "quantity": quantity}
                )
            order.cancels.append(
                {
                    "id": next(self._event_ids),
                    "canceled_at": iso_utc(now),
                    "cancel_lines": cancel_lines,
                }
            )
            self._settle(order, now)
            return order

    def _chosen_lines(
        self, order_id: int, quantities: Mapping[int, int] | None
    ) -> tuple[FabricOrder, list[tuple[FabricLine, int]]]:
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(f"unknown order {order_id}")
        by_id = {line.line_id: line for line in order.lines}
        if quantities is None:
            chosen = [(line, line.quantity_open) for line in order.lines if line.quantity_open]
        else:
            chosen = []
            for line_id, quantity in quantities.items():
                line = by_id.get(line_id)
                if line is None:
                    raise KeyError(f"order {order_id} has no line {line_id}")
                if not 0 < quantity <= line.quantity_open:
                    raise ValueError(
                        f"line {line_id}: {quantity} is not within its {line.quantity_open} open units"
                    )
                chosen.append((line, quantity))
        if not chosen:
            raise ValueError(f"order {order_id} has nothing open")
        return order, chosen

    @staticmethod
    def _settle(order: FabricOrder, now: float) -> None:
        order.updated_at = now
        if order.status == "open":
            return
        order.closed_at = order.closed_at or now
        if all(line.quantity_canceled == 0 for line in order.lines):
            order.fulfilled_at = order.fulfilled_at or now
        if order.status == "canceled":
            order.canceled_at = order.canceled_at or now

    # --- JSON views ------------------------------------------------------------

    def brand_json(self) -> dict[str, Any]:
        return brand_json(self.brand_id)

    def item_json(self, item: FabricItem, *, supplier: bool = False) -> dict[str, Any]:
        return item_json(item, self.brand_json(), supplier=supplier)

    def order_json(self, order: FabricOrder) -> dict[str, Any]:
        return order_json(order, self.items, self.retailer_id, self.brand_json())

    def revoke_tokens(self) -> int:
        return self.tokens.revoke_all()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "api": "fabric",
                "now": iso_utc(self.clock.now()),
                "retailerId": self.retailer_id,
                "brandId": self.brand_id,
                "rateLimitPerMinute": self.rate_limit,
                "pageSize": self.page_size,
                "liveTokens": self.tokens.live(),
                "tokensIssued": self.tokens.issued,
                "clampedWrites": self.clamped_writes,
                "rejectedOrders": self.rejected_orders,
                "oversoldUnits": self.oversold_units,
                "items": {
                    item.brand_sku: self.item_json(item, supplier=True)
                    | {"brand_sku": item.brand_sku, "last_submitted": item.last_submitted}
                    for item in sorted(self.items.values(), key=lambda i: i.inventory_id)
                },
                "orders": {str(oid): self.order_json(o) for oid, o in sorted(self.orders.items())},
                "counters": self.counters.snapshot(),
            }
