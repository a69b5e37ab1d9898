"""The daemon's work loops: sources, engine and channel pushers on their own schedules.

One :class:`Scheduler` runs one :class:`~syncd.assembly.Assembly` (the
adapters built from one config) as tasks of one anyio task group
(ARCHITECTURE.md, "Daemon"):

- one loop per **source** polls on the source's ``poll_interval`` -- again
  at once while ``PollResult.caught_up`` is False -- and backs off
  exponentially (bounded by :data:`MAX_BACKOFF_S`) while it fails -- a
  poll that returns with ``PollResult.error`` set (an order listing that
  failed part-way) counts as failing too. After
  every successful poll it tells the engine (``note_source_read``); when the
  poll recorded something it wakes the engine loop;
- the **engine** loop recomputes desired values when woken (debounced, so a
  burst of pages becomes one pass) and wakes the pushers when any value
  changed. The first pass after start (or a reload) is a full recompute;
- one **pusher** per channel runs a push round every ``cycle_interval``, or
  sooner when woken, or -- while the rate budget deferred work -- the moment
  the channel's rate limiter frees a slot (:mod:`syncd.daemon.pusher_wait`);
- one **read-back** loop per channel first reads the whole channel back and
  corrects the acknowledgements it contradicts -- the channel's pusher
  pushes nothing before that read succeeded -- then compares what the
  channel holds with what it acknowledged every ``readback_interval`` and
  corrects or reports drift by ``drift_policy`` (:mod:`syncd.readback`).

A failing loop never stops another: every exception is caught at the loop,
logged, counted, reported through :class:`SourceRun` / :class:`ChannelRun`
and retried after a backoff. ``stop()`` makes every loop finish the unit of
work in flight and return; the daemon bounds that wait and cancels what is
still running (a cancelled push is resent later: values are absolute).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

import anyio
import structlog
from anyio.abc import TaskStatus

from syncd.assembly import Assembly
from syncd.daemon.pacing import MAX_BACKOFF_S, MIN_BACKOFF_S, Wakeup, backoff_delay
from syncd.daemon.pusher_wait import wait_for_work
from syncd.daemon.runs import ChannelRun, EngineRun, SourceRun
from syncd.describe import describe_error, describe_text
from syncd.engine import ChannelCycle
from syncd.readback import ReadBack, ReadBackReport
from syncd.sources.base import PollResult, Source
from syncd.status.metrics import Metrics

log = structlog.get_logger("syncd.scheduler")

DEFERRED_RETRY_S = 1.0
"""How soon a pusher tries again when the rate budget deferred part of a round."""
DEFAULT_DEBOUNCE_S = 0.2
STUCK_AFTER_S = 300.0
"""A unit of work running longer than this is reported as stuck."""


def _is_ledger_error(exc: BaseException) -> bool:
    import sqlite3  # noqa: PLC0415 -- only for the isinstance check

    from syncd.ledger.errors import LedgerError  # noqa: PLC0415

    return isinstance(exc, sqlite3.Error | LedgerError)


class Scheduler:
    """Runs one assembly's loops until :meth:`stop`; construct inside an event loop."""

    def __init__(
        self,
        assembly: Assembly,
        metrics: Metrics,
        *,
        cycle_interval: float,
        readback_intervals: Mapping[str, float] | None = None,
        debounce: float = DEFAULT_DEBOUNCE_S,
        max_backoff: float = MAX_BACKOFF_S,
        min_backoff: float = MIN_BACKOFF_S,
        monotonic: Callable[[], float] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.assembly = assembly
        self.metrics = metrics
        self.cycle_interval = cycle_interval
        self.readback_intervals = dict(readback_intervals or {})
        self.debounce = debounce
        self.max_backoff = max_backoff
        self.min_backoff = min_backoff
        # The assembly's clock unless a test's own: ages, "now" and jitter on one timeline.
        self._monotonic = monotonic or assembly.clock.monotonic
        self._now = now = now or assembly.clock.now
        self._rand = assembly.clock.rng("scheduler.backoff").random
        self.sources: dict[str, SourceRun] = {
            s.name: SourceRun(s.name, s.poll_interval, s.stale_after) for s in assembly.sources
        }
        self.channels: dict[str, ChannelRun] = {
            name: ChannelRun(name) for name in assembly.channels
        }
        self.engine = EngineRun()
        self._stopping = anyio.Event()
        self._recompute = Wakeup()
        self._computed = anyio.Event()
        self._source_wake = {name: Wakeup() for name in self.sources}
        self._push_wake = {name: Wakeup() for name in self.channels}
        self._readback_wake = {name: Wakeup() for name in self.channels}
        self._verified = {name: anyio.Event() for name in self.channels}
        self._readbacks = {
            name: ReadBack.for_assembly(assembly, name, now=now) for name in self.channels
        }
        self._busy: dict[str, float] = {}
        self._cancel: anyio.CancelScope | None = None
        self.finished = anyio.Event()
        self.last_cycle_s = 0.0
        """Wall seconds of the last engine pass (recompute)."""

    # --- control ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every loop until :meth:`stop` (they return) or :meth:`cancel`."""
        try:
            with anyio.CancelScope() as scope:
                self._cancel = scope
                async with anyio.create_task_group() as tg:
                    for source in self.assembly.sources:
                        tg.start_soon(self._source_loop, source, name=f"source:{source.name}")
                    tg.start_soon(self._engine_loop, name="engine")
                    for channel in self.assembly.channels:
                        tg.start_soon(self._pusher_loop, channel, name=f"push:{channel}")
                        tg.start_soon(self._readback_loop, channel, name=f"readback:{channel}")
                    self._recompute.set()
                    task_status.started()
        finally:
            self.finished.set()

    def stop(self) -> None:
        """Take no new work: every loop returns after the unit of work in flight."""
        self._stopping.set()
        self._computed.set()
        for verified in self._verified.values():
            verified.set()
        for wake in (
            self._recompute,
            *self._source_wake.values(),
            *self._push_wake.values(),
            *self._readback_wake.values(),
        ):
            wake.set()

    def cancel(self) -> None:
        """Abandon the work in flight (after :meth:`stop` took too long)."""
        if self._cancel is not None:
            self._cancel.cancel()

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 -- the shutdown budget
        """:meth:`stop`, wait up to ``timeout`` s for the loops, then cancel; True if clean."""
        self.stop()
        with anyio.move_on_after(max(timeout, 0.0)):
            await self.finished.wait()
        if self.finished.is_set():
            return True
        busy = sorted(self._busy)
        log.warning("daemon.abandoning_in_flight", tasks=busy, timeout_s=timeout)
        self.cancel()
        await self.finished.wait()
        return False

    def wake_pushers(self, channel: str | None = None) -> None:
        for name, wake in self._push_wake.items():
            if channel is None or name == channel:
                wake.set()

    def stuck(self, max_age: float) -> list[str]:
        """Loops whose current unit of work has run longer than ``max_age`` seconds."""
        now = self._monotonic()
        return sorted(task for task, since in self._busy.items() if now - since > max_age)

    def _backoff(self, base: float, failures: int) -> float:
        return backoff_delay(
            base, failures, minimum=self.min_backoff, maximum=self.max_backoff, rand=self._rand
        )

    @contextmanager
    def _working(self, task: str) -> Iterator[None]:
        self._busy[task] = self._monotonic()
        try:
            yield
        finally:
            self._busy.pop(task, None)

    # --- sources -----------------------------------------------------------------------

    async def _source_loop(self, source: Source) -> None:
        state = self.sources[source.name]
        wake = self._source_wake[source.name]
        delay = 0.0
        while True:
            await wake.wait(delay)
            if self._stopping.is_set():
                return
            with self._working(f"source:{source.name}"):
                try:
                    result = await source.poll(self.assembly.ledger)
                except Exception as exc:
                    delay = await self._source_failed(source, state, exc)
                    continue
            if result.error is not None:
                delay = self._source_partly_failed(source, state, result, result.error)
                continue
            delay = self._source_succeeded(source, state, result)

    def _failure(self, source: Source, state: SourceRun, error: str, *, partial: bool) -> float:
        """Count one failed poll; returns the backoff before the next."""
        state.consecutive_errors += 1
        state.last_error = error
        state.last_error_at = state.last_poll_at = self._now()
        delay = self._backoff(source.poll_interval, state.consecutive_errors)
        state.retry_in_s = delay
        self.metrics.inc("polls", source=source.name)
        self.metrics.inc("errors", source=source.name)
        log.warning(
            "source.poll_failed",
            source=source.name,
            error=error,
            partial=partial,
            failures=state.consecutive_errors,
            retry_in_s=round(delay, 2),
        )
        return delay

    def _source_partly_failed(
        self, source: Source, state: SourceRun, result: PollResult, error: str
    ) -> float:
        """A poll that returned with ``error`` set failed (an order listing cut short).

        It is counted and backed off like a raised failure, so health names
        it before the feed goes stale. What it did record (the pages read
        before the failure; nothing is released on a partial listing) is kept
        and recomputed. It is not a successful read: the source already marked
        its feed failing, and ``note_source_read`` is not called.
        """
        delay = self._failure(source, state, describe_text(error), partial=True)
        state.records += result.recorded
        state.caught_up = result.caught_up
        if result.recorded:
            self.metrics.inc("records", result.recorded, source=source.name)
            self._recompute.set()
        if result.skipped:
            self.metrics.inc("skipped", result.skipped, source=source.name)
        return delay

    async def _source_failed(self, source: Source, state: SourceRun, exc: Exception) -> float:
        delay = self._failure(source, state, describe_error(exc), partial=False)
        try:
            await self.assembly.ledger.mark_feed(source.name, error=state.last_error)
        except Exception as ledger_exc:  # the source's failure is the news; say both
            log.warning("source.mark_failed", source=source.name, error=describe_error(ledger_exc))
        return delay

    def _source_succeeded(self, source: Source, state: SourceRun, result: PollResult) -> float:
        if state.consecutive_errors:
            log.info("source.recovered", source=source.name, failures=state.consecutive_errors)
        state.consecutive_errors = 0
        state.retry_in_s = None
        state.polls += 1
        state.records += result.recorded
        state.caught_up = result.caught_up
        state.last_poll_at = state.last_ok_at = self._now()
        self.metrics.inc("polls", source=source.name)
        if result.recorded:
            self.metrics.inc("records", result.recorded, source=source.name)
        if result.skipped:
            self.metrics.inc("skipped", result.skipped, source=source.name)
        self.assembly.engine.note_source_read()
        if result.recorded:
            self._recompute.set()
        return 0.0 if not result.caught_up else source.poll_interval

    # --- engine ------------------------------------------------------------------------

    async def _engine_loop(self) -> None:
        full = True
        state = self.engine
        while True:
            await self._recompute.wait(None)
            if self._stopping.is_set():
                return
            if not full and self.debounce > 0:
                # Sources often record several pages in a burst: one pass for all.
                with anyio.move_on_after(self.debounce):
                    await self._stopping.wait()
                if self._stopping.is_set():
                    return
                self._recompute.clear()
            started = self._monotonic()
            failed: Exception | None = None
            with self._working("engine"):
                try:
                    changed = await self.assembly.engine.recompute(full=full)
                except Exception as exc:
                    failed = exc
            if failed is not None:
                await self._recompute_failed(failed)
                continue
            self.metrics.inc("cycles")
            state.passes += 1
            state.consecutive_errors = 0
            state.last_error = None
            state.ledger_error = False
            state.last_ok_at = self._now()
            self.last_cycle_s = self._monotonic() - started
            if full or changed:
                self.wake_pushers()
            full = False
            self._computed.set()

    async def _recompute_failed(self, exc: Exception) -> None:
        state = self.engine
        state.consecutive_errors += 1
        state.last_error = describe_error(exc)
        state.ledger_error = _is_ledger_error(exc)
        self.metrics.inc("errors", component="engine")
        delay = self._backoff(1.0, state.consecutive_errors)
        log.error(
            "engine.recompute_failed",
            error=state.last_error,
            failures=state.consecutive_errors,
            retry_in_s=round(delay, 2),
            exc_info=exc,
        )
        await self._pause(delay)
        self._recompute.set()

    async def _pause(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._stopping.wait()

    # --- pushers -----------------------------------------------------------------------

    async def _pusher_loop(self, channel: str) -> None:
        state = self.channels[channel]
        wake = self._push_wake[channel]
        # Push only what the first pass of this engine computed, and only once the
        # channel was read back: until then the acknowledgements are unproven.
        await self._computed.wait()
        await self._verified[channel].wait()
        delay = 0.0
        sender = self.assembly.channels[channel]
        slot_free = sender.budget_available
        deferred = False
        while True:
            # Deferred for lack of budget: go again the moment the limiter frees a slot.
            await wait_for_work(wake.wait, delay, slot_free if deferred else None)
            if self._stopping.is_set():
                return
            with self._working(f"push:{channel}"):
                try:
                    cycle = await self.assembly.engine.push_channel(channel, max_rounds=1)
                except Exception as exc:
                    state.consecutive_errors += 1
                    state.last_error = describe_error(exc)
                    self.metrics.inc("errors", channel=channel)
                    delay = self._backoff(self.cycle_interval, state.consecutive_errors)
                    log.exception("push.round_failed", channel=channel, retry_in_s=round(delay, 2))
                    continue
            delay = self._pushed(state, cycle)
            deferred = bool(cycle.deferred)
            if deferred and slot_free is not None:
                delay = self.cycle_interval

    def _pushed(self, state: ChannelRun, cycle: ChannelCycle) -> float:
        channel = state.name
        state.rounds += 1
        state.last_cycle = cycle
        state.consecutive_errors = 0
        state.last_error = None
        if cycle.requests:
            state.last_push_at = self._now()
            self.metrics.inc("pushes", cycle.requests, channel=channel)
        if cycle.acknowledged:
            self.metrics.inc("variants_pushed", cycle.acknowledged, channel=channel)
        if cycle.failed:
            self.metrics.inc("errors", cycle.failed, channel=channel)
        if cycle.parked:
            self.metrics.inc("parked", cycle.parked, channel=channel)
        if cycle.deferred:
            return min(DEFERRED_RETRY_S, self.cycle_interval)
        return self.cycle_interval

    # --- drift read-back ---------------------------------------------------------------

    async def _readback_loop(self, channel: str) -> None:
        state = self.channels[channel]
        wake = self._readback_wake[channel]
        failures = 0
        while not state.verified:
            if self._stopping.is_set():
                return
            if await self._read_back_once(channel, startup=True):
                state.verified = True
                self._verified[channel].set()
                self.wake_pushers(channel)
                break
            failures += 1
            await wake.wait(self._backoff(self.cycle_interval, failures))
        interval = self.readback_intervals.get(channel)
        if interval is None or interval <= 0:
            return
        while True:
            await wake.wait(interval)
            if self._stopping.is_set():
                return
            await self._read_back_once(channel, startup=False)

    async def _read_back_once(self, channel: str, *, startup: bool) -> bool:
        state = self.channels[channel]
        with self._working(f"readback:{channel}"):
            try:
                report = await self.read_back(channel, startup=startup)
            except Exception as exc:
                state.readback_error = describe_error(exc)
                log.warning(
                    "channel.readback_failed",
                    channel=channel,
                    startup=startup,
                    error=state.readback_error,
                )
                return False
        state.readback_error = None
        state.last_readback_at = self._now()
        state.drift = report.standing
        state.reserved_mismatch = len(report.reserved_mismatch)
        return True

    async def read_back(self, channel: str, *, startup: bool = False) -> ReadBackReport:
        """Read the channel back and correct what the policy allows (:mod:`syncd.readback`).

        Corrected values are pushed by the channel's pusher, which is woken.
        """
        report = await self._readbacks[channel].run(startup=startup)
        self.metrics.inc("readbacks", channel=channel)
        if report.drift:
            self.metrics.inc("drift_found", len(report.drift), channel=channel)
        if report.corrected:
            self.metrics.inc("drift_restored", len(report.corrected), channel=channel)
            self.wake_pushers(channel)
        return report


def readback_intervals(assembly: Assembly) -> dict[str, float]:
    """``readback_interval`` of each assembled channel, from its config section."""
    sections = assembly.config.channels.enabled()
    return {
        name: sections[name].readback_interval for name in assembly.channels if name in sections
    }
