"""fabric at its rate: a batch of writes goes out side by side, within the rate, and is
confirmed by one list read; drift read-backs read only what fabric changed.

The fake fabric (``test_fabric_channel.FakeFabric``) stamps each change on
the channel's fake wall clock and answers ``updated_at_gte`` and
``order_by=-inventory_updated_at`` as the seed documents them (seed 003
L4866-4874), so what is counted here is what fabric would be sent.
"""

from __future__ import annotations

import json
import math

import httpx
import pytest

from syncd.channels.fabric import FULL_READ_EVERY_S, MAX_IN_FLIGHT, FabricChannel
from syncd.channels.fabric_values import MAX_BATCH, batch_size, pace_window
from syncd.channels.updates import Move, PlannedUpdate
from syncd.clock import FakeClock
from syncd.http.budget import Window
from tests.unit.channels.test_fabric_channel import (
    FakeFabric,
    FakeItem,
    catalog_of,
    make_channel,
    update,
)
from tests.unit.http.test_budget import max_in_any_window

pytestmark = pytest.mark.anyio


def fabric_of(count: int, **kwargs: object) -> tuple[FakeFabric, list[str]]:
    skus = [f"S{n:04d}" for n in range(1, count + 1)]
    items = [FakeItem(n, f"FB-{sku}", 0) for n, sku in enumerate(skus, start=1)]
    return FakeFabric(*items, **kwargs), skus  # type: ignore[arg-type]


# --- batch size (pure) ---------------------------------------------------------------------------


def test_a_batch_is_what_the_tightest_window_lets_the_channel_send() -> None:
    # The example config: 60 a minute, budget_share 0.8 -> 48, less the confirming read.
    assert batch_size((Window(60, 60.0),), 0.2) == 47
    assert batch_size((Window(60, 60.0),), 0.2, confirming_reads=0) == 48
    assert batch_size((Window(6, 60.0),), 0.2) == 3  # a slow API: small batches
    assert batch_size((Window(600, 60.0),), 0.2) == MAX_BATCH
    assert batch_size((Window(600, 60.0),), 0.0, (pace_window(10.0),)) == 9
    assert batch_size((Window(1, 60.0),), 0.0) == 1  # never below one update
    assert pace_window(0.5) == Window(1, 120.0)


# --- one batch -------------------------------------------------------------------------------------


async def test_a_batch_is_confirmed_by_one_list_read_not_one_get_per_item() -> None:
    fake, skus = fabric_of(40)
    channel, _ = make_channel(fake, catalog_of(*skus))
    result = await channel.push([update(sku, 7) for sku in skus])
    assert sorted(u.sku for u in result.acknowledged) == skus
    assert all(item.inventory == 7 for item in fake.items.values())
    assert len(fake.writes()) == 40
    assert len(fake.slices()) == 1
    assert fake.item_reads() == []
    assert result.requests == 1 + 40 + 1  # the map, the writes, the confirming read


async def test_a_write_the_slice_does_not_show_is_read_on_its_own() -> None:
    fake, skus = fabric_of(3)
    fake.stamp_writes = False  # fabric's clock far behind syncd's, say
    channel, _ = make_channel(fake, catalog_of(*skus))
    result = await channel.push([update(sku, 4) for sku in skus])
    assert sorted(u.sku for u in result.acknowledged) == skus
    assert len(fake.item_reads()) == 3


async def test_an_order_fabric_counted_after_the_write_shows_in_the_slice_as_a_mismatch() -> None:
    fake, skus = fabric_of(5)

    def order_on_item_3(item: FakeItem) -> None:
        if item.id == 3:
            item.inventory = int(item.inventory) - 1

    fake.after_write = order_on_item_3
    channel, _ = make_channel(fake, catalog_of(*skus))
    result = await channel.push([update(sku, 10) for sku in skus])
    assert [u.sku for u, _ in result.failed] == [skus[2]]
    assert "shows 9" in result.failed[0][1]
    assert len(result.acknowledged) == 4
    assert fake.item_reads() == []


async def test_writes_go_out_side_by_side_up_to_the_in_flight_cap() -> None:
    fake, skus = fabric_of(40)
    clock = FakeClock()
    in_flight = peak = 0

    async def slow_fabric(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        if request.method == "PATCH":
            in_flight += 1
            peak = max(peak, in_flight)
            await clock.sleep(0.5)  # fabric takes half a second per write
            in_flight -= 1
        return fake.handler(request)

    channel, _ = make_channel(
        fake, catalog_of(*skus), clock=clock, transport=httpx.MockTransport(slow_fabric)
    )
    started = clock.monotonic()
    result = await channel.push([update(sku, 2) for sku in skus])
    assert len(result.acknowledged) == 40
    assert peak == MAX_IN_FLIGHT
    # One after the other would take 20 s; eight at a time, 40 / 8 x 0.5 s.
    assert clock.monotonic() - started == pytest.approx(40 / MAX_IN_FLIGHT * 0.5, abs=0.1)


async def test_the_writes_leave_in_the_planners_order() -> None:
    fake, skus = fabric_of(20)
    channel, _ = make_channel(fake, catalog_of(*skus))
    await channel.push([update(skus[0], 1)])  # the map is read
    order = list(reversed(skus))
    await channel.push([update(sku, 3) for sku in order])
    written = [int(r.url.path.rstrip("/").rsplit("/", 1)[1]) for r in fake.writes()[1:]]
    assert written == [fake_id for fake_id in range(20, 0, -1)]


# --- at the rate -------------------------------------------------------------------------------------


async def drive(channel: FabricChannel, updates: list[PlannedUpdate]) -> int:
    """What the engine and the pusher do: plan what the budget allows, wait for a slot."""
    acknowledged = 0
    while updates:
        batches = channel.requests_available()
        if batches == 0:
            await channel.budget_available()
            continue
        take = batches * channel.per_request
        batch, updates = updates[:take], updates[take:]
        for start in range(0, len(batch), channel.per_request):
            result = await channel.push(batch[start : start + channel.per_request])
            acknowledged += len(result.acknowledged)
    return acknowledged


async def test_a_first_sync_runs_at_the_configured_rate_and_never_above_it() -> None:
    fake, skus = fabric_of(200)
    clock = FakeClock(start=0.0)
    sent: list[float] = []

    def count(request: httpx.Request) -> httpx.Response | None:
        sent.append(clock.monotonic())
        return None

    fake.intercept = count
    # 60 a minute, of which the channel may use 48 (budget_share 0.8).
    channel, _ = make_channel(fake, catalog_of(*skus), clock=clock, windows=(Window(60, 60.0),))
    assert channel.per_request == 47
    acknowledged = await drive(channel, [update(sku, 5) for sku in skus])
    assert acknowledged == 200
    assert max_in_any_window(sent, 60.0) <= 48
    # 200 writes, 5 confirming reads and the map (4 pages of 50): 209 requests at 48 a minute.
    requests = len(sent)
    assert requests == 200 + math.ceil(200 / 47) + 4
    minutes = math.ceil(requests / 48) - 1  # the first window's worth goes out at once
    assert clock.monotonic() == pytest.approx(60.0 * minutes, abs=1.0)


async def test_budget_available_wakes_when_the_oldest_request_leaves_the_window() -> None:
    fake, skus = fabric_of(1)
    clock = FakeClock(start=0.0)
    # 5 a minute, 4 of them for the channel.
    channel, _ = make_channel(fake, catalog_of(*skus), clock=clock, windows=(Window(5, 60.0),))
    await channel.push([update(skus[0], 1)])  # t=0: map, write, confirming read
    clock.advance(10.0)
    await channel.push([update(skus[0], 2, seq=2)])  # write at t=10; its read waits for t=60
    assert clock.monotonic() == pytest.approx(60.0, abs=0.01)
    await channel.push([update(skus[0], 3, seq=3)])  # write and read at t=60: the window is full
    assert channel.requests_available() == 0
    await channel.budget_available()
    # The write of t=10 leaves the window at t=70: not a tick later, not sooner.
    assert clock.monotonic() == pytest.approx(70.0, abs=0.01)
    assert channel.requests_available() == 1
    assert len(fake.requests) == 7  # waiting took no request


# --- drift read-back -----------------------------------------------------------------------------------


async def test_a_drift_read_back_reads_only_what_fabric_changed_between_full_reads() -> None:
    fake = FakeFabric(*(FakeItem(n, f"FB-S{n}", 3) for n in range(1, 8)), page_size=3)
    channel, clock = make_channel(fake, catalog_of(*(f"S{n}" for n in range(1, 8))))
    await channel.read_live()
    assert len(fake.full_lists()) == 3
    clock.advance(600)
    fake.items[5].inventory, fake.items[5].updated_at = 1, fake.now()  # an order on fabric
    live = await channel.read_live(["S1", "S5"])
    assert {sku: v.written for sku, v in live.items()} == {"S1": 3, "S5": 1}
    assert len(fake.full_lists()) == 3  # no second full read
    assert len(fake.slices()) == 1
    clock.advance(FULL_READ_EVERY_S)
    await channel.read_live(["S1", "S5"])
    assert len(fake.full_lists()) == 6  # once a day the whole list again


async def test_an_item_recreated_under_a_new_id_makes_the_read_back_read_everything() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 3), FakeItem(2, "FB-B", 3))
    channel, clock = make_channel(fake, catalog_of("A", "B"))
    await channel.read_live()
    clock.advance(600)
    del fake.items[1]
    fake.items[9] = FakeItem(9, "FB-A", 8, updated_at=fake.now())
    live = await channel.read_live(["A", "B"])
    assert live["A"].raw["inventoryId"] == 9
    assert live["A"].written == 8
    assert len(fake.full_lists()) == 2


async def test_an_error_that_is_not_an_http_answer_ends_the_batch_as_itself() -> None:
    fake, skus = fabric_of(3)
    channel, _ = make_channel(fake, catalog_of(*skus))
    await channel.push([update(skus[0], 1)])  # the map is read

    def bug(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH":
            raise RuntimeError("the transport broke")
        return None

    fake.intercept = bug
    # The engine records the whole batch as failed from this error; a group
    # of concurrent failures would hide what it was.
    with pytest.raises(RuntimeError, match="the transport broke"):
        await channel.push([update(sku, 2, seq=2) for sku in skus])


async def test_every_decrease_lands_before_the_first_increase_leaves() -> None:
    fake, skus = fabric_of(12)
    clock = FakeClock()
    landed: list[int] = []

    async def far_for_decreases(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            quantity = json.loads(request.content)["inventory"]
            # The decreases travel slowly, the increases fast: sent side by side, an
            # increase would land first.
            await clock.sleep(1.0 if quantity == 0 else 0.1)
            landed.append(quantity)
        return fake.handler(request)

    channel, _ = make_channel(
        fake, catalog_of(*skus), clock=clock, transport=httpx.MockTransport(far_for_decreases)
    )
    for item in fake.items.values():
        item.inventory = 5
    batch = [
        PlannedUpdate(sku=sku, quantity=0, seq=1, previous=5, move=Move.TO_ZERO) for sku in skus[:6]
    ] + [
        PlannedUpdate(sku=sku, quantity=9, seq=1, previous=5, move=Move.INCREASE)
        for sku in skus[6:]
    ]
    result = await channel.push(batch)
    assert len(result.acknowledged) == 12
    assert landed == [0] * 6 + [9] * 6
