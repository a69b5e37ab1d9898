"""Order-feed cases of the source contract: Ankorstore, fabric and FashionTrade orders.

An order feed's observations are the open reservation lines the ledger
holds for its channel, ``(order_ref, sku) -> units``. Its remote is a set
of orders; ``populate`` places more of them than fit in one page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from syncd.clock import FakeClock
from syncd.ledger.store import Ledger
from syncd.sandbox.catalog import SandboxCatalog, SimVariant
from syncd.sandbox.world import SandboxWorld
from syncd.sources.orders_ankorstore_parse import HOLDING_STATUSES
from syncd.sources.orders_fashiontrade_parse import RESERVING
from tests.contract._fake_ankorstore import ORDERS as AK_ORDERS
from tests.contract._fake_ankorstore import FakeAnkorstore
from tests.contract._fake_base import FakeApi
from tests.contract._fake_fabric import ORDERS as FB_ORDERS
from tests.contract._fake_fabric import PAGE_SIZE as FB_PAGE_SIZE
from tests.contract._fake_fabric import FakeFabric
from tests.contract._fake_fashiontrade import ORDERS as FT_ORDERS
from tests.contract._fake_fashiontrade import FakeFashionTrade
from tests.contract._wire import Exchange

Key = tuple[str, ...]
Observations = dict[Key, int]

WAREHOUSE = """
# Reservations sit on a stock location, which an enabled stock source must provide.
# Never polled here: its client's transport fails the test on any request.
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
    """Variants a channel sells (FashionTrade: the whole catalog, by barcode)."""
    return [
        v
        for v in catalog.variants
        if v.at_activeants and (channel == "fashiontrade" or channel in v.channels)
    ]


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


# --- fabric orders -------------------------------------------------------------------------


def fabric_spoil(document: Any, catalog: SandboxCatalog) -> tuple[Any, str, str]:
    order = next(o for o in document["results"] if o["order_lines"])
    line = order["order_lines"][0]
    line["quantity_open"] = "two"
    return document, str(order["id"]), f"order {order['id']}"


@dataclass
class FakeFabricOrders:
    api: FakeFabric
    catalog: SandboxCatalog

    def _place(self, number: int) -> set[str]:
        lines = order_lines(self.catalog, "fabric", number)
        by_sku = self.catalog.by_sku
        self.api.place_order({by_sku[sku].fabric_sku: qty for sku, qty in lines.items()})
        return set(lines)

    def populate(self) -> None:
        for number in range(ORDER_COUNT):
            self._place(number)

    def truth(self) -> Observations:
        sku = {v.fabric_sku: v.sku for v in self.catalog.variants}
        found: Observations = {}
        for order in self.api.orders:
            for line in order.lines:
                if line.quantity_open:
                    key = (str(order.id), sku[line.item.brand_identifier])
                    found[key] = found.get(key, 0) + line.quantity_open
        return found

    def change(self) -> set[str]:
        return self._place(len(self.api.orders) + 1)

    def empty(self) -> None:
        for order in self.api.orders:
            for line in order.lines:
                line.quantity_canceled = line.quantity

    def revoke(self) -> None:
        self.api.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=FB_ORDERS, retry_after=retry_after)


def fake_fabric_orders(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, Any]:
    api = FakeFabric(catalog, clock)
    return api, FakeFabricOrders(api, catalog)


class SandboxFabricOrders:
    def __init__(self, world: SandboxWorld) -> None:
        self.world = world
        # The page size is the server's; the same as the fake's, so the orders span pages.
        world.fabric.page_size = FB_PAGE_SIZE

    def _place(self, number: int) -> set[str]:
        lines = order_lines(self.world.catalog, "fabric", number)
        wanted: dict[str | int, int] = {sku: packs for sku, packs in lines.items()}
        self.world.fabric.place_order(wanted, allow_oversell=True)
        return set(lines)

    def populate(self) -> None:
        for number in range(ORDER_COUNT):
            self._place(number)

    def truth(self) -> Observations:
        state = self.world.fabric
        found: Observations = {}
        with state.lock:
            for order in state.orders.values():
                for line in order.lines:
                    if line.quantity_open > 0:
                        key = (str(order.order_id), state.items[line.inventory_id].brand_sku)
                        found[key] = found.get(key, 0) + line.quantity_open
        return found

    def change(self) -> set[str]:
        return self._place(len(self.world.fabric.orders) + 1)

    def empty(self) -> None:
        state = self.world.fabric
        for order_id, order in list(state.orders.items()):
            if any(line.quantity_open for line in order.lines):
                state.cancel_lines(order_id)

    def revoke(self) -> None:
        self.world.fabric.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        prefix = f"/v1/brands/{self.world.fabric.brand_id}/orders/"
        self.world.faults["fabric"].arm(
            "status", status=status, count=count, retry_after=retry_after, path_prefix=prefix
        )


# --- FashionTrade orders ---------------------------------------------------------------------


def fashiontrade_spoil(document: Any, catalog: SandboxCatalog) -> tuple[Any, str, str]:
    document["order_lines"][0]["quantity"] = "two"
    return document, document["order_number"], document["order_number"]


def _ft_truth(
    orders: list[tuple[str, list[tuple[str, int, str]]]], catalog: SandboxCatalog
) -> Observations:
    sku = {v.barcode: v.sku for v in catalog.variants}
    found: Observations = {}
    for number, lines in orders:
        for barcode, quantity, status in lines:
            if status in RESERVING:
                key = (number, sku[barcode])
                found[key] = found.get(key, 0) + quantity
    return found


@dataclass
class FakeFashionTradeOrders:
    api: FakeFashionTrade
    catalog: SandboxCatalog

    def _place(self, number: int) -> set[str]:
        lines = order_lines(self.catalog, "fashiontrade", number)
        by_sku = self.catalog.by_sku
        self.api.place_order({by_sku[sku].barcode: qty for sku, qty in lines.items()})
        return set(lines)

    def populate(self) -> None:
        for number in range(ORDER_COUNT):
            self._place(number)

    def truth(self) -> Observations:
        return _ft_truth(
            [
                (o.number, [(line.barcode, line.quantity, line.status) for line in o.lines])
                for o in self.api.orders.values()
            ],
            self.catalog,
        )

    def change(self) -> set[str]:
        return self._place(len(self.api.orders) + 1)

    def empty(self) -> None:
        for order in self.api.orders.values():
            for line in order.lines:
                line.status = "SHIPPED"

    def revoke(self) -> None:
        self.api.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=FT_ORDERS, retry_after=retry_after)


def fake_fashiontrade_orders(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, Any]:
    api = FakeFashionTrade(clock)
    return api, FakeFashionTradeOrders(api, catalog)


@dataclass
class SandboxFashionTradeOrders:
    world: SandboxWorld

    def _place(self, number: int) -> set[str]:
        lines = order_lines(self.world.catalog, "fashiontrade", number)
        self.world.fashiontrade.place_order(list(lines.items()))
        return set(lines)

    def populate(self) -> None:
        for number in range(ORDER_COUNT):
            self._place(number)

    def truth(self) -> Observations:
        state = self.world.fashiontrade
        with state.lock:
            orders = [
                (o.order_number, [(line.barcode, line.quantity, line.status) for line in o.lines])
                for o in state.orders.values()
            ]
        return _ft_truth(orders, self.world.catalog)

    def change(self) -> set[str]:
        return self._place(len(self.world.fashiontrade.orders) + 1)

    def empty(self) -> None:
        for number in list(self.world.fashiontrade.orders):
            self.world.fashiontrade.set_order_status(number, "SHIPPED")

    def revoke(self) -> None:
        self.world.fashiontrade.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.world.faults["fashiontrade"].arm(
            "status", status=status, count=count, retry_after=retry_after, path_prefix=FT_ORDERS
        )
