"""The daemon's work loops: independent schedules, backoff, wake-ups and draining."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from syncd.daemon.pacing import MAX_BACKOFF_S
from syncd.daemon.runs import SourceRun
from syncd.daemon.scheduler import Scheduler
from syncd.ledger.store import Ledger
from syncd.sources.base import PollResult
from syncd.status.metrics import Metrics
from tests.unit.daemon._support import SKUS, FakeChannel, FakeSource, make_assembly, wait_for

pytestmark = pytest.mark.anyio


def scheduler_for(
    ledger: Ledger,
    sources: list[FakeSource],
    channels: list[FakeChannel],
    *,
    cycle_interval: float = 0.05,
    readback: dict[str, float] | None = None,
    max_backoff: float = MAX_BACKOFF_S,
    monotonic: Callable[[], float] = time.monotonic,
) -> Scheduler:
    return Scheduler(
        make_assembly(ledger, sources, channels),
        Metrics(),
        cycle_interval=cycle_interval,
        readback_intervals=readback,
        debounce=0.01,
        max_backoff=max_backoff,
        min_backoff=0.05,
        monotonic=monotonic,
    )


class WaitingSource(FakeSource):
    """Notes, at each poll, the back-off the scheduler chose before it (``retry_in_s``).

    What the scheduler decided is exact whatever the machine's load; how long
    it really waited is only ever at least that, so the tests compare the two
    instead of counting polls in a window of real time.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run: SourceRun | None = None
        self.waited: list[float | None] = []

    async def poll(self, ledger: Ledger) -> PollResult:
        assert self.run is not None
        self.waited.append(self.run.retry_in_s)
        return await super().poll(ledger)


def watch(scheduler: Scheduler, source: WaitingSource) -> SourceRun:
    source.run = scheduler.sources[source.name]
    return source.run


def assert_waited_out(times: list[float], waited: list[float | None]) -> None:
    """Each poll came no sooner than the back-off chosen before it.

    asyncio may run a timer up to its clock resolution early; 1 ms covers that.
    """
    for before, after, delay in zip(times, times[1:], waited[1:], strict=False):
        assert delay is not None
        assert after - before >= delay - 0.001, (after - before, delay)


# --- loops --------------------------------------------------------------------------------


async def test_sources_feed_the_engine_and_the_pushers_publish(ledger: Ledger) -> None:
    source = FakeSource(levels=dict.fromkeys(SKUS, 7))
    channel = FakeChannel()
    scheduler = scheduler_for(ledger, [source], [channel])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        assert set(channel.shown.values()) == {7}
        source.levels = {"S03": 2}
        await wait_for(lambda: channel.shown["S03"] == 2)
        await scheduler.drain(60.0)
    assert scheduler.metrics.get("pushes", channel="fabric") >= 2
    assert scheduler.metrics.get("variants_pushed", channel="fabric") == len(SKUS) + 1
    assert scheduler.metrics.get("cycles") >= 2
    assert scheduler.sources["activeants"].records >= 2


async def test_a_failing_source_backs_off_while_the_other_keeps_its_schedule(
    ledger: Ledger,
) -> None:
    broken = WaitingSource("astral", location="astral:1", always_fail=True, poll_interval=0.05)
    healthy = WaitingSource(poll_interval=0.05)
    scheduler = scheduler_for(ledger, [broken, healthy], [FakeChannel()], max_backoff=0.4)
    run, healthy_run = watch(scheduler, broken), watch(scheduler, healthy)
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(broken.poll_times) >= 7 and len(healthy.poll_times) >= 12)
        await scheduler.drain(60.0)
    # Broken: retried after 50, 100, 200, 400, 400, 400 ms (+-10 % jitter), never sooner.
    assert broken.waited[0] is None
    assert broken.waited[1:7] == [
        pytest.approx(d, rel=0.1) for d in (0.05, 0.1, 0.2, 0.4, 0.4, 0.4)
    ], broken.waited
    assert_waited_out(broken.poll_times, broken.waited)
    # Healthy: on its own 50 ms interval throughout, and polled while the broken one
    # waits out its capped back-offs. (Any one of the three 400 ms windows will do: on a
    # loaded machine a single poll of the healthy source can take a few hundred ms.)
    assert set(healthy.waited) == {None}
    assert healthy_run.consecutive_errors == 0
    capped = list(zip(broken.poll_times[3:6], broken.poll_times[4:7], strict=True))
    assert any(start < t < end for start, end in capped for t in healthy.poll_times), (
        capped,
        healthy.poll_times,
    )
    assert run.consecutive_errors == len(broken.poll_times)
    assert run.last_error == "RuntimeError: astral answered 503"
    assert run.retry_in_s is not None
    assert run.retry_in_s <= 0.45
    states = {state.feed: state for state in await ledger.feed_states()}
    assert states["astral"].last_error == "RuntimeError: astral answered 503"
    assert states["activeants"].last_error is None
    assert scheduler.metrics.get("errors", source="astral") == len(broken.poll_times)


async def test_a_source_that_recovers_returns_to_its_interval(ledger: Ledger) -> None:
    source = FakeSource(fail=2, poll_interval=0.05)
    scheduler = scheduler_for(ledger, [source], [FakeChannel()])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: scheduler.sources["activeants"].polls >= 2)
        await scheduler.drain(60.0)
    run = scheduler.sources["activeants"]
    assert run.consecutive_errors == 0
    assert run.retry_in_s is None


async def test_a_poll_that_returns_with_an_error_is_a_failure_that_keeps_what_it_read(
    ledger: Ledger,
) -> None:
    """An order listing that failed part-way: counted and backed off, its pages kept."""
    source = WaitingSource(poll_interval=0.05)
    channel = FakeChannel()
    scheduler = scheduler_for(ledger, [source], [channel], max_backoff=0.4)
    run = watch(scheduler, source)
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        last_ok, records = run.last_ok_at, run.records
        source.levels = {"S03": 4}
        source.partial_error = "HttpError: page 3 answered 502"
        await wait_for(lambda: run.consecutive_errors >= 5)
        failures = run.consecutive_errors
        assert run.last_error == "HttpError: page 3 answered 502"
        assert run.retry_in_s is not None
        assert run.last_ok_at == last_ok
        # Backed off like any failure, not polled every 50 ms: 50, 100, 200, 400 ms
        # (+-10 % jitter) between the failed polls, never sooner.
        # The first failed poll is the last one that followed a success.
        first = max(i for i, delay in enumerate(source.waited) if delay is None)
        failed_at, waited = source.poll_times[first:], source.waited[first:]
        assert waited[1:5] == [pytest.approx(d, rel=0.1) for d in (0.05, 0.1, 0.2, 0.4)]
        assert_waited_out(failed_at, waited)
        assert scheduler.metrics.get("errors", source="activeants") == failures
        # What the failed poll did record is recomputed and published.
        assert run.records > records
        await wait_for(lambda: channel.shown["S03"] == 4)
        source.partial_error = None
        await wait_for(lambda: run.consecutive_errors == 0)
        await scheduler.drain(60.0)
    assert run.last_ok_at is not None
    assert last_ok is not None
    assert run.last_ok_at > last_ok
    assert run.retry_in_s is None


async def test_a_source_behind_is_polled_again_at_once(ledger: Ledger) -> None:
    # Three pages to catch up, then the hour-long interval: all three come at once.
    source = FakeSource(pages=3, poll_interval=3600.0)
    scheduler = scheduler_for(ledger, [source], [FakeChannel()])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(source.poll_times) >= 3)
        await anyio.sleep(0.2)
        await scheduler.drain(60.0)
    assert len(source.poll_times) == 3


async def test_one_failing_channel_does_not_stop_the_other(ledger: Ledger) -> None:
    down, up = FakeChannel("ankorstore"), FakeChannel("fabric")
    down.raise_on_push = True
    scheduler = scheduler_for(ledger, [FakeSource()], [down, up])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(up.shown) == len(SKUS))
        await wait_for(lambda: scheduler.channels["ankorstore"].last_cycle is not None)
        await scheduler.drain(60.0)
    assert down.shown == {}
    cycle = scheduler.channels["ankorstore"].last_cycle
    assert cycle is not None
    assert cycle.failed == len(SKUS)
    assert scheduler.metrics.get("errors", channel="ankorstore") >= len(SKUS)
    assert scheduler.metrics.get("errors", channel="fabric") == 0
    # The failed values stay pending: they are resent once the channel is back.
    assert len(await ledger.pending("ankorstore")) == len(SKUS)


async def test_drain_lets_the_push_in_flight_finish(ledger: Ledger) -> None:
    channel = FakeChannel()
    channel.push_delay = 0.3
    scheduler = scheduler_for(ledger, [FakeSource()], [channel])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: channel.pushes_started == 1)
        assert await scheduler.drain(60.0) is True
    assert channel.pushes_finished == 1
    assert await ledger.pending("fabric") == []  # acknowledged, nothing lost


async def test_drain_abandons_work_that_outlives_the_timeout(ledger: Ledger) -> None:
    channel = FakeChannel()
    channel.push_delay = 3600.0
    scheduler = scheduler_for(ledger, [FakeSource()], [channel])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: channel.pushes_started == 1)
        started = anyio.current_time()
        assert await scheduler.drain(0.2) is False
        # Far less than the hour the push would take (generous for a loaded machine).
        assert anyio.current_time() - started < 60.0
    assert channel.pushes_finished == 0
    # The abandoned values are still pending: the next run resends them.
    assert len(await ledger.pending("fabric")) == len(SKUS)


async def test_a_loop_stuck_in_one_unit_of_work_is_reported(ledger: Ledger) -> None:
    channel = FakeChannel()
    channel.push_delay = 3600.0
    now = [1_000.0]
    # Polled once: afterwards only the push is busy for long.
    source = FakeSource(poll_interval=3600.0)
    scheduler = scheduler_for(ledger, [source], [channel], monotonic=lambda: now[0])
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: channel.pushes_started == 1)
        assert "push:fabric" not in scheduler.stuck(0.1)
        now[0] += 0.15
        assert "push:fabric" in scheduler.stuck(0.1)
        # The engine may still be finishing the pass that woke the pusher.
        await wait_for(lambda: scheduler.stuck(0.1) == ["push:fabric"])
        assert scheduler.stuck(10.0) == []
        await scheduler.drain(0.0)


async def test_read_back_corrects_a_higher_number_and_reports_a_lower_one(ledger: Ledger) -> None:
    channel = FakeChannel()
    scheduler = scheduler_for(ledger, [FakeSource()], [channel], readback={"fabric": 0.1})
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(channel.shown) == len(SKUS))
        channel.shown["S04"] = 99  # someone raised the number by hand: it could oversell
        await wait_for(lambda: channel.shown["S04"] == 10)
        channel.shown["S05"] = 3  # lowered: maybe an order syncd has not read yet
        await wait_for(lambda: bool(scheduler.channels["fabric"].drift))
        await scheduler.drain(60.0)
    drift = scheduler.channels["fabric"].drift
    assert [(d.sku, d.shown, d.acknowledged) for d in drift] == [("S05", 3, 10)]
    assert channel.shown["S05"] == 3
    assert scheduler.metrics.get("drift_found", channel="fabric") >= 1


async def test_nothing_is_pushed_before_the_channel_was_read_back(ledger: Ledger) -> None:
    channel = FakeChannel()
    channel.read_error = RuntimeError("channel listing down")
    scheduler = scheduler_for(ledger, [FakeSource()], [channel], max_backoff=0.2)
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        # The engine computed every value and the read-back was tried -- and failed -- twice.
        await wait_for(lambda: scheduler.engine.passes >= 1 and channel.reads >= 2, timeout=60)
        assert channel.batches == []
        assert not scheduler.channels["fabric"].verified
        assert "channel listing down" in (scheduler.channels["fabric"].readback_error or "")
        channel.read_error = None
        await wait_for(lambda: len(channel.shown) == len(SKUS), timeout=60)
        await scheduler.drain(1.0)
    assert scheduler.channels["fabric"].verified
