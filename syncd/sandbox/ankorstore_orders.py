"""Ankorstore internal orders in the simulator: lifecycle and reservations.

Status flow (seed 000 L3274-3296, plus the documented reversals L3336, L3494)::

    ankor_confirmed -> brand_confirmed | rejected | cancelled
    brand_confirmed -> shipped | shipping_labels_generated | fulfillment_requested
                       | cancelled | ankor_confirmed (reverted by Ankorstore)
    shipping_labels_generated -> shipped | brand_confirmed (labels reset) | cancelled
    fulfillment_requested -> shipped | cancelled
    rejected -> cancelled | ankor_confirmed
    shipped -> received | reception_refused;  reception_refused -> received | cancelled
    received -> invoiced -> brand_paid

What the simulator does to the variant's stock (the seed never says which
orders feed ``reservedQuantity``, brief seed-ankorstore-orders 8.2 #3-4; this
is the reading of brief 2.3, which syncd's reservation logic also uses):

- an order in a *holding* status (``ankor_confirmed``, ``brand_confirmed``,
  ``shipping_labels_generated``, ``fulfillment_requested``) adds its items'
  ``multipliedQuantity`` (pieces) to ``reservedQuantity``; ``stockQuantity``
  is unchanged, so ``availableQuantity`` drops by the same amount;
- holding -> ``shipped``: the reservation is released and ``stockQuantity``
  drops by the shipped pieces (the goods left the warehouse);
- holding -> ``rejected``/``cancelled``: the reservation is released and
  ``stockQuantity`` is unchanged (the goods are available again);
- anything after ``shipped`` (received, refused, cancelled after refusal)
  changes no stock: the return of refused goods is undocumented.

Item ``quantity`` counts packs and ``multipliedQuantity`` pieces (seed 000
L5936; spec Order Item Resource).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syncd.sandbox.jsonapi_sim import iso_micro, iso_offset

if TYPE_CHECKING:
    from syncd.sandbox.ankorstore_stock import SimListing

HOLDING = frozenset(
    {"ankor_confirmed", "brand_confirmed", "shipping_labels_generated", "fulfillment_requested"}
)
CONSUMED = frozenset({"shipped", "received", "reception_refused", "invoiced", "brand_paid"})
RELEASED = frozenset({"rejected", "cancelled"})
STATUSES = HOLDING | CONSUMED | RELEASED

TRANSITIONS: Mapping[str, frozenset[str]] = {
    "ankor_confirmed": frozenset({"brand_confirmed", "rejected", "cancelled"}),
    "brand_confirmed": frozenset(
        {
            "shipped",
            "shipping_labels_generated",
            "fulfillment_requested",
            "cancelled",
            "ankor_confirmed",
        }
    ),
    "shipping_labels_generated": frozenset({"shipped", "brand_confirmed", "cancelled"}),
    "fulfillment_requested": frozenset({"shipped", "cancelled"}),
    "rejected": frozenset({"cancelled", "ankor_confirmed"}),
    "shipped": frozenset({"received", "reception_refused"}),
    "reception_refused": frozenset({"received", "cancelled"}),
    "received": frozenset({"invoiced"}),
    "invoiced": frozenset({"brand_paid"}),
    "brand_paid": frozenset(),
    "cancelled": frozenset(),
}

ORDER_INCLUDES = frozenset(
    {
        "retailer",
        "billingItems",
        "orderItems",
        "orderItems.productVariant",
        "orderItems.productVariant.product",
    }
)


class OrderError(ValueError):
    """A state method was asked for something the order flow does not allow."""


@dataclass(slots=True)
class SimOrderItem:
    id: str
    listing_id: str
    quantity: int
    """Packs ordered (seed 000 L5936)."""
    unit_multiplier: int
    unit_price: int

    @property
    def multiplied_quantity(self) -> int:
        """Pieces: ``quantity`` x the product's ``unitMultiplier``."""
        return self.quantity * self.unit_multiplier


@dataclass(slots=True)
class SimOrder:
    id: str
    master_order_id: str
    reference: int
    retailer_id: str
    status: str
    items: list[SimOrderItem]
    submitted_at: float
    updated_at: float
    shipped_at: float | None = None
    shipping_method: str | None = None
    history: list[str] = field(default_factory=list)

    def pieces_by_listing(self) -> dict[str, int]:
        pieces: dict[str, int] = {}
        for item in self.items:
            pieces[item.listing_id] = pieces.get(item.listing_id, 0) + item.multiplied_quantity
        return pieces


class OrderBook:
    """The orders of one simulated brand and their effect on variant stock.

    Not thread-safe on its own: :class:`~syncd.sandbox.ankorstore_state.AnkorstoreState`
    calls it under its lock.
    """

    def __init__(self, seed: int) -> None:
        self._orders: dict[str, SimOrder] = {}
        self._sequence: list[str] = []
        self._rng_seed = seed
        self._next_reference = 3_434_000_000

    def _uuid(self, kind: str, index: int) -> str:
        return str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"ankorstore-sim/{self._rng_seed}/{kind}/{index}")
        )

    def get(self, order_id: str) -> SimOrder:
        try:
            return self._orders[order_id]
        except KeyError:
            raise OrderError(f"unknown order {order_id!r}") from None

    def newest_first(self) -> list[SimOrder]:
        """Listing order: newest submitted first, so new orders never shift a cursor."""
        return [self._orders[i] for i in reversed(self._sequence)]

    def place(
        self,
        lines: list[tuple[SimListing, int]],
        *,
        status: str,
        now: float,
        force: bool,
        retailer_id: str | None = None,
    ) -> SimOrder:
        if status not in HOLDING:
            raise OrderError(f"a new order starts in a holding status, not {status!r}")
        if not lines:
            raise OrderError("an order needs at least one line")
        for listing, packs in lines:
            if packs < 1:
                raise OrderError(f"{listing.sku}: an order line needs at least one pack")
            pieces = packs * listing.unit_multiplier
            if not force and not listing.can_reserve(pieces):
                raise OrderError(
                    f"{listing.sku}: {pieces} pieces ordered but only "
                    f"{listing.available_quantity} available"
                )
        index = len(self._sequence)
        items = [
            SimOrderItem(
                id=self._uuid("item", index * 1000 + n),
                listing_id=listing.id,
                quantity=packs,
                unit_multiplier=listing.unit_multiplier,
                unit_price=listing.wholesale_price,
            )
            for n, (listing, packs) in enumerate(lines)
        ]
        order = SimOrder(
            id=self._uuid("order", index),
            master_order_id=self._uuid("master", index),
            reference=self._next_reference + index,
            retailer_id=retailer_id or self._uuid("retailer", index % 7),
            status=status,
            items=items,
            submitted_at=now,
            updated_at=now,
            history=[status],
        )
        for (listing, _), item in zip(lines, items, strict=True):
            listing.reserved_quantity += item.multiplied_quantity
            listing.updated_at = now
        self._orders[order.id] = order
        self._sequence.append(order.id)
        return order

    def advance(
        self,
        order_id: str,
        status: str,
        listings: Mapping[str, SimListing],
        *,
        now: float,
        force: bool = False,
    ) -> SimOrder:
        """Move an order to ``status`` and apply the stock effect described above."""
        order = self.get(order_id)
        if status not in STATUSES:
            raise OrderError(f"unknown order status {status!r}")
        if not force and status not in TRANSITIONS[order.status]:
            raise OrderError(f"order {order_id} cannot go from {order.status} to {status}")
        before, after = order.status, status
        pieces = order.pieces_by_listing()
        for listing_id, quantity in pieces.items():
            listing = listings[listing_id]
            if before in HOLDING and after in CONSUMED:
                listing.reserved_quantity -= quantity
                if listing.stock_quantity is not None:
                    listing.stock_quantity = max(0, listing.stock_quantity - quantity)
            elif before in HOLDING and after in RELEASED:
                listing.reserved_quantity -= quantity
            elif before in RELEASED and after in HOLDING:
                listing.reserved_quantity += quantity
            listing.updated_at = now
        if after in CONSUMED and order.shipped_at is None:
            order.shipped_at = now
            order.shipping_method = order.shipping_method or "custom"
        if after == "shipping_labels_generated":
            order.shipping_method = "ankorstore"
        order.status = after
        order.updated_at = now
        order.history.append(after)
        return order

    def reduce(
        self,
        order_id: str,
        packs_by_listing: Mapping[str, int],
        listings: Mapping[str, SimListing],
        *,
        now: float,
    ) -> SimOrder:
        """Brand accepts with smaller quantities (seed 000 L3354-3392): never larger, never all zero."""
        order = self.get(order_id)
        if order.status != "ankor_confirmed":
            raise OrderError("quantities can only be changed while the order is ankor_confirmed")
        new = {
            item.id: packs_by_listing.get(item.listing_id, item.quantity) for item in order.items
        }
        for item in order.items:
            if new[item.id] < 0 or new[item.id] > item.quantity:
                raise OrderError("a quantity can only be reduced, never raised")
        if not any(new.values()):
            raise OrderError("an order cannot lose every line; reject it instead")
        for item in order.items:
            released = (item.quantity - new[item.id]) * item.unit_multiplier
            listings[item.listing_id].reserved_quantity -= released
            item.quantity = new[item.id]
        order.items = [i for i in order.items if i.quantity > 0]
        return self.advance(order_id, "brand_confirmed", listings, now=now)

    def all(self) -> list[SimOrder]:
        return [self._orders[i] for i in self._sequence]


# --- rendering -------------------------------------------------------------------


def order_resource(order: SimOrder, *, single: bool) -> dict[str, Any]:
    """An Order Resource (spec ``/api/v1/orders``; seed 000 L4852-5006)."""
    total = sum(i.quantity * i.unit_price * i.unit_multiplier for i in order.items)
    attributes: dict[str, Any] = {
        "masterOrderId": order.master_order_id,
        "status": order.status,
        "reference": order.reference,
        "brandCurrency": "EUR",
        "brandNetAmount": total * 80 // 100,
        "brandTotalAmount": total,
        "brandTotalAmountVat": total // 5,
        "brandTotalAmountWithVat": total + total // 5,
        "shippingMethod": order.shipping_method,
        "brandRejectReason": None,
        "retailerRejectReason": None,
        "retailerCancellationRequestReason": None,
        "billingName": "Sandbox Retailer",
        "billingOrganisationName": "Sandbox Shop",
        "billingStreet": "Kortricklaan 101",
        "billingPostalCode": "8121 GW",
        "billingCity": "Arnhem",
        "billingCountryCode": "NL",
        "submittedAt": iso_offset(order.submitted_at),
        "shippedAt": iso_offset(order.shipped_at) if order.shipped_at else None,
        "brandPaidAt": None,
        "createdAt": iso_offset(order.submitted_at),
        "updatedAt": iso_offset(order.updated_at),
    }
    if single:
        # shippingOverview is "ONLY included when fetching a single order" (seed 000 L3308-3310).
        attributes["shippingOverview"] = {
            "availableShippingMethods": ["ankorstore", "custom"],
            "shipToAddress": {
                "name": "Sandbox Retailer",
                "organisationName": "Sandbox Shop",
                "street": "Kortricklaan 101",
                "city": "Arnhem",
                "postalCode": "8121 GW",
                "countryCode": "NL",
            },
            "expectedShippingDates": {
                "minimum": iso_offset(order.submitted_at + 86_400),
                "maximum": iso_offset(order.submitted_at + 5 * 86_400),
            },
        }
    return {
        "type": "orders",
        "id": order.id,
        "attributes": attributes,
        "relationships": {
            "retailer": {"data": {"type": "retailers", "id": order.retailer_id}},
            "billingItems": {"data": []},
            "orderItems": {
                "data": [{"type": "order-items", "id": item.id} for item in order.items]
            },
        },
    }


def order_item_resource(item: SimOrderItem, order: SimOrder) -> dict[str, Any]:
    amount = item.quantity * item.unit_multiplier * item.unit_price
    return {
        "type": "order-items",
        "id": item.id,
        "attributes": {
            "brandCurrency": "EUR",
            "quantity": item.quantity,
            "multipliedQuantity": item.multiplied_quantity,
            "vatRate": 20.0,
            "brandAmount": amount,
            "brandAmountVat": amount // 5,
            "brandAmountWithVat": amount + amount // 5,
            "brandUnitPrice": item.unit_price,
            "createdAt": iso_micro(order.submitted_at),
            "updatedAt": iso_micro(order.updated_at),
        },
        # The spec declares only ``productOptions`` here, yet the documented
        # include path is orderItems.productVariant (seed 000 L3258): the
        # simulator serves the variant relationship a client needs.
        "relationships": {
            "productVariant": {"data": {"type": "product-variants", "id": item.listing_id}}
        },
    }


def retailer_resource(retailer_id: str) -> dict[str, Any]:
    return {
        "type": "retailers",
        "id": retailer_id,
        "attributes": {
            "companyName": "Sandbox Shop BV",
            "storeName": "Sandbox Shop",
            "email": "retailer@example.com",
            "firstName": "Sam",
            "lastName": "Box",
        },
    }


def parse_includes(raw: str | None) -> set[str]:
    """``include`` as a set; ``orderItems.productVariant`` implies ``orderItems`` (L3258)."""
    if not raw:
        return set()
    tokens = {t.strip() for t in raw.split(",") if t.strip()}
    if any(t.startswith("orderItems.") for t in tokens):
        tokens.add("orderItems")
    if "orderItems.productVariant.product" in tokens:
        tokens.add("orderItems.productVariant")
    return tokens


def order_included(
    orders: list[SimOrder], includes: set[str], listings: Mapping[str, SimListing]
) -> list[dict[str, Any]]:
    """The compound document's ``included`` for ``orders``, de-duplicated by (type, id)."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []

    def add(resource: dict[str, Any]) -> None:
        key = (resource["type"], resource["id"])
        if key not in seen:
            seen.add(key)
            out.append(resource)

    for order in orders:
        if "retailer" in includes:
            add(retailer_resource(order.retailer_id))
        if "orderItems" in includes:
            for item in order.items:
                add(order_item_resource(item, order))
        if "orderItems.productVariant" in includes:
            for item in order.items:
                listing = listings[item.listing_id]
                add(listing.to_resource())
                if "orderItems.productVariant.product" in includes:
                    add(listing.product_resource())
    return out
