"""Order-feed cases of the source contract: Ankorstore, fabric and FashionTrade orders.

An order feed's observations are the open reservation lines the ledger
holds for its channel, ``(order_ref, sku) -> units``. Its remote is a set
of orders; ``populate`` places more of them than fit in one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncd.http.clock import FakeClock
from syncd.ledger.store import Ledger
from syncd.sandbox.catalog import SandboxCatalog, SimVariant
from syncd.sandbox.world import SandboxWorld
from syncd.sources.orders_ankorstore_parse import HOLDING_STATUSES
from tests.contract._fake_ankorstore import ORDERS as AK_ORDERS
from tests.contract._fake_ankorstore import FakeAnkorstore
from tests.contract._fake_base import FakeApi
from tests.contract._wire import Exchange

Key = tuple[str, ...]
Observations = dict[Key, int]

WAREHOUSE = """
# Reservations sit on a stock location, which an enabled stock source must provide.
# Never polled here: its API points at a port nothing listens on.
[apis.activeants]
base_url = "http://127.0.0.1:9"
username = "unused"
password = "unused"

[sources.activeants]
"""

ORDER_COUNT = 12
"""Orders placed by ``populate``: more than two pages of the contract's page size (5)."""


def observer(channel: str) -> Any:
    async def observe(ledger: Ledger) -> Observations:
        lines: Observations = {}
        for r in await ledger.open_reservations():
            if r.channel == channel:
                key = (r.order_ref, r.sku)
                lines[key] = lines.get(key, 0) + r.quantity
        return lines

    return observe


def relisted(sent: list[Exchange], cursor: str | None) -> None:
    """Order lists have no "changed since" filter (seed 000 L4807-4835, seed 002
    L1346-1427, seed 003): each poll lists again, keeps no cursor, and what changed
    shows in the ledger alone."""
    assert sent
    assert cursor is None


def sellable(catalog: SandboxCatalog, channel: str) -> list[SimVariant]:
    return [v for v in catalog.variants if channel in v.channels and v.at_activeants]


def order_lines(catalog: SandboxCatalog, channel: str, number: int) -> dict[str, int]:
    """Brand SKU -> packs of the ``number``-th order: one or two variants, 1-2 packs."""
    pool = sellable(catalog, channel)
    first = pool[number % len(pool)]
    lines = {first.sku: 1 + number % 2}
    if number % 3 == 0:
        second = pool[(number * 7 + 3) % len(pool)]
        lines.setdefault(second.sku, 1)
    return lines


# --- Ankorstore orders -------------------------------------------------------------------


def ankorstore_spoil(document: Any, catalog: SandboxCatalog) -> tuple[Any, str, str]:
    item = next(r for r in document["included"] if r["type"] == "order-items")
    item["attributes"]["quantity"] = "two"
    item["attributes"]["multipliedQuantity"] = "two"
    order = next(
        o
        for o in document["data"]
        if {"type": "order-items", "id": item["id"]} in o["relationships"]["orderItems"]["data"]
    )
    ref = str(order["attributes"]["reference"])
    return document, ref, ref


@dataclass
class FakeAnkorstoreOrders:
    api: FakeAnkorstore
    catalog: SandboxCatalog

    def _ids(self, lines: dict[str, int]) -> dict[str, int]:
        by_sku = self.catalog.by_sku
        return {by_sku[sku].ankorstore_variant_id: packs for sku, packs in lines.items()}

    def populate(self) -> None:
        for number in range(ORDER_COUNT):
            self.api.place_order(self._ids(order_lines(self.catalog, "ankorstore", number)))

    def truth(self) -> Observations:
        sku = {v.ankorstore_variant_id: v.sku for v in self.catalog.variants}
        return {
            (str(o.reference), sku[vid]): pieces
            for o in self.api.orders
            if o.status in HOLDING_STATUSES
            for vid, pieces in self.api.pieces(o).items()
        }

    def change(self) -> set[str]:
        lines = order_lines(self.catalog, "ankorstore", len(self.api.orders) + 1)
        self.api.place_order(self._ids(lines))
        return set(lines)

    def empty(self) -> None:
        for order in self.api.orders:
            order.status = "cancelled"

    def revoke(self) -> None:
        self.api.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=AK_ORDERS, retry_after=retry_after)


def fake_ankorstore_orders(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, Any]:
    api = FakeAnkorstore(catalog, clock)
    return api, FakeAnkorstoreOrders(api, catalog)


@dataclass
class SandboxAnkorstoreOrders:
    world: SandboxWorld

    def _place(self, number: int) -> set[str]:
        lines = order_lines(self.world.catalog, "ankorstore", number)
        by_sku = self.world.catalog.by_sku
        self.world.ankorstore.place_order(
            {by_sku[sku].ankorstore_variant_id: packs for sku, packs in lines.items()}, force=True
        )
        return set(lines)

    def populate(self) -> None:
        for number in range(ORDER_COUNT):
            self._place(number)

    def truth(self) -> Observations:
        sku = {v.ankorstore_variant_id: v.sku for v in self.world.catalog.variants}
        return {
            (str(o.reference), sku[lid]): pieces
            for o in self.world.ankorstore.orders()
            if o.status in HOLDING_STATUSES
            for lid, pieces in o.pieces_by_listing().items()
        }

    def change(self) -> set[str]:
        return self._place(len(self.world.ankorstore.orders()) + 1)

    def empty(self) -> None:
        for order in self.world.ankorstore.orders():
            self.world.ankorstore.advance_order(order.id, "cancelled", force=True)

    def revoke(self) -> None:
        self.world.ankorstore.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.world.faults["ankorstore"].arm(
            "status", status=status, count=count, retry_after=retry_after, path_prefix=AK_ORDERS
        )
