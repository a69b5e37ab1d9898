"""The engine cycle end to end: sources -> ledger -> allocation -> outbox -> channels, over loopback.

syncd is assembled in this process exactly as `syncd once` and `syncd run`
assemble it (:func:`syncd.assembly.assemble` on a sandbox config), with
one addition: the Ankorstore and fabric clients' transports record every
stock write the simulator accepted, in the order it went out, so the tests
can check what reached the channel -- not only what the planner planned.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import (
    ankorstore_ops,
    fabric_writes,
    matches_outbox,
    only_some_on_fabric,
    rig,
    single_skus,
    whole_packs,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

NO_SECOND_READ = "confirm_increase_after_zero = false\n"


def classify(written: list[tuple[str, int]], before: dict[str, int]) -> list[str]:
    return ["decrease" if value < before[sku] else "increase" for sku, value in written]


async def test_decreases_reach_the_channels_first_and_superseded_values_never_do(
    tmp_path: Path,
) -> None:
    catalog = only_some_on_fabric(generate_catalog(200, seed=3), 60)
    world = SandboxWorld.create(catalog=catalog)
    async with world.running(), rig(world, tmp_path, channel_keys=NO_SECOND_READ) as syncd:
        await syncd.cycle()
        assert await syncd.settled()
        acknowledged = await syncd.desired()
        # Ankorstore singles in packs of one, stocked only at Active Ants.
        skus = single_skus(world, "ankorstore", count=75, minimum=4)
        superseded, lower, higher = skus[:5], skus[5::2], skus[6::2]
        for sku in lower:
            world.activeants.move_stock(sku, -3)
        for sku in higher:
            world.activeants.move_stock(sku, 25)
        for sku in superseded:
            world.activeants.move_stock(sku, 100)
        await syncd.cycle(push=False)  # read and computed, not pushed yet
        computed = await syncd.desired()
        overtaken = {c: {s: v for s, v in computed[c].items() if s in superseded} for c in computed}
        for sku in superseded:
            world.activeants.move_stock(sku, 100)
        for recording in syncd.traffic.values():
            recording.writes.clear()

        cycles = await syncd.cycle()

        assert all(cycle.settled for cycle in cycles.values())
        final = await syncd.desired()
        requests = ankorstore_ops(world, syncd.traffic["ankorstore"])
        written = {
            "ankorstore": [op for request in requests for op in request],
            "fabric": fabric_writes(world, syncd.traffic["fabric"]),
        }
        assert len(requests) >= 2  # > 50 changes: the order spans requests
        for channel, ops in written.items():
            # Only each SKU's newest value went out, once.
            assert len({sku for sku, _ in ops}) == len(ops)
            assert all(value == final[channel][sku] for sku, value in ops)
            for sku, stale in overtaken[channel].items():
                assert stale != final[channel][sku]
                assert (sku, stale) not in ops
            moved = set(lower + higher + superseded) & set(final[channel])
            assert {sku for sku, _ in ops} >= moved
            # Every decrease went out before the first increase.
            moves = classify(ops, acknowledged[channel])
            last_decrease = max(i for i, move in enumerate(moves) if move == "decrease")
            assert last_decrease < moves.index("increase")
        assert matches_outbox(world, await syncd.outbox()) == {}


async def test_a_value_superseded_in_flight_is_followed_by_the_newer_one(tmp_path: Path) -> None:
    world = SandboxWorld.create(variants=40, seed=5)
    async with world.running(), rig(world, tmp_path, channel_keys=NO_SECOND_READ) as syncd:
        await syncd.cycle()
        [sku] = single_skus(world, "fabric", count=1, minimum=1)
        inventory_id = world.catalog.by_sku[sku].fabric_inventory_id
        world.activeants.move_stock(sku, 10)
        await syncd.cycle(push=False)
        old = (await syncd.rows("fabric"))[sku]

        async def meanwhile(request: httpx.Request) -> None:
            # While the old value is on its way, the warehouse moves again and
            # the daemon's other loops record and recompute it.
            if (
                request.url.path.endswith(f"/inventory/{inventory_id}/")
                and syncd.traffic["fabric"].before_write
            ):
                syncd.traffic["fabric"].before_write = None
                world.activeants.move_stock(sku, 5)
                world.clock.advance(0.002)  # past Active Ants' millisecond cut (see Rig.cycle)
                await syncd.source("activeants").poll(syncd.ledger)
                await syncd.assembly.engine.recompute()

        syncd.traffic["fabric"].before_write = meanwhile
        syncd.traffic["fabric"].writes.clear()
        first = await syncd.assembly.engine.push_channel("fabric")
        assert not first.settled  # the newer value is still pending
        second = await syncd.assembly.engine.push_channel("fabric")

        assert second.settled
        row = (await syncd.rows("fabric"))[sku]
        assert row.desired == old.desired + 5
        assert [v for s, v in fabric_writes(world, syncd.traffic["fabric"]) if s == sku] == [
            old.desired,
            row.desired,
        ]
        assert world.fabric.inventory(sku) == row.desired
        log = await syncd.ledger.push_log("fabric", sku)
        statuses = [(e.status, e.quantity, e.seq) for e in reversed(log)]
        assert ("superseded", old.desired, old.seq) in statuses
        assert ("acknowledged", row.desired, row.seq) == statuses[-1]


async def test_ankorstore_shows_syncds_sellable_with_its_own_and_other_channels_orders(
    tmp_path: Path,
) -> None:
    catalog = generate_catalog(60, seed=21, channel_share=1.0, pack_share=0.3)
    world = SandboxWorld.create(catalog=catalog)
    async with world.running(), rig(world, tmp_path) as syncd:
        # Orders open before syncd ever ran: Ankorstore holds reservedQuantity for its own.
        singles = single_skus(world, "ankorstore", count=8, minimum=12, pack=None)
        ankorstore = world.ankorstore
        placed = {}
        for sku in singles[:4]:
            # Forced: before syncd's first push Ankorstore shows arbitrary stale stock.
            placed[sku] = ankorstore.place_order({sku: 1}, force=True)
        world.fabric.place_order({singles[4]: 2}, allow_oversell=True)
        world.fashiontrade.place_order([(singles[5], 3)])
        # One Ankorstore order the warehouse already holds: Ankorstore still reserves it
        # until it ships it, so syncd keeps subtracting it too (an undersell, by design).
        handed = singles[0]
        world.activeants.add_order(
            str(placed[handed].reference), {handed: ankorstore.listing(handed).unit_multiplier}
        )
        assert all(ankorstore.listing(s).reserved_quantity > 0 for s in singles[:4])

        await syncd.cycle()
        assert await syncd.settled()
        # An order placed after the first publication, and another cycle.
        late = singles[6]
        ankorstore.place_order({late: 1})
        await syncd.cycle()
        assert await syncd.settled()

        rows = await syncd.rows("ankorstore")
        assert sorted(rows) == sorted(world.catalog.published("ankorstore"))
        for sku, row in rows.items():
            listing = ankorstore.listing(sku)
            assert listing.available_quantity == row.sellable, sku
            assert listing.stock_quantity == row.desired, sku
            assert listing.reserved_quantity >= row.own_reserved, sku
        # An oracle for the singles: Active Ants' available units minus every open
        # order (the handed-over one is out of Active Ants' figure and still reserved).
        open_units = {sku: ankorstore.listing(sku).unit_multiplier for sku in singles[0:4]}
        open_units[late] = ankorstore.listing(late).unit_multiplier
        open_units[singles[4]] = 2
        open_units[singles[5]] = 3
        for sku in singles:
            pack = ankorstore.listing(sku).unit_multiplier
            expected = whole_packs(
                max(0, world.activeants.product(sku).available - open_units.get(sku, 0)), pack
            )
            assert rows[sku].sellable == expected, sku


async def test_fabric_increases_wait_while_the_fabric_order_poll_is_overdue(tmp_path: Path) -> None:
    world = SandboxWorld.create(variants=40, seed=5)
    async with world.running(), rig(world, tmp_path, channel_keys=NO_SECOND_READ) as syncd:
        await syncd.cycle()
        up = single_skus(world, "fabric", count=6, minimum=3)
        up, down = up[:3], up[3:]
        before = {sku: world.fabric.inventory(sku) for sku in up + down}
        for sku in up:
            world.activeants.move_stock(sku, 15)
        for sku in down:
            world.activeants.move_stock(sku, -2)
        # fabric takes an order syncd cannot see: its order poll fails from now on.
        world.faults["fabric"].arm(
            "status", status=403, count=-1, path_prefix=f"/v1/brands/{world.fabric.brand_id}/orders"
        )
        world.fabric.place_order({up[0]: 4})
        syncd.traffic["fabric"].writes.clear()

        cycles = await syncd.cycle()

        fabric = cycles["fabric"]
        assert fabric.waiting >= len(up)
        assert any("fabric_orders" in why and "failing" in why for why in fabric.waiting_reasons)
        written = dict(fabric_writes(world, syncd.traffic["fabric"]))
        assert not set(up) & set(written)  # no increase was sent
        assert world.fabric.inventory(up[0]) == before[up[0]] - 4  # fabric's own decrement stands
        for sku in down:
            assert written[sku] == before[sku] - 2 == world.fabric.inventory(sku)
        assert cycles["ankorstore"].settled  # Ankorstore's own order feed is fine

        world.faults["fabric"].clear()
        cycles = await syncd.cycle()

        assert cycles["fabric"].settled
        rows = await syncd.rows("fabric")
        assert world.fabric.inventory(up[0]) == rows[up[0]].desired == before[up[0]] + 15 - 4
        for sku in up[1:]:
            assert world.fabric.inventory(sku) == rows[sku].desired == before[sku] + 15


async def test_ankorstore_orders_that_leave_syncds_number_unchanged_still_correct_the_channel(
    tmp_path: Path,
) -> None:
    """A capped SKU: an order or a cancellation moves Ankorstore's reserved figure, not syncd's.

    Ankorstore shows ``stockQuantity - reservedQuantity``. Without a write after
    the order it would show one order too few (undersell); without a write after
    the cancellation, the cancelled units too many (oversell).
    """
    world = SandboxWorld.create(variants=40, seed=5)
    capped = {"ankorstore": "cap = 3\n"}
    async with (
        world.running(),
        rig(world, tmp_path, channel_keys=NO_SECOND_READ, per_channel=capped) as syncd,
    ):
        await syncd.cycle()
        [sku] = single_skus(world, "ankorstore", count=1, minimum=12)
        assert world.ankorstore.listing(sku).available_quantity == 3

        order = world.ankorstore.place_order({sku: 2})
        await syncd.cycle()
        row = (await syncd.rows("ankorstore"))[sku]
        # Capped: the sellable number is unchanged; what is written carries the order.
        assert (row.sellable, row.own_reserved) == (
            3,
            2 * world.ankorstore.listing(sku).unit_multiplier,
        )
        assert world.ankorstore.listing(sku).available_quantity == 3

        world.ankorstore.cancel_order(order.id)
        await syncd.cycle()
        assert world.ankorstore.listing(sku).available_quantity == 3
