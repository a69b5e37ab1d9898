"""The Ankorstore channel against the Ankorstore simulator over real loopback sockets.

Built the way the daemon builds it (a config written by the sandbox, the
shared Ankorstore client, :func:`build_channels`) and driven directly with
planned updates from a simple oracle -- no engine. Every check reads the
simulator's own state: what a retailer on Ankorstore would see.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.allocation import allocate
from syncd.channels.ankorstore import ALWAYS_IN_STOCK_REASON, AnkorstoreChannel
from syncd.channels.base import PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.clock import SystemClock
from syncd.config import load_config
from syncd.config.sections import AnkorstoreChannelSection
from syncd.engine.plan import batch_rows
from syncd.http.client import ApiClient
from syncd.integrations import build_channels, build_clients
from syncd.model import Account, Catalog, ChannelRule, OutboxRow, StockStatus, Variant
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld
from tests.conformance.specs import Recorder, spec_checker

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

OPERATIONS = "POST /api/v1/operations"


@dataclass
class Rig:
    world: SandboxWorld
    channel: AnkorstoreChannel
    client: ApiClient
    catalog: Catalog


@asynccontextmanager
async def rig(tmp_path: Path, *, variants: int, seed: int = 11) -> AsyncIterator[Rig]:
    """A running world and the channel exactly as the daemon would build it."""
    catalog = generate_catalog(variants, seed=seed, channel_share=1.0, bundle_share=0.0, prepacks=0)
    world = SandboxWorld.create(catalog=catalog)
    async with world.running():
        config = load_config(world.write_config(tmp_path))
        clock = SystemClock()
        clients = build_clients(config, clock=clock)
        try:
            channel = build_channels(config, clients, clock)["ankorstore"]
            assert isinstance(channel, AnkorstoreChannel)
            yield Rig(world, channel, clients["ankorstore"], config.catalog_model())
        finally:
            await clients.aclose()


def oracle(skus: Sequence[str], seed: int = 3) -> dict[str, int]:
    """What syncd 'computed': a sellable quantity per SKU (any values do)."""
    rng = random.Random(seed)
    return {sku: rng.randint(0, 60) for sku in skus}


def planned(desired: dict[str, int], per_request: int) -> list[tuple[PlannedUpdate, ...]]:
    now = datetime.now(UTC)
    rows = [
        OutboxRow(
            channel="ankorstore",
            sku=sku,
            desired=q,
            acknowledged=None,
            seq=1,
            status="pending",
            updated_at=now,
        )
        for sku, q in desired.items()
    ]
    return list(batch_rows(rows, per_request))


def single(sku: str, quantity: int) -> PlannedUpdate:
    [[update]] = planned({sku: quantity}, 1)
    return update


def whole_packs(units: int, pack: int) -> int:
    return units - units % pack


def as_allocated(world: SandboxWorld, sellable: dict[str, int]) -> dict[str, int]:
    """What allocation hands the channel for these sellable numbers (syncd.allocation, step 5).

    Whole packs of Ankorstore's ``unitMultiplier``, plus the units of
    Ankorstore's own open orders -- here every one of them is known to syncd.
    """
    written: dict[str, int] = {}
    for sku, quantity in sellable.items():
        listing = world.ankorstore.listing(sku)
        written[sku] = whole_packs(quantity, listing.unit_multiplier) + listing.reserved_quantity
    return written


def ankorstore_skus(world: SandboxWorld) -> list[str]:
    return sorted(world.catalog.published("ankorstore"))


async def push_all(
    channel: AnkorstoreChannel, batches: Sequence[Sequence[PlannedUpdate]]
) -> PushResult:
    total = PushResult()
    for batch in batches:
        result = await channel.push(batch)
        total.acknowledged += result.acknowledged
        total.parked += result.parked
        total.failed += result.failed
        total.requests += result.requests
    return total


async def test_5000_changed_variants_take_100_requests_and_no_429(tmp_path: Path) -> None:
    async with rig(tmp_path, variants=5000) as r:
        skus = ankorstore_skus(r.world)[:5000]
        assert len(skus) == 5000
        # The periodic read-back fills the reserved cache (ceil(5000/100) list pages).
        await r.channel.read_live()
        state = r.world.ankorstore
        writes_before = state.counters.requests.get(OPERATIONS, 0)
        desired = oracle(skus)
        budget = r.channel.requests_available()
        batches = list(
            batch_rows(
                [
                    OutboxRow("ankorstore", s, q, None, 1, "pending", datetime.now(UTC))
                    for s, q in as_allocated(r.world, desired).items()
                ],
                r.channel.per_request,
                max_requests=budget,
            )
        )
        assert len(batches) == 100

        result = await push_all(r.channel, batches)

        assert len(result.acknowledged) == 5000
        assert not result.parked
        assert not result.failed
        assert state.counters.requests[OPERATIONS] - writes_before == 100
        assert result.requests == 100  # the writes alone: nothing is read before a write
        assert state.counters.rate_limited == 0
        assert r.client.stats.rate_limited == 0
        for sku in skus:
            listing = state.listing(sku)
            assert listing.available_quantity == whole_packs(desired[sku], listing.unit_multiplier)


@pytest.mark.parametrize("atomic", [True, False])
async def test_one_invalid_operation_parks_that_variant_and_lands_the_other_49(
    tmp_path: Path, atomic: bool
) -> None:
    async with rig(tmp_path, variants=60) as r:
        r.world.ankorstore.atomic_operations = atomic
        skus = ankorstore_skus(r.world)[:50]
        before = {sku: r.world.ankorstore.listing(sku).stock_quantity for sku in skus}
        desired = {sku: 61 + i for i, sku in enumerate(skus)}  # differs from every start value
        [batch] = planned(desired, 50)
        r.world.faults["ankorstore"].arm("invalid_operation", index=7)

        result = await r.channel.push(batch)

        [(parked, reason)] = result.parked
        assert parked is batch[7]
        assert "/atomic:operations/7/" in reason
        assert "stockQuantity" in reason
        assert len(result.acknowledged) == 49
        assert not result.failed
        state = r.world.ankorstore
        assert state.listing(parked.sku).stock_quantity == before[parked.sku]
        for update in result.acknowledged:
            assert state.listing(update.sku).stock_quantity == update.quantity


async def test_a_variant_id_unknown_to_ankorstore_is_parked_and_the_others_land(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, variants=30) as r:
        ghost = Variant(
            sku="GHOST", ankorstore_variant_id=str(uuid.uuid4()), ankorstore_sku="GHOST"
        )
        catalog = dataclasses.replace(r.catalog, variants={**r.catalog.variants, "GHOST": ghost})
        channel = AnkorstoreChannel(
            r.client,
            catalog,
            AnkorstoreChannelSection(locations=["activeants"]),
            clock=SystemClock(),
        )
        skus = ankorstore_skus(r.world)[:9]
        [batch] = planned({**{s: 5 for s in skus}, "GHOST": 5}, 50)

        result = await channel.push(batch)

        assert [(u.sku, "404" in why) for u, why in result.parked] == [("GHOST", True)]
        assert sorted(u.sku for u in result.acknowledged) == skus


async def test_available_equals_pushed_sellable_with_existing_ankorstore_reservations(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, variants=120) as r:
        state = r.world.ankorstore
        ordered: list[str] = []
        for sku in ankorstore_skus(r.world):
            listing = state.listing(sku)
            if (listing.available_quantity or 0) >= 2 * listing.unit_multiplier and len(
                ordered
            ) < 25:
                state.place_order({sku: 1 + len(ordered) % 2})
                ordered.append(sku)
        assert len(ordered) == 25
        assert all(state.listing(s).reserved_quantity > 0 for s in ordered)
        others = [s for s in ankorstore_skus(r.world) if s not in ordered][:25]
        desired = oracle(ordered + others, seed=9)
        written = as_allocated(r.world, desired)

        result = await push_all(r.channel, planned(written, r.channel.per_request))

        assert len(result.acknowledged) == 50
        for sku, quantity in desired.items():
            listing = state.listing(sku)
            shown = whole_packs(quantity, listing.unit_multiplier)
            assert listing.available_quantity == shown
            assert listing.stock_quantity == shown + listing.reserved_quantity
        # The read-back sees the same numbers, in syncd's units.
        live = await r.channel.read_live(ordered)
        assert {s: v.sellable for s, v in live.items()} == {
            s: whole_packs(desired[s], state.listing(s).unit_multiplier) for s in ordered
        }
        assert {s: v.written for s, v in live.items()} == {s: written[s] for s in ordered}
        assert {s: v.reserved for s, v in live.items()} == {
            s: state.listing(s).reserved_quantity for s in ordered
        }


async def test_six_unit_packs_publish_three_packs_for_twenty_sellable_units(tmp_path: Path) -> None:
    async with rig(tmp_path, variants=200) as r:
        sku = next(v.sku for v in r.world.catalog.variants if v.pack_size == 6)
        listing = r.world.ankorstore.listing(sku)
        assert listing.unit_multiplier == 6
        await r.channel.read_live()  # the start-up read-back teaches syncd the pack
        packs = r.channel.pack_sizes()
        assert packs[sku] == 6
        # 20 units sellable: allocation rounds with Ankorstore's pack, not the catalog's 1.
        rule = ChannelRule("ankorstore", ("activeants",), pack_rounding=False, adds_own_orders=True)
        balances = {Account("activeants", StockStatus.AVAILABLE, sku, ""): 20}
        [desired] = allocate(
            balances, [], Catalog(variants={sku: Variant(sku)}), [rule], packs={"ankorstore": packs}
        )
        assert desired.quantity == 18
        assert desired.explanation.result == 18

        result = await r.channel.push([single(sku, desired.quantity + listing.reserved_quantity)])

        assert [u.sku for u in result.acknowledged] == [sku]
        assert listing.stock_quantity == 18 + listing.reserved_quantity
        assert listing.available_quantity == 18
        assert (
            listing.available_quantity // listing.unit_multiplier == 3
        )  # packs a retailer can order


async def test_always_in_stock_is_left_alone_unless_managed(tmp_path: Path) -> None:
    async with rig(tmp_path, variants=20) as r:
        sku = ankorstore_skus(r.world)[0]
        r.world.ankorstore.set_stock(sku, always_in_stock=True)

        result = await r.channel.push([single(sku, 4)])

        [(_, reason)] = result.parked
        assert reason.startswith(ALWAYS_IN_STOCK_REASON)
        assert r.world.ankorstore.listing(sku).always_in_stock
        managed = AnkorstoreChannel(
            r.client,
            r.catalog,
            AnkorstoreChannelSection(locations=["activeants"], always_in_stock="manage"),
            clock=SystemClock(),
        )
        listing = r.world.ankorstore.listing(sku)
        written = whole_packs(4, listing.unit_multiplier) + listing.reserved_quantity
        result = await managed.push([single(sku, written)])
        assert [u.sku for u in result.acknowledged] == [sku]
        assert not listing.always_in_stock
        assert listing.available_quantity == whole_packs(4, listing.unit_multiplier)


async def test_every_request_the_channel_sends_conforms_to_the_published_spec(
    tmp_path: Path,
) -> None:
    checker = spec_checker(
        "ankorstore-stock-openapi.json",
        paths=(
            "/api/v1/operations",
            "/api/v1/product-variants",
            "/api/v1/product-variants/{productVariant}",
        ),
    )
    async with rig(tmp_path, variants=80) as r:
        recorder = Recorder()
        r.client.http.event_hooks = recorder.async_hooks()
        state = r.world.ankorstore
        reserved_sku = next(
            s for s in ankorstore_skus(r.world) if (state.listing(s).available_quantity or 0) >= 12
        )
        state.place_order({reserved_sku: 1})
        ghost = Variant(sku="GHOST", ankorstore_variant_id=str(uuid.uuid4()))
        nameless = Variant(
            sku=ankorstore_skus(r.world)[-1], ankorstore_sku=ankorstore_skus(r.world)[-1]
        )
        catalog = dataclasses.replace(
            r.catalog, variants={**r.catalog.variants, "GHOST": ghost, nameless.sku: nameless}
        )
        channel = AnkorstoreChannel(
            r.client,
            catalog,
            AnkorstoreChannelSection(locations=["activeants"]),
            clock=SystemClock(),
        )
        await channel.read_live()
        r.world.faults["ankorstore"].arm("invalid_operation", index=1)
        skus = [reserved_sku, *ankorstore_skus(r.world)[:30], "GHOST", nameless.sku]
        result = await push_all(channel, planned(oracle(list(dict.fromkeys(skus))), 50))
        assert result.parked
        assert result.acknowledged
        await channel.read_live([reserved_sku])

        methods = {(e.request.method, e.response.status_code) for e in recorder.exchanges}
        assert {("POST", 200), ("POST", 422), ("GET", 200)} <= methods
        checker.assert_conforms(recorder.exchanges)
        assert {"post-api-v1-operations", "list-product-variants-with-stock"} <= set(
            checker.checked
        )


async def test_lost_response_and_5xx_resend_the_same_absolute_values(tmp_path: Path) -> None:
    async with rig(tmp_path, variants=30) as r:
        skus = ankorstore_skus(r.world)[:10]
        desired = {sku: 41 + i for i, sku in enumerate(skus)}
        faults = r.world.faults["ankorstore"]
        faults.arm("lose_response", count=1, methods={"POST"}, path_prefix="/api/v1/operations")
        faults.arm(
            "status", status=503, count=1, methods={"POST"}, path_prefix="/api/v1/operations"
        )

        result = await push_all(r.channel, planned(as_allocated(r.world, desired), 50))

        assert sorted(u.sku for u in result.acknowledged) == skus
        assert faults.fired == {"lose_response": 1, "status": 1}
        for sku, quantity in desired.items():
            listing = r.world.ankorstore.listing(sku)
            assert listing.available_quantity == whole_packs(quantity, listing.unit_multiplier)
