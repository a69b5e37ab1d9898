"""The fabric channel against the fabric simulator over real loopback sockets.

Built as the daemon builds it (sandbox config, shared fabric client,
:func:`build_channels`) and driven with planned updates; every check reads
the simulator's state, i.e. what a fabric retailer would see.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd.channels.fabric import FabricChannel
from syncd.channels.updates import Move, PlannedUpdate
from syncd.clock import SystemClock
from syncd.config import load_config
from syncd.config.sections import FabricChannelSection
from syncd.http.client import ApiClient
from syncd.integrations import build_channels, build_clients
from syncd.model import Catalog, Variant
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.fabric_model import FabricItem
from syncd.sandbox.world import SandboxWorld

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@dataclass
class Rig:
    world: SandboxWorld
    channel: FabricChannel
    client: ApiClient
    catalog: Catalog

    def with_catalog(self, catalog: Catalog) -> FabricChannel:
        """The same channel over another catalog; a miss re-reads the list at once."""
        return FabricChannel(
            self.client,
            catalog,
            FabricChannelSection(locations=["activeants"]),
            brand_id=str(self.world.fabric.brand_id),
            retailer_id=str(self.world.fabric.retailer_id),
            clock=SystemClock(),
            min_map_refresh_interval=0.0,
        )


@asynccontextmanager
async def rig(tmp_path: Path, *, variants: int = 40) -> AsyncIterator[Rig]:
    catalog = generate_catalog(variants, seed=5, channel_share=1.0, bundle_share=0.0, prepacks=0)
    world = SandboxWorld.create(catalog=catalog)
    async with world.running():
        config = load_config(world.write_config(tmp_path))
        clock = SystemClock()
        clients = build_clients(config, clock=clock)
        try:
            channel = build_channels(config, clients, clock)["fabric"]
            assert isinstance(channel, FabricChannel)
            yield Rig(world, channel, clients["fabric"], config.catalog_model())
        finally:
            await clients.aclose()


def update(sku: str, quantity: int, seq: int = 1) -> PlannedUpdate:
    return PlannedUpdate(sku=sku, quantity=quantity, seq=seq, previous=None, move=Move.UNKNOWN)


def fabric_skus(world: SandboxWorld) -> list[str]:
    return sorted(world.catalog.published("fabric"))


def writes(world: SandboxWorld) -> int:
    return sum(world.fabric.counters.snapshot()["writes"].values())


async def test_writes_land_and_are_confirmed_by_reading_back(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        skus = fabric_skus(r.world)[:12]
        desired = {sku: 31 + i for i, sku in enumerate(skus)}  # above every seeded level
        assert r.channel.per_request >= len(skus)
        result = await r.channel.push([update(sku, q) for sku, q in desired.items()])
        assert not result.failed
        assert not result.parked
        assert sorted(u.sku for u in result.acknowledged) == skus
        assert {sku: r.world.fabric.inventory(sku) for sku in skus} == desired
        # One map read (40 items, 50 per page), a write per SKU, and one read of the
        # items fabric changed since just before the writes confirms all twelve.
        requests = r.world.fabric.counters.snapshot()["requests"]
        assert requests["GET /v1/brands/{brand_id}/inventory/"] == 2
        assert requests.get("GET /v1/brands/{brand_id}/inventory/{inventory_id}/", 0) == 0
        assert writes(r.world) == 12
        assert result.requests == 14

        # A retailer order lowers fabric's own number; the read-back reports it as it is.
        r.world.fabric.place_order({skus[0]: 2})
        live = await r.channel.read_live()
        assert live[skus[0]].sellable == desired[skus[0]] - 2
        assert all(live[s].sellable == desired[s] for s in skus[1:])


async def test_the_sku_map_survives_a_miss_and_a_changed_id(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        state = r.world.fabric
        first = fabric_skus(r.world)[0]
        await r.channel.push([update(first, 3)])  # map read

        # A variant listed on fabric after the map was read: the miss re-reads the list.
        state.items[777_001] = FabricItem(
            inventory_id=777_001,
            variant_id=5_777_001,
            brand_sku="NEW",
            brand_identifier="FB-NEW",
            identifier="FB-NEW",
            upc="0000000000000",
            name="New",
            inventory=0,
            inventory_updated_at=None,
            brand_inventory_updated_at=None,
            last_submitted=None,
        )
        catalog = dataclasses.replace(
            r.catalog,
            variants={**r.catalog.variants, "NEW": Variant(sku="NEW", fabric_sku="FB-NEW")},
        )
        channel = r.with_catalog(catalog)
        await channel.push([update(first, 4)])
        result = await channel.push([update("NEW", 9)])
        assert [u.sku for u in result.acknowledged] == ["NEW"]
        assert state.items[777_001].inventory == 9

        # The item is re-created under another id: the stale id answers 404, the map is
        # re-read and the write goes to the new id.
        item = state.items.pop(777_001)
        item.inventory_id = 777_002
        state.items[777_002] = item
        result = await channel.push([update("NEW", 11, seq=2)])
        assert [u.sku for u in result.acknowledged] == ["NEW"]
        assert state.items[777_002].inventory == 11


async def test_429_with_retry_after_is_obeyed(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        sku = fabric_skus(r.world)[0]
        await r.channel.read_live()  # map ready, so the next request is the write
        r.world.faults["fabric"].arm(
            "status", status=429, count=1, retry_after=1, methods={"PATCH"}
        )
        started = time.monotonic()
        result = await r.channel.push([update(sku, 14)])
        elapsed = time.monotonic() - started
        assert [u.sku for u in result.acknowledged] == [sku]
        assert r.world.fabric.inventory(sku) == 14
        assert r.world.faults["fabric"].fired["status"] == 1
        assert r.client.stats.rate_limited == 1
        assert elapsed >= 0.95  # waited the second the server asked for


async def test_a_negative_quantity_is_never_sent(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        sku = fabric_skus(r.world)[0]
        before = r.world.fabric.inventory(sku)
        result = await r.channel.push([update(sku, -4)])
        assert [u.sku for u, _ in result.parked] == [sku]
        assert r.world.fabric.clamped_writes == 0
        assert writes(r.world) == 0
        assert r.world.fabric.inventory(sku) == before


async def test_a_drift_read_back_reads_only_what_fabric_changed(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        skus = fabric_skus(r.world)
        await r.channel.read_live()  # at start: the whole list
        lists = "GET /v1/brands/{brand_id}/inventory/"
        before = r.world.fabric.counters.snapshot()["requests"][lists]
        before_inventory = r.world.fabric.inventory(skus[3])
        r.world.fabric.place_order({skus[3]: 1})  # fabric lowers its own figure
        live = await r.channel.read_live(skus)
        assert live[skus[3]].written == r.world.fabric.inventory(skus[3])
        assert live[skus[3]].written == before_inventory - 1
        assert all(live[s].written == r.world.fabric.inventory(s) for s in skus)
        # One page of the items fabric changed since the last read, not the whole list.
        assert r.world.fabric.counters.snapshot()["requests"][lists] == before + 1
