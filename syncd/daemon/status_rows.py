"""The rows of the daemon's status document, and the facts its health is judged on.

One row per source and per channel, configured ones that are disabled
included, built from the running scheduler, the ledger and the counters;
beside each row the :class:`~syncd.status.health.SourceFacts` or
:class:`~syncd.status.health.ChannelFacts` that health is judged on, and the
gauges the metrics export. :class:`~syncd.daemon.service.StatusService`
assembles them into the reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from syncd.channel_progress import ChannelProgress, channel_client, progress_document
from syncd.daemon.api_counters import ApiCounters
from syncd.daemon.scheduler import Scheduler
from syncd.engine import is_stale
from syncd.http.client import ApiClient
from syncd.ledger.interlock import HeldCycle as HeldRecord
from syncd.model import FeedState
from syncd.status.health import ChannelFacts, SourceFacts
from syncd.status.metrics import Metrics, series_name
from syncd.status.protocol import (
    ChannelStatus,
    HeldCycle,
    ParkedVariant,
    RateWindowStatus,
    SourceStatus,
)

PARKED_LIMIT = 200
"""Parked variants listed per channel (the count in health is complete)."""
_WINDOW_NAMES = {60.0: "minute", 3_600.0: "hour", 86_400.0: "day"}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def window_name(seconds: float) -> str:
    """``minute``/``hour``/``day`` for windows of about that length, else ``<n>s``.

    Limiters pad their windows by a second or two against clock skew, so a
    62-second window is still the API's per-minute limit.
    """
    for length, name in _WINDOW_NAMES.items():
        if abs(seconds - length) <= length * 0.05:
            return name
    return f"{seconds:g}s"


def rate_windows(client: ApiClient | None) -> list[RateWindowStatus]:
    """Every window the client's limiter enforces, as the status document shows it."""
    if client is None:
        return []
    snapshot = client.limiter.snapshot()
    return [
        RateWindowStatus(
            window=window_name(w.seconds),
            limit=w.limit,
            used=w.used,
            remaining=w.remaining,
            resets_in_s=round(w.resets_in, 3),
        )
        for w in snapshot.windows
    ]


def _held(hold: HeldRecord) -> HeldCycle:
    payload = hold.payload or {}
    return HeldCycle(
        hold_id=hold.id,
        reason=hold.reason,
        created_at=hold.created_at.isoformat(),
        zeroes=int(payload.get("zeroes", 0)),
        changes=int(payload.get("changes", 0)),
        variants=int(payload.get("published", 0)),
    )


class StatusRows:
    """Builds the source and channel rows from the daemon's counters and the ledger."""

    def __init__(
        self, *, metrics: Metrics, api_counters: ApiCounters, progress: ChannelProgress
    ) -> None:
        self.metrics = metrics
        self.api_counters = api_counters
        self.progress = progress

    def sources(
        self,
        scheduler: Scheduler,
        states: Mapping[str, FeedState],
        now: datetime,
        uptime: float,
        gauges: dict[str, float],
    ) -> tuple[list[SourceStatus], list[SourceFacts]]:
        rows: list[SourceStatus] = []
        facts: list[SourceFacts] = []
        for source in scheduler.assembly.sources:
            state = states.get(source.name)
            run = scheduler.sources.get(source.name)
            last_success = state.last_success if state else None
            # Staleness is judged on the monotonic clock, from successes in this
            # process only (syncd.ledger.freshness); the wall-clock age of an
            # earlier process's success is shown, never trusted.
            measured = scheduler.assembly.ledger.freshness.age(source.name)
            age = measured
            if age is None and last_success is not None:
                age = max(0.0, (now - last_success).total_seconds())
            stale = is_stale(measured, source.stale_after)
            failing = run is not None and run.consecutive_errors > 0
            starting = (
                stale
                and run is not None
                and run.last_ok_at is None
                and not failing
                and uptime < source.stale_after
            )
            last_error = (
                run.last_error if failing and run else (state.last_error if state else None)
            )
            rows.append(
                SourceStatus(
                    name=source.name,
                    enabled=True,
                    last_success=_iso(last_success),
                    age_s=None if age is None else round(age, 3),
                    stale=stale,
                    cursor=state.cursor if state else None,
                    last_error=last_error,
                    records=self.metrics.get("records", source=source.name),
                )
            )
            facts.append(
                SourceFacts(
                    name=source.name,
                    stale=stale,
                    age_s=age,
                    stale_after=source.stale_after,
                    read_since_start=measured is not None,
                    consecutive_errors=run.consecutive_errors if run else 0,
                    last_error=last_error,
                    retry_in_s=run.retry_in_s if run else None,
                    starting=starting,
                )
            )
            if age is not None:
                gauges[series_name("source_age_s", {"source": source.name})] = round(age, 3)
            gauges[series_name("source_stale", {"source": source.name})] = float(stale)
        built = {source.name for source in scheduler.assembly.sources}
        for name in scheduler.assembly.config.sources.configured():
            if name not in built:
                rows.append(_disabled_source(name, states.get(name)))
        return rows, facts

    async def channels(
        self, scheduler: Scheduler, gauges: dict[str, float]
    ) -> tuple[list[ChannelStatus], list[ChannelFacts]]:
        assembly = scheduler.assembly
        ledger = assembly.ledger
        engine = assembly.engine
        totals = self.api_counters.totals(assembly.clients)
        rows: list[ChannelStatus] = []
        facts: list[ChannelFacts] = []
        for name in assembly.channels:
            pending, parked_count = await ledger.outbox_counts(name)
            parked = await ledger.parked_rows(name, limit=PARKED_LIMIT)
            holds = await ledger.held_cycles(name)
            run = scheduler.channels.get(name)
            last_push = run.last_push_at if run else None
            if last_push is None:
                log_rows = await ledger.push_log(name, limit=1)
                last_push = log_rows[0].at if log_rows else None
            client = channel_client(assembly.clients, name)
            stale = [
                feed.name
                for feed in engine.feeds_for(name)
                if is_stale(ledger.freshness.age(feed.name), feed.stale_after)
            ]
            policy = assembly.policies.get(name)
            progress = self.progress.update(
                name,
                pending=pending,
                acknowledged=self.metrics.get("variants_pushed", channel=name),
                per_request=assembly.channels[name].per_request,
                client=client,
            )
            rows.append(
                ChannelStatus(
                    name=name,
                    enabled=True,
                    queue_depth=pending,
                    last_push=_iso(last_push),
                    pushes=self.metrics.get("pushes", channel=name),
                    variants_pushed=self.metrics.get("variants_pushed", channel=name),
                    errors=self.metrics.get("errors", channel=name),
                    rate_limited=totals.get(client.name, {}).get("rate_limited", 0)
                    if client
                    else 0,
                    rate_limit=rate_windows(client),
                    parked=[ParkedVariant(sku=row.sku, reason=row.reason or "") for row in parked],
                    held=[_held(hold) for hold in holds],
                    # The last round's only: a round that found nothing to hold back clears them.
                    waiting=list(run.last_cycle.waiting_reasons) if run and run.last_cycle else [],
                    progress=None if progress is None else progress_document(progress),
                )
            )
            cycle = run.last_cycle if run else None
            facts.append(
                ChannelFacts(
                    name=name,
                    stale_sources=stale,
                    block_on_stale=policy.block_on_stale_source if policy else True,
                    held=len(holds),
                    parked=parked_count,
                    consecutive_errors=run.consecutive_errors if run else 0,
                    last_error=run.last_error if run else None,
                    failed_last_round=cycle.failed if cycle else 0,
                    drift=len(run.drift) if run else 0,
                    readback_error=run.readback_error if run else None,
                    verified=run.verified if run else True,
                )
            )
            labels = {"channel": name}
            gauges[series_name("queue_depth", labels)] = float(pending)
            gauges[series_name("parked_variants", labels)] = float(parked_count)
            gauges[series_name("reserved_mismatch_variants", labels)] = float(
                run.reserved_mismatch if run else 0
            )
            gauges[series_name("held_cycles", labels)] = float(len(holds))
            gauges[series_name("drifted_variants", labels)] = float(len(run.drift) if run else 0)
            for window in rows[-1]["rate_limit"]:
                series = series_name(
                    "rate_limit_remaining", {"channel": name, "window": window["window"]}
                )
                gauges[series] = float(window["remaining"])
        built = set(assembly.channels)
        for name in assembly.config.channels.configured():
            if name not in built:
                rows.append(_disabled_channel(name))
        return rows, facts


def _disabled_source(name: str, state: FeedState | None) -> SourceStatus:
    return SourceStatus(
        name=name,
        enabled=False,
        last_success=_iso(state.last_success) if state else None,
        age_s=None,
        stale=False,
        cursor=state.cursor if state else None,
        last_error=None,
        records=0,
    )


def _disabled_channel(name: str) -> ChannelStatus:
    return ChannelStatus(
        name=name,
        enabled=False,
        queue_depth=0,
        last_push=None,
        pushes=0,
        variants_pushed=0,
        errors=0,
        rate_limited=0,
        rate_limit=[],
        parked=[],
        held=[],
        waiting=[],
        progress=None,
    )
