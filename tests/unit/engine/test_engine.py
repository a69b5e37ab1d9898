"""The engine cycle over a real ledger file and a recording fake channel."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from syncd.channels.base import LiveValue, PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.engine import Engine, FeedInfo
from syncd.ledger.freshness import FeedFreshness
from syncd.ledger.store import Ledger
from syncd.model import (
    MAX_UNITS,
    Bundle,
    Catalog,
    ChannelRule,
    OrderObservation,
    SnapshotDraft,
    StockStatus,
    Variant,
)
from syncd.safety import SafetyPolicy

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class FakeChannel:
    """Records every batch; optionally refuses SKUs or fails whole batches."""

    def __init__(self, name: str = "ankorstore", per_request: int = 50) -> None:
        self.name = name
        self.per_request = per_request
        self.batches: list[list[PlannedUpdate]] = []
        self.shown: dict[str, int] = {}
        self.refuse: dict[str, str] = {}
        self.fail_next = 0
        self.budget = 1_000
        self.packs: Mapping[str, int] = {}
        self.adds_own_orders = False
        self.lowers_on_order = name == "fabric"

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        self.batches.append(list(batch))
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("503 from channel")
        result = PushResult(requests=1, request_ids=[f"req-{len(self.batches)}"])
        for update in batch:
            if update.sku in self.refuse:
                result.parked.append((update, self.refuse[update.sku]))
            else:
                self.shown[update.sku] = update.quantity
                result.acknowledged.append(update)
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        return {sku: LiveValue(sku, qty, written=qty) for sku, qty in self.shown.items()}

    def requests_available(self) -> int:
        return self.budget

    async def budget_available(self) -> None:
        if self.requests_available() <= 0:
            # A fixed budget never frees a slot: the pusher's timeout or a wake-up ends the wait.
            await anyio.sleep_forever()

    def pack_sizes(self) -> Mapping[str, int]:
        return self.packs

    async def aclose(self) -> None:
        return None

    @property
    def sent(self) -> list[PlannedUpdate]:
        return [u for b in self.batches for u in b]


def catalog(n: int = 30) -> Catalog:
    variants = {f"S{i:02d}": Variant(sku=f"S{i:02d}") for i in range(n)}
    variants["B1"] = Variant(sku="B1")
    return Catalog(variants=variants, bundles={"B1": Bundle("B1", {"S00": 2, "S01": 1})})


class Clock:
    """The engine's wall clock and the ledger's monotonic one, moved together by ``now``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def wall(self) -> float:
        return self.now.timestamp()

    def monotonic(self) -> float:
        return (self.now - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def stocked(**overrides: int) -> dict[str, int]:
    """Every single SKU at 10 units, with some overridden."""
    return {f"S{i:02d}": 10 for i in range(30)} | overrides


async def snapshot(ledger: Ledger, levels: dict[str, int], key: str, *, at: datetime = T0) -> None:
    await ledger.record_snapshot(
        SnapshotDraft(
            source="activeants",
            key=key,
            observed_at=at,
            location="activeants",
            levels={(StockStatus.AVAILABLE, sku, ""): qty for sku, qty in levels.items()},
        )
    )
    await ledger.mark_feed("activeants", success_at=at)


def make_engine(
    ledger: Ledger, channel: FakeChannel, clock: Clock, policy: SafetyPolicy | None = None
) -> Engine:
    ledger.freshness = FeedFreshness(clock)  # feed ages on the test's clock
    return Engine(
        ledger,
        catalog(),
        [ChannelRule(channel=channel.name, locations=("activeants",))],
        {channel.name: channel},
        policies={channel.name: policy or SafetyPolicy(confirm_increase_after_zero=False)},
        feeds=[FeedInfo("activeants", ("activeants",), stale_after=600)],
        now=clock,
    )


async def test_recompute_and_push_publishes_every_sku_once(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {f"S{i:02d}": 10 + i for i in range(30)}, "s1")
    assert await engine.recompute() == 31
    cycle = await engine.push_channel("ankorstore")
    assert cycle.settled
    assert channel.shown["S05"] == 15
    assert channel.shown["B1"] == min(10 // 2, 11)  # the bundle: min(S00/2, S01/1)
    assert len(channel.batches) == 1  # 31 updates fit one request
    assert await engine.push_channel("ankorstore") == type(cycle)(channel="ankorstore")
    assert len(channel.batches) == 1  # nothing changed: nothing sent


async def test_incremental_recompute_touches_only_changed_skus_and_their_bundles(
    ledger: Ledger,
) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {f"S{i:02d}": 10 for i in range(30)}, "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    channel.batches.clear()
    await snapshot(ledger, {"S00": 4}, "s2")
    assert await engine.recompute() == 2  # S00 and the bundle built from it
    await engine.push_channel("ankorstore")
    assert sorted((u.sku, u.quantity) for u in channel.sent) == [("B1", 2), ("S00", 4)]


async def test_superseded_value_is_never_sent(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {f"S{i:02d}": 10 for i in range(30)}, "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    channel.batches.clear()
    await snapshot(ledger, {"S07": 3}, "s2")
    await engine.recompute()
    await snapshot(ledger, {"S07": 8}, "s3")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    assert [(u.sku, u.quantity) for u in channel.sent] == [("S07", 8)]


async def test_decreases_are_sent_before_increases(ledger: Ledger) -> None:
    channel, clock = FakeChannel(per_request=2), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {f"S{i:02d}": 10 for i in range(30)}, "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    channel.batches.clear()
    await snapshot(ledger, {"S10": 20, "S11": 20, "S12": 1, "S13": 2}, "s2")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    assert [u.sku for u in channel.sent] == ["S12", "S13", "S10", "S11"]


async def test_mass_zero_is_held_until_confirmed(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {f"S{i:02d}": 10 for i in range(30)}, "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    channel.batches.clear()
    await snapshot(ledger, {f"S{i:02d}": 0 for i in range(30)}, "s2")
    await engine.recompute()
    cycle = await engine.push_channel("ankorstore")
    assert cycle.held_id is not None
    assert channel.batches == []
    again = await engine.push_channel("ankorstore")
    assert again.held_id == cycle.held_id  # one hold, not one per cycle
    assert channel.batches == []
    assert await engine.confirm("ankorstore") == [cycle.held_id]
    done = await engine.push_channel("ankorstore")
    assert done.settled
    assert all(qty == 0 for qty in channel.shown.values())


async def test_stale_source_blocks_every_push(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {"S00": 5}, "s1")
    await engine.recompute()
    clock.now = T0 + timedelta(seconds=601)
    cycle = await engine.push_channel("ankorstore")
    assert cycle.blocked is not None
    assert "activeants" in cycle.blocked
    assert channel.batches == []


async def test_a_block_names_the_stale_source_and_the_error_that_stops_it(
    ledger: Ledger,
) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {"S00": 5}, "s1")
    await engine.recompute()
    clock.now = T0 + timedelta(seconds=930)
    refused = "AuthError: activeants POST /token: login refused (400 invalid_grant): check it"
    await ledger.mark_feed("activeants", error=refused, error_at=T0 + timedelta(seconds=900))

    cycle = await engine.push_channel("ankorstore")

    assert cycle.blocked is not None
    assert cycle.blocked.startswith(
        f"stale source(s): activeants (no successful read for 930 s: {refused});"
    )
    assert channel.batches == []


async def test_a_failing_push_leaves_values_pending_for_the_next_round(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, stocked(S00=5, S01=6), "s1")
    await engine.recompute()
    channel.fail_next = 1
    first = await engine.push_channel("ankorstore")
    assert first.failed == 31
    assert channel.shown == {}
    second = await engine.push_channel("ankorstore")
    assert second.settled
    assert channel.shown["S01"] == 6


async def test_refused_variant_is_parked_and_not_retried(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    channel.refuse["S03"] = "422 stockQuantity: unknown variant"
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, {f"S{i:02d}": 10 for i in range(30)}, "s1")
    await engine.recompute()
    cycle = await engine.push_channel("ankorstore")
    assert cycle.parked == 1
    assert cycle.acknowledged == 30
    channel.batches.clear()
    await engine.push_channel("ankorstore")
    assert channel.batches == []


async def test_reservations_lower_what_is_published(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, stocked(S04=10), "s1")
    await ledger.record_orders(
        "fabric_orders",
        "o1",
        T0,
        [OrderObservation("fabric", "PO-1", "open", T0, {"S04": 3}, "activeants")],
        complete=False,
    )
    await engine.recompute()
    await engine.push_channel("ankorstore")
    assert channel.shown["S04"] == 7


async def test_increase_after_zero_waits_for_a_second_read(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock, SafetyPolicy(confirm_increase_after_zero=True))
    await snapshot(ledger, stocked(S02=0), "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    assert channel.shown["S02"] == 0
    await snapshot(ledger, {"S02": 9}, "s2")
    engine.note_source_read()
    await engine.recompute()
    waiting = await engine.push_channel("ankorstore")
    assert waiting.waiting == 1
    assert channel.shown["S02"] == 0
    engine.note_source_read()  # the next read computes the same value
    await engine.push_channel("ankorstore")
    assert channel.shown["S02"] == 9


async def test_a_confirmation_does_not_cover_a_later_mass_zero(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, stocked(), "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    first_half = {f"S{i:02d}": 0 for i in range(2, 16)}  # not B1's components
    clock.now = T0 + timedelta(minutes=1)
    await snapshot(ledger, first_half, "s2", at=clock.now)
    await engine.recompute()
    held = await engine.push_channel("ankorstore")
    assert held.held_id is not None
    await engine.confirm("ankorstore", held.held_id)
    assert (await engine.push_channel("ankorstore")).settled
    clock.now = T0 + timedelta(minutes=2)
    await snapshot(ledger, {sku: 10 for sku in first_half}, "s3", at=clock.now)
    await engine.recompute()
    assert (await engine.push_channel("ankorstore")).settled
    sent = len(channel.sent)

    # Another bad read a minute later, well within the confirmation's lifetime.
    clock.now = T0 + timedelta(minutes=3)
    await snapshot(ledger, {f"S{i:02d}": 0 for i in range(16, 30)}, "s4", at=clock.now)
    await engine.recompute()
    again = await engine.push_channel("ankorstore")

    assert again.held_id is not None
    assert again.held_id != held.held_id
    assert len(channel.sent) == sent


async def test_a_channel_pack_learnt_later_recomputes_before_the_next_push(ledger: Ledger) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, stocked(S05=20), "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    assert channel.shown["S05"] == 20
    channel.packs = {"S05": 6}  # the channel says it sells S05 in cases of 6
    cycle = await engine.push_channel("ankorstore")
    assert cycle.settled
    assert channel.shown["S05"] == 18
    [row] = [r for r in await ledger.outbox_rows("ankorstore") if r.sku == "S05"]
    (explanation,) = [await ledger.explanation("ankorstore", "S05")]
    assert row.desired == 18
    assert explanation is not None
    assert explanation["result"] == 18
    assert engine.take_packs("ankorstore") is False  # same mapping: nothing to do


async def test_a_channel_that_adds_its_own_orders_gets_them_back_and_a_rewrite_when_they_move(
    ledger: Ledger,
) -> None:
    channel, clock = FakeChannel(), Clock()
    channel.adds_own_orders = True
    ledger.freshness = FeedFreshness(clock)  # feed ages on the test's clock
    engine = Engine(
        ledger,
        catalog(),
        [ChannelRule(channel="ankorstore", locations=("activeants",))],
        {"ankorstore": channel},
        policies={"ankorstore": SafetyPolicy(confirm_increase_after_zero=False)},
        feeds=[
            FeedInfo("activeants", ("activeants",), stale_after=600),
            FeedInfo("ankorstore_orders", ("activeants",), stale_after=600, channel="ankorstore"),
        ],
        now=clock,
    )
    await snapshot(ledger, stocked(), "s1")
    await ledger.mark_feed("ankorstore_orders", success_at=T0)

    async def orders(key: str, lines: dict[str, int]) -> None:
        observation = OrderObservation(
            channel="ankorstore",
            order_ref="AK-1",
            status="brand_confirmed" if lines else "shipped",
            observed_at=clock.now,
            open_lines=lines,
            location="activeants",
        )
        await ledger.record_orders(
            "ankorstore_orders",
            key,
            clock.now,
            [observation],
            complete=False,
            channels=["ankorstore"],
        )

    await orders("o1", {"S03": 4})
    await engine.recompute()
    await engine.push_channel("ankorstore")
    # 10 - 4 = 6 sellable, + the 4 Ankorstore holds itself: 10 written.
    assert channel.shown["S03"] == 10
    [row] = [r for r in await ledger.outbox_rows("ankorstore") if r.sku == "S03"]
    assert (row.desired, row.own_reserved, row.sellable) == (10, 4, 6)
    writes = len(channel.sent)
    # Ankorstore ships the order (and lowers stockQuantity by 4 itself); the
    # warehouse read still shows 10 until it catches up: the value stays 10,
    # and it is written again so Ankorstore shows syncd's number.
    clock.now += timedelta(seconds=30)
    channel.shown["S03"] = 6
    await orders("o2", {})
    await engine.push_channel("ankorstore")
    assert channel.shown["S03"] == 10
    assert [u.sku for u in channel.sent[writes:]] == ["S03"]


async def test_a_wall_clock_set_back_does_not_let_a_later_mass_zero_pass_as_confirmed(
    ledger: Ledger,
) -> None:
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, stocked(), "s1")
    await engine.recompute()
    await engine.push_channel("ankorstore")
    clock.now = T0 + timedelta(minutes=10)
    await snapshot(ledger, {f"S{i:02d}": 0 for i in range(2, 16)}, "s2", at=clock.now)
    await engine.recompute()
    held = await engine.push_channel("ankorstore")
    assert held.held_id is not None
    await engine.confirm("ankorstore", held.held_id)
    assert (await engine.push_channel("ankorstore")).settled
    sent = len(channel.sent)

    # The host's clock is set back five minutes; another bad read follows.
    clock.now = T0 + timedelta(minutes=5)
    await snapshot(ledger, {f"S{i:02d}": 0 for i in range(16, 30)}, "s3", at=clock.now)
    await engine.recompute()
    again = await engine.push_channel("ankorstore")

    assert again.held_id is not None
    assert again.held_id != held.held_id
    assert len(channel.sent) == sent
    # A restarted engine keeps the floor: it reads the latest stamp from the ledger.
    restarted = make_engine(ledger, channel, clock)
    assert await restarted.stamp() >= T0 + timedelta(minutes=10)


async def test_a_value_beyond_the_one_bound_is_parked_and_never_reaches_the_channel(
    ledger: Ledger,
) -> None:
    """Quantities are validated once, by the planner, for every channel (MAX_UNITS)."""
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    # Sources never record such a figure (they skip it at ingest); the ledger's own
    # storage bound is wider, so the planner is what stands between it and a channel.
    levels = {f"S{i:02d}": 10 for i in range(30)} | {"S01": MAX_UNITS + 5}
    await snapshot(ledger, levels, "s1")
    await engine.recompute()
    cycle = await engine.push_channel("ankorstore")
    sent = {u.sku: u.quantity for batch in channel.batches for u in batch}
    assert "S01" not in sent
    assert sent["S00"] == 10
    assert cycle.parked == 1
    [row] = [r for r in await ledger.outbox_rows("ankorstore") if r.sku == "S01"]
    assert row.status == "parked"
    assert "above the largest syncd sends" in (row.reason or "")
