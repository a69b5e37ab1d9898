"""The channel adapters under contract (Ankorstore, fabric), each with a fake and a sandbox.

A :class:`ChannelCase` says what the contract needs to know about one
channel adapter (the API, the write request and how to read the values it
carries); a :class:`ChannelRemote` is one backend's view of what the
channel holds, with the few moves the clauses make: refuse one item's
next write, change a value or a pack size behind syncd's back, answer an
error on the write path.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from syncd.channels.base import Channel, PushResult
from syncd.channels.updates import Move, PlannedUpdate
from syncd.clock import FakeClock
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.world import SandboxWorld
from tests.contract._fake_ankorstore import OPERATIONS, FakeAnkorstore
from tests.contract._fake_base import FakeApi
from tests.contract._fake_fabric import INVENTORY, FakeFabric
from tests.contract._fake_fabric import PAGE_SIZE as FB_PAGE_SIZE
from tests.contract._orders import WAREHOUSE
from tests.contract._rig import assembled, backend, contract_clock, write_config
from tests.contract._switchboard import Switchboards
from tests.contract._wire import Exchange, Wire


class ChannelRemote(Protocol):
    def written(self, sku: str) -> int | None:
        """The written figure the channel holds for ``sku`` now."""
        ...

    def set_written(self, sku: str, value: int) -> None:
        """The channel's figure changes behind syncd's back (an operator, an order)."""

    def packs(self) -> dict[str, int]:
        """Units per pack the channel sells each SKU in; {} when it sells single units."""
        ...

    def set_pack(self, sku: str, units: int) -> bool:
        """Change a pack size; False when the channel has none."""
        ...

    def hold(self, sku: str, units: int) -> bool:
        """The channel's own open order holds ``units`` apart from the written figure
        (Ankorstore's ``reservedQuantity``); False when the channel has no such figure."""
        ...

    def refuse(self, sku: str, index: int) -> None:
        """Refuse the next write of ``sku`` (``index``: its place in the request)."""

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        """The next ``count`` writes answer ``status``."""


@dataclass(frozen=True)
class ChannelCase:
    name: str
    api: str
    table: str
    write_method: str
    write_path: str
    values_in: Callable[[Exchange], list[int]]
    """The absolute values one write request carries."""
    most_per_write: int
    """The most values one write can carry, as the API documents it."""
    batch: int
    """How many values the "fewest requests" clause pushes."""
    fake: Callable[[SandboxCatalog, FakeClock], tuple[FakeApi, ChannelRemote]]
    sandbox: Callable[[SandboxWorld], ChannelRemote]
    variants: int = 40

    def __str__(self) -> str:
        return self.name


def update(sku: str, quantity: int, seq: int = 1) -> PlannedUpdate:
    """One absolute value to push, as the planner hands it to a channel."""
    return PlannedUpdate(sku=sku, quantity=quantity, seq=seq, previous=None, move=Move.UNKNOWN)


@dataclass
class ChannelRig:
    case: ChannelCase
    remote: ChannelRemote
    channel: Channel
    clock: FakeClock
    wire: Wire
    skus: list[str]
    """SKUs the channel lists, in catalog order."""

    def value(self, sku: str, packs: int) -> int:
        """A whole number of the channel's packs of ``sku``."""
        return self.channel.pack_sizes().get(sku, 1) * packs

    async def push(self, updates: Sequence[PlannedUpdate]) -> list[PushResult]:
        """Push in batches of the channel's ``per_request``, as the planner batches them."""
        size = self.channel.per_request
        return [
            await self.channel.push(updates[start : start + size])
            for start in range(0, len(updates), size)
        ]

    def writes(self, mark: int) -> list[Exchange]:
        return self.wire.since(mark, self.case.write_path, self.case.write_method)


@asynccontextmanager
async def channel_rig(
    case: ChannelCase,
    kind: str,
    tmp_path: Path,
    boards: Switchboards,
    *,
    requests_per_minute: int | None = None,
) -> AsyncIterator[ChannelRig]:
    catalog = generate_catalog(
        case.variants, seed=17, prepacks=0, bundle_share=0.0, lot_share=0.0, channel_share=1.0
    )
    clock = contract_clock()
    fake, remote = case.fake(catalog, clock) if kind == "fake" else (None, None)
    b = backend(kind, case.api, catalog, clock, boards=boards, fake=fake)
    if remote is None:
        assert b.world is not None
        remote = case.sandbox(b.world)
    rate = "" if requests_per_minute is None else f"requests_per_minute = {requests_per_minute}\n"
    config = write_config(tmp_path / "config", b, catalog, case.table, rate)
    async with assembled(config, b, clock, tmp_path / "ledger.db") as assembly:
        channel = assembly.channels[case.name]
        # As the engine starts: read back what the channel shows, take its pack sizes.
        await channel.read_live()
        channel.pack_sizes()
        skus = [v.sku for v in catalog.variants if case.name in v.channels]
        yield ChannelRig(case, remote, channel, clock, b.wire, skus)


# --- Ankorstore -----------------------------------------------------------------------


def _operations(exchange: Exchange) -> list[int]:
    """``stockQuantity`` of every operation of one ``POST /api/v1/operations``."""
    body = json.loads(exchange.body)
    return [op["data"]["attributes"]["stockQuantity"] for op in body["atomic:operations"]]


@dataclass
class FakeAnkorstoreStock:
    api: FakeAnkorstore
    catalog: SandboxCatalog

    def _variant(self, sku: str) -> Any:
        return self.api.variants[self.catalog.by_sku[sku].ankorstore_variant_id]

    def written(self, sku: str) -> int | None:
        return int(self._variant(sku).stock)

    def set_written(self, sku: str, value: int) -> None:
        self._variant(sku).stock = value

    def packs(self) -> dict[str, int]:
        sku = {v.ankorstore_variant_id: v.sku for v in self.catalog.variants}
        return {sku[vid]: v.unit_multiplier for vid, v in self.api.variants.items()}

    def set_pack(self, sku: str, units: int) -> bool:
        self._variant(sku).unit_multiplier = units
        return True

    def hold(self, sku: str, units: int) -> bool:
        self._variant(sku).reserved += units
        return True

    def refuse(self, sku: str, index: int) -> None:
        self.api.refuse.add(self.catalog.by_sku[sku].ankorstore_variant_id)

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=OPERATIONS, retry_after=retry_after)


def _fake_ankorstore(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, ChannelRemote]:
    api = FakeAnkorstore(catalog, clock)
    return api, FakeAnkorstoreStock(api, catalog)


@dataclass
class SandboxAnkorstoreStock:
    world: SandboxWorld

    def _listing(self, sku: str) -> Any:
        return self.world.ankorstore.listing(self.world.catalog.by_sku[sku].ankorstore_variant_id)

    def written(self, sku: str) -> int | None:
        with self.world.ankorstore.lock:
            stock = self._listing(sku).stock_quantity
            return None if stock is None else int(stock)

    def set_written(self, sku: str, value: int) -> None:
        self.world.ankorstore.set_stock(self.world.catalog.by_sku[sku].ankorstore_variant_id, value)

    def packs(self) -> dict[str, int]:
        state = self.world.ankorstore
        sku = {v.ankorstore_variant_id: v.sku for v in self.world.catalog.variants}
        with state.lock:
            return {sku[i]: x.unit_multiplier for i, x in state.listings.items() if i in sku}

    def set_pack(self, sku: str, units: int) -> bool:
        with self.world.ankorstore.lock:
            self._listing(sku).unit_multiplier = units
        return True

    def hold(self, sku: str, units: int) -> bool:
        variant = self.world.catalog.by_sku[sku]
        packs, rest = divmod(units, variant.pack_size)
        assert packs, "an order holds whole packs"
        assert not rest, "an order holds whole packs"
        self.world.ankorstore.place_order({variant.ankorstore_variant_id: packs}, force=True)
        return True

    def refuse(self, sku: str, index: int) -> None:
        self.world.faults["ankorstore"].arm(
            "invalid_operation", path_prefix=OPERATIONS, index=index
        )

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.world.faults["ankorstore"].arm(
            "status", status=status, count=count, retry_after=retry_after, path_prefix=OPERATIONS
        )


ANKORSTORE = ChannelCase(
    name="ankorstore",
    api="ankorstore",
    table='[channels.ankorstore]\nlocations = ["activeants"]\n' + WAREHOUSE,
    write_method="POST",
    write_path=OPERATIONS,
    values_in=_operations,
    # "a specific endpoint which accepts up to 50 operations per request" (seed 000 L638).
    most_per_write=50,
    batch=2 * 50 + 7,
    fake=_fake_ankorstore,
    sandbox=SandboxAnkorstoreStock,
    variants=120,
)


# --- fabric ----------------------------------------------------------------------------


def _inventory(exchange: Exchange) -> list[int]:
    """The absolute ``inventory`` one ``PATCH .../inventory/{id}/`` carries."""
    return [json.loads(exchange.body)["inventory"]]


@dataclass
class FakeFabricStock:
    api: FakeFabric
    catalog: SandboxCatalog

    def _item(self, sku: str) -> Any:
        return self.api.items[self.catalog.by_sku[sku].fabric_inventory_id]

    def written(self, sku: str) -> int | None:
        return int(self._item(sku).inventory)

    def set_written(self, sku: str, value: int) -> None:
        self._item(sku).inventory = value

    def packs(self) -> dict[str, int]:
        return {}

    def set_pack(self, sku: str, units: int) -> bool:
        return False

    def hold(self, sku: str, units: int) -> bool:
        return False

    def refuse(self, sku: str, index: int) -> None:
        self.api.refuse.add(self.catalog.by_sku[sku].fabric_inventory_id)

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=INVENTORY, retry_after=retry_after)


def _fake_fabric(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, ChannelRemote]:
    api = FakeFabric(catalog, clock)
    return api, FakeFabricStock(api, catalog)


class SandboxFabricStock:
    def __init__(self, world: SandboxWorld) -> None:
        self.world = world
        # The list's page size is the server's; the fake's, so the list spans pages.
        world.fabric.page_size = FB_PAGE_SIZE

    def written(self, sku: str) -> int | None:
        return self.world.fabric.inventory(sku)

    def set_written(self, sku: str, value: int) -> None:
        self.world.fabric.submit_inventory(sku, value)

    def packs(self) -> dict[str, int]:
        return {}

    def set_pack(self, sku: str, units: int) -> bool:
        return False

    def hold(self, sku: str, units: int) -> bool:
        return False

    def refuse(self, sku: str, index: int) -> None:
        item = self.world.fabric.item(sku).inventory_id
        path = f"/v1/brands/{self.world.fabric.brand_id}/inventory/{item}/"
        self.world.faults["fabric"].arm("status", status=400, path_prefix=path, methods=("PATCH",))

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.world.faults["fabric"].arm(
            "status",
            status=status,
            count=count,
            retry_after=retry_after,
            path_prefix=f"/v1/brands/{self.world.fabric.brand_id}/inventory/",
            methods=("PATCH",),
        )


FABRIC = ChannelCase(
    name="fabric",
    api="fabric",
    table='[channels.fabric]\nlocations = ["activeants"]\n' + WAREHOUSE,
    write_method="PATCH",
    write_path=INVENTORY,
    values_in=_inventory,
    # No bulk write: fabric's bulk inventory paths are files, not REST (brief
    # fabric-supplier-api 7), so one request per variant.
    most_per_write=1,
    batch=7,
    fake=_fake_fabric,
    sandbox=SandboxFabricStock,
)

CHANNELS = [ANKORSTORE, FABRIC]
