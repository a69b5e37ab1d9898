"""The work of one `syncd once` run: read the sources, push round after round, keep totals.

A first full sync can take hours: fabric takes one request per variant, and
a catalog of 3 000 at 30 requests a minute is a long push. So a run

- pushes every channel in turn, round after round, while the rate budget
  defers work and rounds make progress -- it gives up on a channel whose
  budget made no room for :data:`STALL_S` seconds;
- re-reads every source that was last read :data:`REREAD_SHARE` of its
  ``stale_after`` ago (of ``overdue_after`` for a channel's own order feed),
  so the numbers stay fresh and a long push is never blocked half-way by
  sources it read itself at the start; increases that wait for a fresh read
  get one (every source again), twice at most;
- keeps totals over the whole run (:class:`ChannelTotals`,
  :class:`SourceTotals`), which `syncd once` reports and judges its exit
  status by: every failure of a source or a push round is remembered, even
  when a later attempt succeeded;
- follows each channel's backlog (:mod:`syncd.channel_progress`) for the
  progress line `syncd once` shows on a terminal.

Time is injected (``monotonic``, ``sleep``) so tests run hours in milliseconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import structlog

from syncd.assembly import Assembly
from syncd.callers import local_caller
from syncd.channel_progress import ChannelProgress, channel_client
from syncd.engine import ChannelCycle, Engine
from syncd.engine.plan import Action
from syncd.ledger.store import Ledger
from syncd.progress import Progress
from syncd.scheduler import describe_error, describe_text
from syncd.sources.base import PollResult, Source
from syncd.wiring import ApiClients

log = structlog.get_logger("syncd.once")

MAX_PAGES_PER_SOURCE = 10_000
"""Bound on polls per source in one read: a feed that never catches up is an error."""
STALL_S = 300.0
"""Give up on a channel whose rounds sent nothing for this long (an exhausted hour window)."""
ROUND_PAUSE_S = 1.0
"""Between rounds while the rate budget defers work."""
REREAD_SHARE = 0.5
"""Re-read a source once this share of its ``stale_after`` has passed since its last read."""
MAX_WAITING_ROUNDS = 2
"""Rounds in a row (each after a fresh read of every source) that only waited, before the
run reports the wait instead of trying again: an order feed that keeps failing."""


@dataclass(slots=True)
class SourceTotals:
    """What one source did over the whole run."""

    name: str
    reads: int = 0
    polls: int = 0
    recorded: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    """Every failed read of this run, in order; kept after a later read succeeded."""
    failing: bool = False
    """The last read failed."""


@dataclass(slots=True)
class ChannelTotals:
    """What one channel's push rounds did over the whole run."""

    name: str
    rounds: int = 0
    acknowledged: int = 0
    parked: int = 0
    failed: int = 0
    requests: int = 0
    queued_at_start: int | None = None
    """Values pending when the run's first round began."""
    errors: list[str] = field(default_factory=list)
    """Push rounds that raised (the channel's adapter or the ledger failed)."""
    actions: list[Action] = field(default_factory=list)
    """Every action the run's rounds executed, in order (``syncd once --json``)."""
    last: ChannelCycle = field(default_factory=lambda: ChannelCycle(channel=""))
    """The last round: what is blocked, held, deferred or waiting now."""

    def __post_init__(self) -> None:
        if not self.last.channel:
            self.last = ChannelCycle(channel=self.name)

    def add(self, cycle: ChannelCycle) -> None:
        self.rounds += 1
        if self.queued_at_start is None:
            self.queued_at_start = cycle.pending
        self.acknowledged += cycle.acknowledged
        self.parked += cycle.parked
        self.failed += cycle.failed
        self.requests += cycle.requests
        self.actions += cycle.actions
        self.last = cycle

    @classmethod
    def of(cls, cycle: ChannelCycle) -> ChannelTotals:
        """Totals of a run that made exactly one round."""
        totals = cls(cycle.channel)
        totals.add(cycle)
        return totals


class OnceRun:
    """One run over one assembly's sources, engine and channels (module docstring)."""

    def __init__(
        self,
        *,
        sources: Sequence[Source],
        ledger: Ledger,
        engine: Engine,
        channels: Sequence[str],
        clients: ApiClients | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        on_round: Callable[[OnceRun], None] | None = None,
        stall_s: float = STALL_S,
        pause_s: float = ROUND_PAUSE_S,
    ) -> None:
        self.sources = list(sources)
        self.ledger = ledger
        self.engine = engine
        self.clients = clients
        self._monotonic = monotonic
        self._sleep = sleep
        self.on_round = on_round
        self.stall_s = stall_s
        self.pause_s = pause_s
        self.source_totals = {source.name: SourceTotals(source.name) for source in self.sources}
        self.channel_totals = {name: ChannelTotals(name) for name in channels}
        self.progress: dict[str, Progress | None] = dict.fromkeys(channels)
        self._backlogs = ChannelProgress(monotonic=monotonic)
        self._read_at: dict[str, float] = {}

    @classmethod
    def for_assembly(
        cls, assembly: Assembly, *, on_round: Callable[[OnceRun], None] | None = None
    ) -> OnceRun:
        return cls(
            sources=assembly.sources,
            ledger=assembly.ledger,
            engine=assembly.engine,
            channels=list(assembly.channels),
            clients=assembly.clients,
            monotonic=assembly.clock.monotonic,
            sleep=assembly.clock.sleep,
            on_round=on_round,
        )

    # --- sources -------------------------------------------------------------------

    async def read(self, sources: Sequence[Source] | None = None) -> list[PollResult]:
        """Poll each source until it caught up; a failure is recorded, never fatal."""
        results: list[PollResult] = []
        succeeded = False
        for source in self.sources if sources is None else sources:
            totals = self.source_totals[source.name]
            totals.reads += 1
            error = await self._read_one(source, totals, results)
            self._read_at[source.name] = self._monotonic()
            totals.failing = error is not None
            if error is not None:
                totals.failures.append(error)
            else:
                succeeded = True
        if succeeded:
            self.engine.note_source_read()
        return results

    async def _read_one(
        self, source: Source, totals: SourceTotals, results: list[PollResult]
    ) -> str | None:
        """One source's read; returns why it failed, or None."""
        for _ in range(MAX_PAGES_PER_SOURCE):
            try:
                result = await source.poll(self.ledger)
            except Exception as exc:  # one failing source never stops the others
                error = describe_error(exc)
                log.error("source.failed", source=source.name, error=error)
                await self.ledger.mark_feed(source.name, error=error)
                return error
            results.append(result)
            totals.polls += 1
            totals.recorded += result.recorded
            totals.skipped += result.skipped
            if result.error is not None:
                # The source recorded what it read and marked its feed failing.
                return describe_text(result.error)
            if result.caught_up:
                return None
        log.error("source.never_caught_up", source=source.name, polls=MAX_PAGES_PER_SOURCE)
        return f"did not catch up within {MAX_PAGES_PER_SOURCE} polls"

    def due(self) -> list[Source]:
        """Sources last read at least :data:`REREAD_SHARE` of their freshness limit ago.

        The limit is ``stale_after``; for a channel's own order feed it is the
        shorter ``overdue_after`` (about two poll intervals), after which that
        channel's increases wait for it (:meth:`syncd.engine.Engine.push_channel`).
        """
        now = self._monotonic()
        return [
            source
            for source in self.sources
            if now - self._read_at.get(source.name, -math.inf)
            >= self._fresh_for(source) * REREAD_SHARE
        ]

    def _fresh_for(self, source: Source) -> float:
        limit = source.stale_after
        for feed in self.engine.feeds:
            if feed.name == source.name and feed.channel is not None and feed.overdue_after:
                limit = min(limit, feed.overdue_after)
        return limit

    # --- channels ------------------------------------------------------------------

    async def push(
        self, *, confirm: bool, skip: Mapping[str, str] | None = None
    ) -> dict[str, ChannelTotals]:
        """Push every channel until it is through, stuck, or its budget stalls.

        A channel in ``skip`` (its start-up read-back failed: its acknowledgements
        are unproven) is not pushed; the reason counts as its error.
        """
        for name, why in (skip or {}).items():
            if name in self.channel_totals:
                self.channel_totals[name].errors.append(f"could not read the channel back: {why}")
        active = [name for name in self.channel_totals if name not in (skip or {})]
        moved_at = dict.fromkeys(active, self._monotonic())
        waits = dict.fromkeys(active, 0)
        first = True
        while active:
            if not first:
                await self._sleep(self.pause_s)
                # Increases that wait for a fresh read (a second consistent one, or the
                # channel's own orders) need every source read again.
                await self._freshen(everything=any(waits[name] for name in active))
            first = False
            for name in list(active):
                # A read may have waited long for a shared rate budget: check again
                # before every round, so no round works from a source gone stale.
                await self._freshen(everything=False)
                cycle = await self._round(name, confirm=confirm)
                now = self._monotonic()
                if cycle is not None and (cycle.planned or cycle.deferred):
                    waits[name] = 0
                if cycle is not None and cycle.planned:
                    moved_at[name] = now
                if cycle is not None and cycle.waiting and not cycle.deferred:
                    waits[name] += 1
                if cycle is None or not (cycle.deferred or cycle.waiting):
                    active.remove(name)
                elif waits[name] > MAX_WAITING_ROUNDS:
                    active.remove(name)  # a fresh read did not release them: say why
                elif now - moved_at[name] >= self.stall_s:
                    log.warning("once.budget_stalled", channel=name, seconds=self.stall_s)
                    active.remove(name)
            if self.on_round is not None:
                self.on_round(self)
        return self.channel_totals

    async def _freshen(self, *, everything: bool) -> None:
        """Re-read what is due (or every source), until nothing is due; a few passes at most."""
        for _ in range(3):
            reread = self.sources if everything else self.due()
            everything = False
            if not reread:
                return
            log.info("once.sources_reread", sources=[source.name for source in reread])
            await self.read(reread)

    async def _round(self, name: str, *, confirm: bool) -> ChannelCycle | None:
        totals = self.channel_totals[name]
        try:
            cycle = await self.engine.push_channel(name)
            # --confirm covers what was held when the run began; a hold raised later
            # (say, after a re-read) is about other numbers and waits for a person.
            if cycle.held_id is not None and confirm and totals.rounds == 0:
                await self.engine.confirm(name, cycle.held_id, by=local_caller().describe())
                held = cycle
                cycle = await self.engine.push_channel(name)
                cycle.actions[:0] = held.actions  # the run executed the hold, then this
        except Exception as exc:  # one failing channel never stops the others
            error = describe_error(exc)
            log.error("push.round_failed", channel=name, error=error)
            totals.errors.append(error)
            return None
        totals.add(cycle)
        pending = cycle.remaining if cycle.remaining is not None else cycle.pending
        sender = self.engine.channels.get(name)
        self.progress[name] = self._backlogs.update(
            name,
            pending=pending,
            acknowledged=totals.acknowledged,
            per_request=sender.per_request if sender is not None else 1,
            client=channel_client(self.clients, name) if self.clients is not None else None,
        )
        return cycle
