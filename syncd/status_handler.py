"""The daemon's answers on the status socket: status, metrics, explain, confirm, unpark, ping.

:class:`StatusService` reads the running :class:`~syncd.scheduler.Scheduler`
(its assembly: ledger, engine, sources, channels, API clients), the
daemon's :class:`~syncd.metrics.Metrics` and the per-API HTTP counters, and
builds the replies documented in :mod:`syncd.status_protocol` (README,
"Status socket"). Health is judged by :func:`syncd.health.assess_health`.

A status document reads the ledger (feed states, queue depths, parked rows,
held cycles). Concurrent requests share one build: a reply younger than
``cache_ttl`` seconds is served again, so a burst of monitoring checks costs
one set of queries. ``confirm`` drops the cached document, since it changes
what status would say.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import structlog

from syncd import __version__
from syncd.callers import describe_caller
from syncd.channel_progress import ChannelProgress, channel_client, progress_document
from syncd.engine import is_stale
from syncd.explain import UnknownSku, explain_sku
from syncd.health import ChannelFacts, HealthFacts, SourceFacts, assess_health
from syncd.http.client import ApiClient
from syncd.ledger.interlock import HeldCycle as HeldRecord
from syncd.metrics import Metrics, series_name
from syncd.model import FeedState, now_utc
from syncd.progress import describe as describe_progress
from syncd.progress import progress_from
from syncd.prometheus import zero_series
from syncd.scheduler import STUCK_AFTER_S, Scheduler, describe_error
from syncd.status_protocol import (
    ChannelStatus,
    ConfirmReply,
    HeldCycle,
    MetricsReply,
    ParkedVariant,
    PingReply,
    RateWindowStatus,
    SourceStatus,
    StatusHandler,
    StatusReply,
    StatusRequestError,
    UnparkReply,
    audit_note,
    caller_of,
    confirm_args,
    explain_args,
    route,
    unpark_args,
)
from syncd.wiring import ApiClients

log = structlog.get_logger("syncd.status_handler")

RECENT_429_WINDOW_S = 900.0
"""429 answers within this many seconds make the daemon ``degraded``."""
DEFAULT_CACHE_TTL_S = 0.5
STATUS_LINE_LIMIT = 240
PARKED_LIMIT = 200
"""Parked variants listed per channel (the count in health is complete)."""
_WINDOW_NAMES = {60.0: "minute", 3_600.0: "hour", 86_400.0: "day"}


# --- HTTP counters across reloads ----------------------------------------------------------


class ApiCounters:
    """Per-API request counters that survive a reload, and the 429s seen recently.

    A SIGHUP reload builds new API clients, whose counters start at zero;
    :meth:`retire` folds the old clients' counts in first, so totals stay
    "since the daemon started".
    """

    def __init__(
        self,
        *,
        window_s: float = RECENT_429_WINDOW_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._monotonic = monotonic
        self._retired: dict[str, dict[str, int]] = {}
        self._last_429: dict[str, int] = {}
        self._events: deque[tuple[float, str, int]] = deque()

    def retire(self, clients: ApiClients) -> None:
        for client in clients.all():
            kept = self._retired.setdefault(client.name, {})
            for key, value in client.stats.as_dict().items():
                kept[key] = kept.get(key, 0) + value

    def totals(self, clients: ApiClients) -> dict[str, dict[str, int]]:
        merged = {api: dict(stats) for api, stats in self._retired.items()}
        for client in clients.all():
            into = merged.setdefault(client.name, {})
            for key, value in client.stats.as_dict().items():
                into[key] = into.get(key, 0) + value
        return merged

    def observe(self, clients: ApiClients) -> None:
        """Note new 429 answers since the last call (the daemon calls it every tick)."""
        now = self._monotonic()
        for api, stats in self.totals(clients).items():
            count = stats.get("rate_limited", 0)
            new = count - self._last_429.get(api, 0)
            if new > 0:
                self._events.append((now, api, new))
            self._last_429[api] = count

    def recent_429(self) -> dict[str, int]:
        horizon = self._monotonic() - self.window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()
        recent: dict[str, int] = {}
        for _, api, count in self._events:
            recent[api] = recent.get(api, 0) + count
        return recent


# --- what the daemon tells the handler about itself -------------------------------------


@dataclass(slots=True)
class DaemonInfo:
    config_path: str
    started_at: datetime
    started_monotonic: float
    reload_error: str | None = None
    """Why the last SIGHUP reload was rejected; None once a reload succeeds."""


# --- pure helpers ---------------------------------------------------------------------------


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


def status_line(reply: Mapping[str, Any]) -> str:
    """The one ``STATUS=`` line: health, fresh sources, queue per channel, first reason.

    e.g. ``ok: 3 sources fresh, ankorstore 0 queued, fabric 2 queued``.
    """
    sources = [s for s in reply.get("sources", []) if s.get("enabled", True)]
    fresh = sum(1 for s in sources if not s.get("stale"))
    counted = (
        f"{fresh} sources fresh"
        if fresh == len(sources)
        else f"{fresh}/{len(sources)} sources fresh"
    )
    parts = [counted]
    for channel in reply.get("channels", []):
        if channel.get("enabled", True):
            part = f"{channel.get('name')} {channel.get('queue_depth', 0)} queued"
            progress = channel.get("progress")
            if isinstance(progress, Mapping):
                part += f" ({describe_progress(progress_from(progress))})"
            parts.append(part)
    line = f"{reply.get('health', '?')}: " + ", ".join(parts)
    reasons = reply.get("reasons") or []
    if reasons:
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        line += f"; {reasons[0]}{more}"
    return line if len(line) <= STATUS_LINE_LIMIT else line[: STATUS_LINE_LIMIT - 3] + "..."


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


# --- the service ------------------------------------------------------------------------------


class StatusService:
    """Builds every status-socket reply from the daemon's current runtime."""

    def __init__(
        self,
        *,
        scheduler: Callable[[], Scheduler],
        metrics: Metrics,
        api_counters: ApiCounters,
        info: DaemonInfo,
        now: Callable[[], datetime] = now_utc,
        monotonic: Callable[[], float] = time.monotonic,
        cache_ttl: float = DEFAULT_CACHE_TTL_S,
        stuck_after: float = STUCK_AFTER_S,
    ) -> None:
        self._scheduler = scheduler
        self.stuck_after = stuck_after
        self.metrics = metrics
        self.api_counters = api_counters
        self.info = info
        self._now = now
        self._monotonic = monotonic
        self._cache_ttl = cache_ttl
        self._lock = anyio.Lock()
        self._cached: tuple[float, StatusReply, dict[str, float]] | None = None
        self.progress = ChannelProgress(monotonic=monotonic)

    def handler(self) -> StatusHandler:
        return route(
            {
                "ping": self._ping,
                "status": self._status,
                "metrics": self._metrics,
                "explain": self._explain,
                "confirm": self._confirm,
                "unpark": self._unpark,
            }
        )

    def invalidate(self) -> None:
        self._cached = None

    # --- status -------------------------------------------------------------------------

    async def status(self) -> StatusReply:
        reply, _ = await self._snapshot()
        return reply

    async def metrics_reply(self) -> MetricsReply:
        reply, gauges = await self._snapshot()
        assembly = self._scheduler().assembly
        # Every configured channel, source and API has its counters from the start, at zero.
        counters: dict[str, int] = zero_series(
            channels=assembly.channels,
            sources=[source.name for source in assembly.sources],
            apis=[client.name for client in assembly.clients.all()],
        )
        counters.update(self.metrics.counters())
        for api, stats in sorted(self.api_counters.totals(assembly.clients).items()):
            for key, name in (
                ("requests", "http_requests"),
                ("rate_limited", "http_429"),
                ("retries", "http_retries"),
                ("errors", "http_errors"),
            ):
                counters[series_name(name, {"api": api})] = stats.get(key, 0)
        counters.update(reply["counters"])
        return MetricsReply(ok=True, counters=dict(sorted(counters.items())), gauges=gauges)

    async def collect(self) -> tuple[dict[str, int], dict[str, float]]:
        """``(counters, gauges)`` for the Prometheus endpoint, with the daemon's start time."""
        reply = await self.metrics_reply()
        gauges = {**reply["gauges"], "start_time_seconds": self.info.started_at.timestamp()}
        return reply["counters"], gauges

    async def _snapshot(self) -> tuple[StatusReply, dict[str, float]]:
        async with self._lock:
            cached = self._cached
            if cached is not None and self._monotonic() - cached[0] < self._cache_ttl:
                return cached[1], cached[2]
            reply, gauges = await self._build()
            self._cached = (self._monotonic(), reply, gauges)
            return reply, gauges

    async def _build(self) -> tuple[StatusReply, dict[str, float]]:
        scheduler = self._scheduler()
        assembly = scheduler.assembly
        now = self._now()
        uptime = self._monotonic() - self.info.started_monotonic
        self.api_counters.observe(assembly.clients)
        gauges: dict[str, float] = {}
        ledger_error: str | None = None
        try:
            states = {state.feed: state for state in await assembly.ledger.feed_states()}
            sources, source_facts = self._sources(scheduler, states, now, uptime, gauges)
            channels, channel_facts = await self._channels(scheduler, states, now, gauges)
        except Exception as exc:  # the ledger itself failing is what status must report
            log.exception("status.ledger_unreadable")
            ledger_error = describe_error(exc)
            sources, source_facts, channels, channel_facts = [], [], [], []
        if scheduler.engine.ledger_error and scheduler.engine.last_error:
            ledger_error = ledger_error or scheduler.engine.last_error
        # A ledger file removed or replaced under the open connection: every
        # write since goes nowhere (the daemon stops on it, see syncd.daemon).
        ledger_error = ledger_error or assembly.ledger.file_problem()
        facts = HealthFacts(
            sources=source_facts,
            channels=channel_facts,
            ledger_error=ledger_error,
            engine_error=None if scheduler.engine.ledger_error else scheduler.engine.last_error,
            recent_429=self.api_counters.recent_429(),
            recent_window_s=self.api_counters.window_s,
            reload_error=self.info.reload_error,
            stuck=scheduler.stuck(self.stuck_after),
            stuck_after_s=self.stuck_after,
        )
        health, reasons = assess_health(facts)
        cycle_s = round(scheduler.last_cycle_s, 6)
        gauges.update(
            {
                "cycle_duration_s": cycle_s,
                "uptime_s": round(uptime, 3),
                "queue_depth": float(sum(c["queue_depth"] for c in channels)),
                "health": {"ok": 0.0, "degraded": 1.0, "failing": 2.0}[health],
            }
        )
        counters = {"pushes": 0, "errors": 0, "http_429": 0, "cycles": 0}
        counters.update(self.metrics.totals())
        counters["http_429"] = sum(
            stats.get("rate_limited", 0)
            for stats in self.api_counters.totals(assembly.clients).values()
        )
        reply = StatusReply(
            ok=True,
            health=health,
            reasons=reasons,
            version=__version__,
            pid=os.getpid(),
            started_at=self.info.started_at.isoformat(),
            generated_at=now.isoformat(),
            uptime_s=round(uptime, 3),
            config=self.info.config_path,
            sources=sources,
            channels=channels,
            counters=counters,
            gauges={k: v for k, v in gauges.items() if "{" not in k},
        )
        return reply, dict(sorted(gauges.items()))

    def _sources(
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

    async def _channels(
        self,
        scheduler: Scheduler,
        states: Mapping[str, FeedState],
        now: datetime,
        gauges: dict[str, float],
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

    # --- commands ---------------------------------------------------------------------------

    async def _ping(self, request: dict[str, Any]) -> PingReply:
        return PingReply(ok=True, version=__version__, pid=os.getpid())

    async def _status(self, request: dict[str, Any]) -> StatusReply:
        return await self.status()

    async def _metrics(self, request: dict[str, Any]) -> MetricsReply:
        return await self.metrics_reply()

    async def _explain(self, request: dict[str, Any]) -> dict[str, Any]:
        sku, channel = explain_args(request)
        assembly = self._scheduler().assembly
        if channel is not None and channel not in assembly.channels:
            known = ", ".join(assembly.channels) or "none"
            raise StatusRequestError(f"unknown channel {channel!r} (running: {known})")
        channels = [channel] if channel else list(assembly.channels)
        try:
            return await explain_sku(assembly.ledger, sku, channels=channels, origin="daemon")
        except UnknownSku:
            if sku in assembly.engine.index.skus:
                return {
                    "ok": True,
                    "sku": sku,
                    "from": "daemon",
                    "generated_at": self._now().isoformat(),
                    "channels": [],
                    "reservations": [],
                    "sources": [],
                    "postings": [],
                }
            raise StatusRequestError(
                f"unknown SKU {sku!r}: not in the catalog and nothing recorded for it"
            ) from None

    async def _confirm(self, request: dict[str, Any]) -> ConfirmReply:
        channel, hold = confirm_args(request)
        scheduler = self._scheduler()
        if channel not in scheduler.assembly.channels:
            known = ", ".join(scheduler.assembly.channels) or "none"
            raise StatusRequestError(f"unknown channel {channel!r} (running: {known})")
        # The kernel's word on who asked (SO_PEERCRED), kept with the hold in the ledger.
        who = await describe_caller(caller_of())
        confirmed = await scheduler.assembly.engine.confirm(
            channel, None if hold == "all" else hold, by=who
        )
        if hold != "all" and not confirmed:
            raise StatusRequestError(
                f"hold {hold} is not a held cycle waiting on {channel} (see `syncd status`)"
            )
        self.invalidate()
        scheduler.wake_pushers(channel)
        return ConfirmReply(ok=True, channel=channel, confirmed=confirmed)

    async def _unpark(self, request: dict[str, Any]) -> UnparkReply:
        channel, skus, note = unpark_args(request)
        scheduler = self._scheduler()
        if channel not in scheduler.assembly.channels:
            known = ", ".join(scheduler.assembly.channels) or "none"
            raise StatusRequestError(f"unknown channel {channel!r} (running: {known})")
        # The push log names the kernel's caller; the client's note may claim anyone.
        who = await describe_caller(caller_of())
        unparked = await scheduler.assembly.engine.unpark(
            channel, None if skus == "all" else skus, audit_note("unparked", who, note)
        )
        self.invalidate()
        if unparked:
            scheduler.wake_pushers(channel)
        missing = [] if skus == "all" else sorted(set(skus) - set(unparked))
        return UnparkReply(ok=True, channel=channel, unparked=unparked, not_parked=missing)


# --- config-only rows ---------------------------------------------------------------------


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
