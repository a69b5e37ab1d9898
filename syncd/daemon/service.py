"""The daemon's answers on the status socket: status, metrics, explain, confirm, unpark, ping.

:class:`StatusService` reads the running :class:`~syncd.daemon.scheduler.Scheduler`
(its assembly: ledger, engine, sources, channels, API clients), the
daemon's :class:`~syncd.status.metrics.Metrics` and the per-API HTTP counters
(:mod:`syncd.daemon.api_counters`), and builds the replies documented in
:mod:`syncd.status.protocol` (README, "Status socket"): the rows come from
:mod:`syncd.daemon.status_rows`, health is judged by
:func:`syncd.status.health.assess_health`.

A status document reads the ledger (feed states, queue depths, parked rows,
held cycles). Concurrent requests share one build: a reply younger than
``cache_ttl`` seconds is served again, so a burst of monitoring checks costs
one set of queries. ``confirm`` drops the cached document, since it changes
what status would say.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import structlog

from syncd import __version__
from syncd.assembly import Assembly
from syncd.channel_progress import ChannelProgress
from syncd.daemon.api_counters import ApiCounters
from syncd.daemon.scheduler import STUCK_AFTER_S, Scheduler
from syncd.daemon.status_rows import StatusRows
from syncd.describe import describe_error
from syncd.explain import UnknownSku, explain_sku
from syncd.model import now_utc
from syncd.status.callers import describe_caller
from syncd.status.health import HealthFacts, assess_health
from syncd.status.metrics import Metrics, series_name
from syncd.status.prometheus import zero_series
from syncd.status.protocol import (
    ConfirmReply,
    MetricsReply,
    PingReply,
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

log = structlog.get_logger("syncd.status_handler")

DEFAULT_CACHE_TTL_S = 0.5


# --- what the daemon tells the handler about itself -------------------------------------


@dataclass(slots=True)
class DaemonInfo:
    config_path: str
    started_at: datetime
    started_monotonic: float
    reload_error: str | None = None
    """Why the last SIGHUP reload was rejected; None once a reload succeeds."""


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
        self._rows = StatusRows(metrics=metrics, api_counters=api_counters, progress=self.progress)

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
            sources, source_facts = self._rows.sources(scheduler, states, now, uptime, gauges)
            channels, channel_facts = await self._rows.channels(scheduler, gauges)
        except Exception as exc:  # the ledger itself failing is what status must report
            log.exception("status.ledger_unreadable")
            ledger_error = describe_error(exc)
            sources, source_facts, channels, channel_facts = [], [], [], []
        if scheduler.engine.ledger_error and scheduler.engine.last_error:
            ledger_error = ledger_error or scheduler.engine.last_error
        # A ledger file removed or replaced under the open connection: every
        # write since goes nowhere (the daemon stops on it, see syncd.daemon.runtime).
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
        if channel is not None:
            _check_running(assembly, channel)
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
        _check_running(scheduler.assembly, channel)
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
        _check_running(scheduler.assembly, channel)
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


def _check_running(assembly: Assembly, channel: str) -> None:
    """A command names a channel this daemon runs, or it is refused with the ones it does."""
    if channel not in assembly.channels:
        known = ", ".join(assembly.channels) or "none"
        raise StatusRequestError(f"unknown channel {channel!r} (running: {known})")
