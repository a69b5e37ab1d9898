"""`syncd once`'s run loop on a fake clock: a real engine and ledger file, a fake channel and source.

The channel's budget refills per minute of fake time and the source records
a fresh snapshot on each read, so a run that lasts longer than the source's
``stale_after`` shows whether `syncd once` re-reads it (without that, the
engine blocks the rest of the push).
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from syncd.channels.base import LiveValue, PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.engine import ChannelCycle, Engine, FeedInfo
from syncd.ledger.freshness import FeedFreshness
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, SnapshotDraft, StockStatus, Variant
from syncd.once.command import EXIT_FAILED, EXIT_LEFT, EXIT_OK, Outstanding, ProgressLine, report
from syncd.once.run import OnceRun
from syncd.safety import SafetyPolicy
from syncd.sources.base import PollResult

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SKUS = [f"S{i:02d}" for i in range(30)]


class FakeTime:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def wall(self) -> float:
        return self.now().timestamp()

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)

    async def sleep(self, seconds: float) -> None:
        self.seconds += seconds


class MinuteBudgetChannel:
    """One value per request, ``per_minute`` requests per minute of fake time."""

    name = "fabric"
    per_request = 1
    adds_own_orders = False
    lowers_on_order = True

    def __init__(self, time: FakeTime, per_minute: int) -> None:
        self.time = time
        self.per_minute = per_minute
        self.sent_at: list[float] = []
        self.shown: dict[str, int] = {}
        self.fail_rounds = 0

    def requests_available(self) -> int:
        recent = [t for t in self.sent_at if t > self.time.seconds - 60.0]
        return max(0, self.per_minute - len(recent))

    async def budget_available(self) -> None:
        if self.requests_available() <= 0:
            # A fixed budget never frees a slot: the pusher's timeout or a wake-up ends the wait.
            await anyio.sleep_forever()

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        if self.fail_rounds:
            self.fail_rounds -= 1
            raise RuntimeError("fabric answered 503")
        result = PushResult(requests=len(batch))
        for update in batch:
            self.sent_at.append(self.time.seconds)
            self.shown[update.sku] = update.quantity
            result.acknowledged.append(update)
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        return {sku: LiveValue(sku, qty, written=qty) for sku, qty in self.shown.items()}

    def pack_sizes(self) -> Mapping[str, int]:
        return {}

    async def aclose(self) -> None:
        return None


class WarehouseSource:
    """Records the whole warehouse at every read, observed at the fake time."""

    name = "activeants"
    locations: tuple[str, ...] = ("activeants",)
    poll_interval = 10.0

    def __init__(self, time: FakeTime, stale_after: float) -> None:
        self.time = time
        self.stale_after = stale_after
        self.reads: list[float] = []
        self.error: str | None = None

    async def poll(self, ledger: Ledger) -> PollResult:
        if self.error is not None:
            raise RuntimeError(self.error)
        self.reads.append(self.time.seconds)
        at = self.time.now()
        await ledger.record_snapshot(
            SnapshotDraft(
                source=self.name,
                key=f"read-{len(self.reads)}",
                observed_at=at,
                location="activeants",
                levels={(StockStatus.AVAILABLE, sku, ""): 10 + i for i, sku in enumerate(SKUS)},
            )
        )
        await ledger.mark_feed(self.name, success_at=at)
        return PollResult(feed=self.name, recorded=1)

    async def aclose(self) -> None:
        return None


def make_run(
    ledger: Ledger, time: FakeTime, *, per_minute: int, stale_after: float
) -> tuple[OnceRun, MinuteBudgetChannel, WarehouseSource]:
    channel = MinuteBudgetChannel(time, per_minute)
    source = WarehouseSource(time, stale_after)
    ledger.freshness = FeedFreshness(time)  # source ages on the test's clock
    engine = Engine(
        ledger,
        Catalog(variants={sku: Variant(sku=sku) for sku in SKUS}, bundles={}),
        [ChannelRule(channel="fabric", locations=("activeants",))],
        {"fabric": channel},
        policies={"fabric": SafetyPolicy(confirm_increase_after_zero=False)},
        feeds=[FeedInfo("activeants", ("activeants",), stale_after=stale_after)],
        now=time.now,
    )
    run = OnceRun(
        sources=[source],
        ledger=ledger,
        engine=engine,
        channels=["fabric"],
        monotonic=time.monotonic,
        sleep=time.sleep,
    )
    return run, channel, source


async def test_a_push_longer_than_stale_after_re_reads_the_source_and_finishes(
    ledger: Ledger,
) -> None:
    time = FakeTime()
    # 30 values at 8 a minute: four minutes of pushing; the source is stale after two.
    run, channel, source = make_run(ledger, time, per_minute=8, stale_after=120.0)
    await run.read()
    await run.engine.recompute(full=True)

    totals = await run.push(confirm=False)

    fabric = totals["fabric"]
    assert channel.shown == {sku: 10 + i for i, sku in enumerate(SKUS)}
    assert fabric.last.blocked is None
    assert time.seconds >= 180.0
    # Re-read at half the stale_after, never letting it go stale.
    assert len(source.reads) >= 3
    assert all(b - a <= 120.0 for a, b in zip(source.reads, source.reads[1:], strict=False))
    # Totals over the whole run, not the last round's.
    assert (fabric.acknowledged, fabric.requests, fabric.queued_at_start) == (30, 30, 30)
    assert fabric.rounds > 4
    assert fabric.last.acknowledged < 30
    assert run.source_totals["activeants"].reads == len(source.reads)
    assert run.progress["fabric"] is None  # nothing queued any more


async def test_without_re_reads_the_same_push_would_have_blocked(ledger: Ledger) -> None:
    """The control: the engine does block a push whose source went stale."""
    time = FakeTime()
    run, channel, _source = make_run(ledger, time, per_minute=8, stale_after=120.0)
    await run.read()
    await run.engine.recompute(full=True)
    time.seconds = 121.0

    cycle = await run.engine.push_channel("fabric")

    assert cycle.blocked is not None
    assert "activeants" in cycle.blocked
    assert channel.shown == {}


async def test_the_progress_of_a_long_push_is_followed_round_by_round(ledger: Ledger) -> None:
    time = FakeTime()
    run, _channel, _source = make_run(ledger, time, per_minute=5, stale_after=3600.0)
    seen: list[tuple[int, int, float | None]] = []

    def observe(current: OnceRun) -> None:
        progress = current.progress["fabric"]
        if progress is not None:
            seen.append((progress.done, progress.total, progress.rate_per_min))

    run.on_round = observe
    await run.read()
    await run.engine.recompute(full=True)
    await run.push(confirm=False)

    assert seen[0][:2] == (5, 30)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)
    assert {total for _, total, _ in seen} == {30}
    assert seen[-1][0] == 25  # the round that finished the queue ends the backlog
    # Five a minute, measured over the last five minutes of rounds (a burst each minute).
    assert seen[-1][2] == pytest.approx(5.0, rel=0.25)


async def test_a_failing_source_and_a_failing_round_are_remembered_and_fail_the_run(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    time = FakeTime()
    run, channel, source = make_run(ledger, time, per_minute=100, stale_after=600.0)
    await run.read()
    await run.engine.recompute(full=True)
    source.error = "login refused (400 invalid_grant): check password"
    await run.read()
    channel.fail_rounds = 1

    totals = await run.push(confirm=False)
    code = report(totals, {"fabric": Outstanding()}, sources=run.source_totals, as_json=False)

    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert (
        "syncd once: source activeants failed (1 of 2 reads): "
        "RuntimeError: login refused (400 invalid_grant): check password"
    ) in err
    assert "syncd once: fabric: 1 update(s) failed; they will be retried" in err
    states = {state.feed: state for state in await ledger.feed_states()}
    assert "login refused" in (states["activeants"].last_error or "")


async def test_exit_status_separates_done_left_and_failed(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    time = FakeTime()
    run, _channel, _source = make_run(ledger, time, per_minute=100, stale_after=600.0)
    await run.read()
    await run.engine.recompute(full=True)
    totals = await run.push(confirm=False)

    assert report(totals, {}, sources=run.source_totals, as_json=False) == EXIT_OK
    out = capsys.readouterr().out
    assert "fabric: 30 acknowledged, 0 parked, 0 failed, 30 request(s) in 1 round(s)" in out

    deferred = ChannelCycle("fabric", deferred=3)
    totals["fabric"].add(deferred)
    assert report(totals, {}, sources=run.source_totals, as_json=False) == EXIT_LEFT


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_the_progress_line_is_drawn_only_on_a_terminal(ledger: Ledger) -> None:
    time = FakeTime()
    run, _channel, _source = make_run(ledger, time, per_minute=10, stale_after=3600.0)
    terminal, pipe = Terminal(), io.StringIO()
    on_terminal, on_pipe = ProgressLine(terminal), ProgressLine(pipe)

    def both(current: OnceRun) -> None:
        on_terminal.show(current)
        on_pipe.show(current)

    run.on_round = both
    await run.read()
    await run.engine.recompute(full=True)
    await run.push(confirm=False)
    on_terminal.clear()
    on_pipe.clear()

    assert pipe.getvalue() == ""
    drawn = terminal.getvalue()
    assert "\r\x1b[Ksyncd once: fabric 10/30 (33%)" in drawn
    assert "\n" not in drawn
    assert drawn.endswith("\r\x1b[K")


async def test_log_lines_scroll_above_the_progress_line(ledger: Ledger) -> None:
    time = FakeTime()
    run, _channel, _source = make_run(ledger, time, per_minute=10, stale_after=3600.0)
    terminal = Terminal()
    line = ProgressLine(terminal)
    await run.read()
    await run.engine.recompute(full=True)
    run.on_round = line.show

    run.on_round(run)  # nothing pushed yet: nothing to show
    assert terminal.getvalue() == ""
    await run.push(confirm=False)
    drawn = terminal.getvalue()
    line.write("push.sent channel=fabric\n")

    # The log line erased the progress line first, then started at the margin.
    assert terminal.getvalue() == drawn + "\r\x1b[Kpush.sent channel=fabric\n"
    line.write("another\n")
    assert terminal.getvalue().endswith("channel=fabric\nanother\n")
    assert line.isatty()
    assert not ProgressLine(io.StringIO()).isatty()


class OrderFeed:
    """fabric's own order feed: records nothing, marks the feed read (or fails)."""

    name = "fabric_orders"
    locations: tuple[str, ...] = ("activeants",)
    poll_interval = 10.0
    stale_after = 600.0

    def __init__(self, time: FakeTime) -> None:
        self.time = time
        self.reads: list[float] = []
        self.failing = False

    async def poll(self, ledger: Ledger) -> PollResult:
        self.reads.append(self.time.seconds)
        if self.failing:
            raise RuntimeError("fabric answered 503 on /v1/orders")
        await ledger.mark_feed(self.name, success_at=self.time.now())
        return PollResult(feed=self.name)

    async def aclose(self) -> None:
        return None


def with_order_feed(
    ledger: Ledger, time: FakeTime, *, per_minute: int
) -> tuple[OnceRun, MinuteBudgetChannel, OrderFeed]:
    channel = MinuteBudgetChannel(time, per_minute)
    stock, orders = WarehouseSource(time, 600.0), OrderFeed(time)
    ledger.freshness = FeedFreshness(time)
    engine = Engine(
        ledger,
        Catalog(variants={sku: Variant(sku=sku) for sku in SKUS}, bundles={}),
        [ChannelRule(channel="fabric", locations=("activeants",))],
        {"fabric": channel},
        policies={"fabric": SafetyPolicy(confirm_increase_after_zero=False)},
        feeds=[
            FeedInfo("activeants", ("activeants",), stale_after=600.0),
            FeedInfo(
                "fabric_orders",
                ("activeants",),
                stale_after=600.0,
                channel="fabric",
                overdue_after=20.0,
            ),
        ],
        now=time.now,
    )
    run = OnceRun(
        sources=[stock, orders],
        ledger=ledger,
        engine=engine,
        channels=["fabric"],
        monotonic=time.monotonic,
        sleep=time.sleep,
    )
    return run, channel, orders


async def test_the_channels_own_order_feed_is_kept_from_going_overdue(ledger: Ledger) -> None:
    """Increases wait while fabric's order feed is overdue (20 s here): a long push re-reads it."""
    time = FakeTime()
    run, channel, orders = with_order_feed(ledger, time, per_minute=8)
    await run.read()
    await run.engine.recompute(full=True)

    totals = await run.push(confirm=False)

    assert len(channel.shown) == 30
    assert totals["fabric"].last.waiting == 0
    assert all(b - a <= 20.0 for a, b in zip(orders.reads, orders.reads[1:], strict=False))
    # Only the order feed needed reading that often.
    assert run.source_totals["activeants"].reads < run.source_totals["fabric_orders"].reads


async def test_increases_that_a_fresh_read_cannot_release_are_reported_after_two_tries(
    ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    time = FakeTime()
    run, channel, orders = with_order_feed(ledger, time, per_minute=100)
    await run.read()
    await run.engine.recompute(full=True)
    # Read once, then failing: not stale yet, but overdue -- increases wait for it.
    orders.failing = True
    await run.read([orders])

    totals = await run.push(confirm=False)

    fabric = totals["fabric"]
    assert channel.shown == {}
    assert fabric.rounds == 3  # the first, then one after each fresh read of every source
    assert run.source_totals["fabric_orders"].reads == 4
    assert fabric.last.waiting == 30
    code = report(totals, {}, sources=run.source_totals, as_json=False)
    assert code == EXIT_FAILED
    err = capsys.readouterr().err
    assert "syncd once: fabric: 30 increase(s) wait for the channel's own orders" in err
    assert "syncd once: source fabric_orders failed (3 of 4 reads): RuntimeError: fabric" in err


async def test_a_channel_whose_start_up_read_failed_is_not_pushed_and_fails_the_run(
    ledger: Ledger,
) -> None:
    time = FakeTime()
    run, channel, _ = make_run(ledger, time, per_minute=100, stale_after=600.0)
    await run.read()
    await run.engine.recompute(full=True)

    totals = await run.push(confirm=False, skip={"fabric": "ReadTimeout: listing"})

    assert channel.shown == {}
    assert totals["fabric"].errors == ["could not read the channel back: ReadTimeout: listing"]
