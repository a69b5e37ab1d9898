"""Reading a channel back: acknowledgements are a cache, the channel is the truth.

The outbox remembers what each channel acknowledged, and the planner sends
only values that differ from it. That memory can be wrong: the ledger was
restored from a backup, copied from another host or lost its WAL; someone
edited a number by hand on the channel; the channel changed a figure itself.
A :class:`ReadBack` reads what the channel holds in the field syncd writes
and corrects the cached acknowledgements (:mod:`syncd.ledger.readback`); the
ordinary push then writes syncd's value, decreases first, within the rate
budget and behind every interlock (:mod:`syncd.engine`).

- **At start** (:meth:`ReadBack.run` with ``startup=True``) the whole channel
  is read and every difference is corrected, both ways, whatever the
  ``drift_policy``; an acknowledged SKU the channel no longer lists becomes
  unknown and is written again. The daemon pushes nothing to a channel
  before this read succeeded (:mod:`syncd.scheduler`). It costs one full
  listing: Ankorstore ``ceil(variants / 100)`` requests (100 000 variants:
  1 000 requests, under two minutes of its 600 a minute at the default
  ``budget_share``), fabric ``ceil(items / page size)``.
- **Every ``readback_interval``** (default an hour) the acknowledged SKUs are
  read and drift is handled by ``drift_policy`` (:func:`syncd.channels.drift.to_correct`):
  by default a channel holding more than syncd's value is corrected at once.
- Where the channel reports its own reservations (Ankorstore
  ``reservedQuantity``), the figure is compared with the units of that
  channel's open orders the ledger counts for the SKU, and mismatches are
  reported: orders placed since the last order poll make a few of them
  normal, a lasting one means syncd is not seeing the channel's orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from syncd.assembly import Assembly
from syncd.channels.base import LiveValue
from syncd.channels.drift import (
    Drift,
    DriftPolicy,
    RestorePlan,
    Sighting,
    find_drift,
    missing,
    to_correct,
)
from syncd.engine import Engine
from syncd.ledger.readback import Correction
from syncd.model import now_utc

log = structlog.get_logger("syncd.readback")

SAMPLE = 10
"""SKUs named in one log line."""


@dataclass(frozen=True, slots=True)
class ReservedMismatch:
    sku: str
    channel_reserved: int
    """What the channel says its own open orders hold."""
    ledger_reserved: int
    """The units of that channel's open orders the ledger subtracts."""


@dataclass(slots=True)
class ReadBackReport:
    channel: str
    startup: bool
    checked: int = 0
    drift: list[Drift] = field(default_factory=list)
    """Every difference found."""
    corrected: list[str] = field(default_factory=list)
    """SKUs whose acknowledgement was replaced: the push writes them again."""
    waiting: list[Drift] = field(default_factory=list)
    """Lower numbers that wait for a repeated sighting (``overwrite``)."""
    missing: list[str] = field(default_factory=list)
    reserved_mismatch: list[ReservedMismatch] = field(default_factory=list)
    live: Mapping[str, LiveValue] | None = None
    """What the channel showed, kept only when asked (a dry run prints it)."""

    @property
    def standing(self) -> list[Drift]:
        """Drift not corrected by this read: what the status reports."""
        corrected = set(self.corrected)
        return [d for d in self.drift if d.sku not in corrected]


class ReadBack:
    """The read-back of one channel; keeps the sightings ``overwrite`` needs between runs."""

    def __init__(
        self,
        engine: Engine,
        channel: str,
        *,
        policy: DriftPolicy = "protect",
        now: Callable[[], datetime] = now_utc,
    ) -> None:
        self._engine = engine
        self.channel = channel
        self.policy = policy
        self._now = now
        self._seen: dict[str, Sighting] = {}

    @classmethod
    def for_assembly(
        cls, assembly: Assembly, channel: str, *, now: Callable[[], datetime] = now_utc
    ) -> ReadBack:
        """The read-back of ``channel`` with the ``drift_policy`` of its config section."""
        section = assembly.config.channels.enabled().get(channel)
        policy: DriftPolicy = section.drift_policy if section is not None else "protect"
        return cls(assembly.engine, channel, policy=policy, now=now)

    async def run(self, *, startup: bool = False, keep_live: bool = False) -> ReadBackReport:
        """Read the channel, correct what the policy allows; raises when the read fails.

        ``keep_live`` keeps what the channel showed in the report (a whole
        channel's listing: only for a dry run, which prints it).
        """
        engine = self._engine
        channel = self.channel
        sender = engine.channels[channel]
        report = ReadBackReport(channel=channel, startup=startup)
        rows = {
            row.sku: row
            for row in await engine.ledger.outbox_rows(channel)
            if row.status != "parked" and (startup or row.status != "sent")
        }
        acknowledged = {
            sku: row.acknowledged for sku, row in rows.items() if row.acknowledged is not None
        }
        if not startup and not acknowledged:
            return report
        # At start the whole listing: it also teaches the channel its pack sizes.
        live = await sender.read_live(None if startup else sorted(acknowledged))
        report.checked = len(acknowledged)
        if keep_live:
            report.live = live
        report.drift = find_drift(live, acknowledged)
        now = self._now()
        previous = self._seen
        self._seen = {
            d.sku: previous[d.sku]
            if d.sku in previous and previous[d.sku].shown == d.shown
            else Sighting(shown=d.shown, at=now)
            for d in report.drift
        }
        if startup:
            plan = RestorePlan(now=tuple(report.drift), later=())
            report.missing = missing(live, acknowledged)
        else:
            plan = to_correct(
                report.drift,
                policy=self.policy,
                seen=previous,
                orders_read_at=await engine.orders_read_at(channel),
                orders_overdue=bool(await engine.overdue_order_feeds(channel)),
            )
        report.waiting = list(plan.later)
        corrections = [
            Correction(d.sku, rows[d.sku].seq, d.acknowledged, d.shown) for d in plan.now
        ] + [Correction(sku, rows[sku].seq, acknowledged[sku], None) for sku in report.missing]
        if corrections:
            report.corrected = await engine.ledger.correct_acknowledged(
                channel, corrections, now, include_sent=startup
            )
            for sku in report.corrected:
                self._seen.pop(sku, None)
        if sender.adds_own_orders:
            report.reserved_mismatch = [
                ReservedMismatch(sku, value.reserved, rows[sku].own_reserved)
                for sku, value in sorted(live.items())
                if value.reserved is not None
                and sku in rows
                and value.reserved != rows[sku].own_reserved
            ]
        self._log(report)
        return report

    def _log(self, report: ReadBackReport) -> None:
        if report.drift or report.missing:
            log.warning(
                "channel.drift",
                channel=report.channel,
                startup=report.startup,
                policy=self.policy,
                checked=report.checked,
                drifted=len(report.drift),
                corrected=len(report.corrected),
                waiting=len(report.waiting),
                missing=len(report.missing),
                sample=[
                    f"{d.sku}: holds {d.shown}, acknowledged {d.acknowledged}"
                    for d in report.drift[:SAMPLE]
                ],
            )
        else:
            log.info(
                "channel.readback_clean",
                channel=report.channel,
                startup=report.startup,
                checked=report.checked,
            )
        if report.reserved_mismatch:
            log.warning(
                "channel.reserved_mismatch",
                channel=report.channel,
                variants=len(report.reserved_mismatch),
                sample=[
                    f"{m.sku}: channel reserves {m.channel_reserved}, ledger {m.ledger_reserved}"
                    for m in report.reserved_mismatch[:SAMPLE]
                ],
            )
