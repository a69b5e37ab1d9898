"""What `syncd once` reports after a run, and the exit status it judges by.

Exit status (``--help`` says the same, ``syncd.cli.ONCE_EXIT_STATUS``): 0
when every channel acknowledged every value; 1 with the reasons when
anything is parked, held, deferred or waiting, or when it could not start
(another syncd holds the ledger, the ledger is damaged); 2 for a config
problem; 3 when a source or a channel failed during the run (a read or a
push round raised, updates failed, or a push was blocked by a stale source)
-- 3 wins over 1. A variant parked by an earlier run still counts (it is not
acknowledged) -- except one parked because Ankorstore shows it as always in
stock under ``always_in_stock = "leave"``, which is configured behaviour and
only listed.

``--json`` also lists, per channel, every action the run executed
(:func:`syncd.engine.plan.describe`): the same list `syncd once --dry-run
--json` prints as its plan.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.channels.ankorstore import ALWAYS_IN_STOCK_REASON
from syncd.engine.plan import describe
from syncd.ledger.store import Ledger
from syncd.model import OutboxRow
from syncd.once_run import ChannelTotals, SourceTotals

LISTED_ROWS = 20
"""Parked or failed variants named one by one in the report; the count is always complete."""

EXIT_OK = 0
EXIT_LEFT = 1
EXIT_CONFIG = 2
EXIT_FAILED = 3
EXIT_NOT_STARTED = EXIT_LEFT
"""Another syncd holds the ledger's lock, or the ledger is damaged: nothing was read or written."""


@dataclass(slots=True)
class Outstanding:
    """Outbox rows that are not acknowledged after the run, per channel."""

    parked: list[OutboxRow] = field(default_factory=list)
    failed: list[OutboxRow] = field(default_factory=list)
    left: int = 0
    """Values still not acknowledged (parked ones aside)."""

    @staticmethod
    def configured(row: OutboxRow) -> bool:
        """Parked on purpose by the config (always in stock, left alone)."""
        return (row.reason or "").startswith(ALWAYS_IN_STOCK_REASON)


async def outstanding_rows(ledger: Ledger, channels: list[str]) -> dict[str, Outstanding]:
    found: dict[str, Outstanding] = {}
    for name in channels:
        rows = await ledger.outbox_rows(name)
        found[name] = Outstanding(
            parked=[row for row in rows if row.status == "parked"],
            failed=[row for row in rows if row.status == "failed"],
            left=sum(
                1 for row in rows if row.status != "parked" and row.acknowledged != row.desired
            ),
        )
    return found


def _listed(name: str, what: str, rows: list[OutboxRow]) -> list[str]:
    lines = [f"{name}: {row.sku} {what}: {row.reason or 'no reason recorded'}" for row in rows]
    if len(lines) > LISTED_ROWS:
        lines = [*lines[:LISTED_ROWS], f"{name}: ... and {len(lines) - LISTED_ROWS} more {what}"]
    return lines


def _source_failures(sources: Mapping[str, SourceTotals]) -> list[str]:
    """One line per source that failed during the run, naming its (last) error."""
    lines = []
    for name, source in sources.items():
        if not source.failures:
            continue
        count = len(source.failures)
        times = f" ({count} of {source.reads} reads)" if source.reads > 1 else ""
        state = "failed" if source.failing else "failed, then recovered"
        lines.append(f"source {name} {state}{times}: {source.failures[-1]}")
    return lines


def report(
    channels: Mapping[str, ChannelTotals],
    outstanding: Mapping[str, Outstanding],
    *,
    sources: Mapping[str, SourceTotals] | None = None,
    as_json: bool,
) -> int:
    """Print what the run did, totals over every round, and why anything is left.

    Returns the exit status (``EXIT_*``). Failures (a source or a push
    round failed, updates failed, a push blocked by a stale source) and
    problems (held, parked, deferred, waiting) go to stderr, one reason per line.
    """
    failures = _source_failures(sources or {})
    problems: list[str] = []
    notes: list[str] = []
    summary: dict[str, Any] = {}
    for name, totals in channels.items():
        cycle = totals.last
        rows = outstanding.get(name, Outstanding())
        parked = [row for row in rows.parked if not Outstanding.configured(row)]
        left_alone = [row for row in rows.parked if Outstanding.configured(row)]
        summary[name] = {
            "pending": totals.queued_at_start or 0,
            "acknowledged": totals.acknowledged,
            "parked": totals.parked,
            "failed": totals.failed,
            "requests": totals.requests,
            "rounds": totals.rounds,
            "left": rows.left,
            "deferred": cycle.deferred,
            "waiting": cycle.waiting,
            "held": cycle.held_id,
            "blocked": cycle.blocked,
            "errors": list(totals.errors),
            "reasons": cycle.reasons + cycle.waiting_reasons,
            "parked_variants": {row.sku: row.reason for row in rows.parked},
            "failed_variants": {row.sku: row.reason for row in rows.failed},
            "actions": [describe(action, name) for action in totals.actions],
        }
        failures += [f"{name}: push failed: {error}" for error in totals.errors[-1:]]
        if cycle.blocked:
            failures.append(f"{name}: blocked: {cycle.blocked}")
        if cycle.held_id is not None:
            problems.append(
                f"{name}: cycle held (hold {cycle.held_id}): {'; '.join(cycle.reasons)}; "
                "rerun with --confirm or run `syncd confirm`"
            )
        if parked:
            problems.append(f"{name}: {len(parked)} variant(s) parked: not retried until unparked")
            problems += _listed(name, "parked", parked)
        notes += _listed(name, "left alone", left_alone)
        if totals.failed or rows.failed:
            count = max(totals.failed, len(rows.failed))
            failures.append(f"{name}: {count} update(s) failed; they will be retried")
            failures += _listed(name, "failed", rows.failed)
        if cycle.deferred:
            problems.append(f"{name}: {cycle.deferred} update(s) deferred by the rate budget")
        problems += [f"{name}: {reason}" for reason in cycle.waiting_reasons]
        if cycle.waiting and not cycle.waiting_reasons:
            problems.append(f"{name}: {cycle.waiting} increase(s) waiting for a fresh read")
    status = EXIT_FAILED if failures else EXIT_LEFT if problems else EXIT_OK
    if as_json:
        document = {
            "ok": status == EXIT_OK,
            "exit_status": status,
            "channels": summary,
            "sources": {name: _source_summary(s) for name, s in (sources or {}).items()},
            "failures": failures,
            "problems": failures + problems,
        }
        print(json.dumps(document, indent=2))
    else:
        for name, item in summary.items():
            print(
                f"{name}: {item['acknowledged']} acknowledged, {item['parked']} parked, "
                f"{item['failed']} failed, {item['requests']} request(s) "
                f"in {item['rounds']} round(s); {item['left']} left"
            )
        for note in notes:
            print(f"syncd once: {note}")
        for problem in failures + problems:
            print(f"syncd once: {problem}", file=sys.stderr)
    return status


def _source_summary(source: SourceTotals) -> dict[str, Any]:
    return {
        "reads": source.reads,
        "polls": source.polls,
        "recorded": source.recorded,
        "skipped": source.skipped,
        "failures": list(source.failures),
        "failing": source.failing,
    }
