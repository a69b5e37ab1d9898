"""`syncd once`: one complete cycle -- read every source, compute, push -- then exit.

For cron-style use, for a first sync before enabling the service, and for
`--dry-run`, which shows what syncd would publish without writing anything:
sources are read into a throw-away copy of the ledger and the channels are
only read (their current values), never written.

Exit status: 0 when every channel acknowledged every value; 1 with the
reasons when anything is parked, held, blocked, failed or waiting; 2 for a
config problem. A variant parked by an earlier run still counts (it is not
acknowledged) -- except one parked because Ankorstore shows it as always in
stock under ``always_in_stock = "leave"``, which is configured behaviour
and only listed.

The dry run never touches the live ledger: it copies it first. A ledger
that was closed cleanly is read as an immutable file, so not even SQLite's
``-wal``/``-shm`` companions appear next to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from syncd.assembly import Assembly, assemble
from syncd.channels.ankorstore import ALWAYS_IN_STOCK_REASON
from syncd.config import Config, ConfigError, load_config
from syncd.engine import ChannelCycle
from syncd.http.clock import SystemClock
from syncd.ledger.store import Ledger
from syncd.logs import configure_logging
from syncd.model import OutboxRow
from syncd.readback import ReadBack
from syncd.safety import SafetyPolicy, assess, increase_needs_second_read
from syncd.sources.base import PollResult

log = structlog.get_logger("syncd.once")

MAX_PAGES_PER_SOURCE = 10_000
"""Bound on polls per source in one run: a feed that never catches up is an error."""
MAX_PUSH_ROUNDS = 50
LISTED_ROWS = 20
"""Parked or failed variants named one by one in the report; the count is always complete."""


@dataclass(slots=True)
class DiffRow:
    channel: str
    sku: str
    live: int | None
    desired: int

    @property
    def change(self) -> str:
        if self.live is None:
            return "set"
        return "decrease" if self.desired < self.live else "increase"


@dataclass(slots=True)
class Outstanding:
    """Outbox rows that are not acknowledged after the run, per channel."""

    parked: list[OutboxRow] = field(default_factory=list)
    failed: list[OutboxRow] = field(default_factory=list)

    @staticmethod
    def configured(row: OutboxRow) -> bool:
        """Parked on purpose by the config (always in stock, left alone)."""
        return (row.reason or "").startswith(ALWAYS_IN_STOCK_REASON)


async def read_sources(assembly: Assembly) -> list[PollResult]:
    """Poll every source until it says it caught up; failures are reported, not fatal."""
    results: list[PollResult] = []
    for source in assembly.sources:
        for _ in range(MAX_PAGES_PER_SOURCE):
            try:
                result = await source.poll(assembly.ledger)
            except Exception as exc:  # one failing source never stops the others
                log.error("source.failed", source=source.name, error=f"{type(exc).__name__}: {exc}")
                await assembly.ledger.mark_feed(source.name, error=f"{type(exc).__name__}: {exc}")
                break
            results.append(result)
            if result.caught_up:
                break
        else:
            log.error("source.never_caught_up", source=source.name, polls=MAX_PAGES_PER_SOURCE)
    assembly.engine.note_source_read()
    return results


async def _needs_second_read(assembly: Assembly) -> bool:
    for channel in assembly.channels:
        policy = assembly.policies[channel]
        if not policy.confirm_increase_after_zero:
            continue
        for row in await assembly.ledger.pending(channel):
            if increase_needs_second_read(row, policy=policy, consistent_reads=1):
                return True
    return False


async def verify_channels(assembly: Assembly) -> dict[str, str]:
    """Read every channel back before trusting the ledger's acknowledgements.

    Corrects each acknowledged value the channel contradicts (the ledger may
    be a restored backup), so the push writes every difference; also teaches
    the engine the channels' own pack sizes. Returns, per channel whose read
    failed, why: such a channel is not pushed in this run.
    """
    failed: dict[str, str] = {}
    sections = assembly.config.channels.enabled()
    for name in assembly.channels:
        section = sections.get(name)
        readback = ReadBack(
            assembly.engine, name, policy=section.drift_policy if section else "protect"
        )
        try:
            await readback.run(startup=True)
        except Exception as exc:  # one unreadable channel never stops the others
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.error("channel.readback_failed", channel=name, startup=True, error=failed[name])
            continue
        assembly.engine.take_packs(name)
    return failed


async def push_all(
    assembly: Assembly, *, confirm: bool, unverified: Mapping[str, str] | None = None
) -> dict[str, ChannelCycle]:
    """Push every channel; one in ``unverified`` (its start-up read failed) is blocked."""
    cycles: dict[str, ChannelCycle] = {}
    for channel in assembly.channels:
        why = (unverified or {}).get(channel)
        if why is not None:
            cycles[channel] = ChannelCycle(
                channel, blocked=f"could not read the channel back: {why}"
            )
            continue
        cycle = await assembly.engine.push_channel(channel)
        if cycle.held_id is not None and confirm:
            await assembly.engine.confirm(channel, cycle.held_id)
            cycle = await assembly.engine.push_channel(channel)
        rounds = 1
        # Keep going while the budget defers work but each round makes progress.
        while cycle.deferred and rounds < MAX_PUSH_ROUNDS:
            rounds += 1
            await anyio.sleep(1.0)
            cycle = await assembly.engine.push_channel(channel)
        cycles[channel] = cycle
    return cycles


async def dry_run_diff(assembly: Assembly) -> list[DiffRow]:
    """Desired values that differ from what each channel shows now."""
    rows: list[DiffRow] = []
    for name, channel in assembly.channels.items():
        live = await channel.read_live(None)
        if assembly.engine.take_packs(name):
            await assembly.engine.recompute()
        desired = {row.sku: row.desired for row in await assembly.ledger.outbox_rows(name)}
        for sku, quantity in sorted(desired.items()):
            shown = live.get(sku)
            # The field syncd writes (Ankorstore: stockQuantity), as the push would set it.
            current = shown.written if shown is not None else None
            if current != quantity:
                rows.append(DiffRow(channel=name, sku=sku, live=current, desired=quantity))
    return rows


async def dry_run_interlocks(assembly: Assembly) -> dict[str, list[str]]:
    """Per channel, why a real run would hold or block its push (empty: it would go out)."""
    engine = assembly.engine
    found: dict[str, list[str]] = {}
    for name in assembly.channels:
        pending = await assembly.ledger.pending(name)
        if not pending:
            continue
        verdict = assess(
            pending,
            published=engine.published_count(name),
            policy=assembly.policies.get(name, SafetyPolicy()),
            stale_sources=await engine.stale_feeds(name),
        )
        if verdict.blocked:
            found[name] = [f"would push nothing: {'; '.join(verdict.reasons)}"]
        elif verdict.hold:
            found[name] = [f"would be held until confirmed: {'; '.join(verdict.reasons)}"]
    return found


def _render_diff(rows: list[DiffRow], interlocks: dict[str, list[str]]) -> str:
    notes = [f"dry run: {name}: {why}" for name, reasons in interlocks.items() for why in reasons]
    if not rows:
        return "\n".join(["dry run: every channel already shows what syncd would publish", *notes])
    width = max(len(r.sku) for r in rows)
    lines = [f"{'channel':<11} {'sku':<{width}} {'now':>7} {'would be':>9}  change"]
    for r in rows:
        now = "-" if r.live is None else str(r.live)
        lines.append(f"{r.channel:<11} {r.sku:<{width}} {now:>7} {r.desired:>9}  {r.change}")
    decreases = sum(1 for r in rows if r.change == "decrease")
    lines.append(f"dry run: {len(rows)} change(s), {decreases} decrease(s); nothing was written")
    return "\n".join(lines + notes)


def _backup(uri: str, target: Path) -> None:
    with (
        closing(sqlite3.connect(uri, uri=True)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def copy_ledger(source: Path, target: Path) -> None:
    """A consistent copy of the ledger, leaving the live file and its directory untouched.

    Without a ``-wal`` file the database was closed cleanly and the main file
    holds everything: it is read as immutable, which creates no ``-wal`` or
    ``-shm`` beside it. If a daemon opened it meanwhile (a ``-wal`` appeared),
    the copy is taken again through SQLite's WAL-aware read-only backup.
    """
    if not source.exists():
        return
    uri = source.absolute().as_uri()
    wal = source.with_name(source.name + "-wal")
    if not wal.exists():
        _backup(f"{uri}?mode=ro&immutable=1", target)
        if not wal.exists():
            return
        target.unlink()
    _backup(f"{uri}?mode=ro", target)


async def _run(config: Config, args: argparse.Namespace) -> int:
    database = Path(config.daemon.database)
    scratch: Path | None = None
    if args.dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="syncd-dry-run-"))
        copy = scratch / "ledger.db"
        await anyio.to_thread.run_sync(copy_ledger, database, copy)
        database = copy
    else:
        database.parent.mkdir(parents=True, exist_ok=True)
    ledger = await Ledger.open(database)
    assembly = assemble(config, ledger, clock=SystemClock())
    try:
        await read_sources(assembly)
        await assembly.engine.recompute(full=True)
        if await _needs_second_read(assembly):
            # An increase from zero goes out only after a second consistent read.
            await assembly.engine.note_pending_computed()
            await read_sources(assembly)
            await assembly.engine.recompute()
        if args.dry_run:
            diff = await dry_run_diff(assembly)
            interlocks = await dry_run_interlocks(assembly)
            if args.json:
                document = {
                    "dry_run": True,
                    "changes": [asdict(r) for r in diff],
                    "interlocks": interlocks,
                }
                print(json.dumps(document, indent=2))
            else:
                print(_render_diff(diff, interlocks))
            return 0
        unverified = await verify_channels(assembly)
        cycles = await push_all(assembly, confirm=args.confirm, unverified=unverified)
        outstanding = await _outstanding(ledger, list(cycles))
    finally:
        await assembly.aclose()
        await ledger.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return report(cycles, outstanding, as_json=args.json)


async def _outstanding(ledger: Ledger, channels: list[str]) -> dict[str, Outstanding]:
    found: dict[str, Outstanding] = {}
    for name in channels:
        rows = await ledger.outbox_rows(name)
        found[name] = Outstanding(
            parked=[row for row in rows if row.status == "parked"],
            failed=[row for row in rows if row.status == "failed"],
        )
    return found


def _listed(name: str, what: str, rows: list[OutboxRow]) -> list[str]:
    lines = [f"{name}: {row.sku} {what}: {row.reason or 'no reason recorded'}" for row in rows]
    if len(lines) > LISTED_ROWS:
        lines = [*lines[:LISTED_ROWS], f"{name}: ... and {len(lines) - LISTED_ROWS} more {what}"]
    return lines


def report(
    cycles: dict[str, ChannelCycle], outstanding: dict[str, Outstanding], *, as_json: bool
) -> int:
    """Print what each channel did and why anything is left; returns the exit status.

    Problems (held, blocked, parked, failed, deferred, waiting) go to stderr,
    one reason per line, and make the status 1.
    """
    problems: list[str] = []
    notes: list[str] = []
    summary: dict[str, Any] = {}
    for name, cycle in cycles.items():
        rows = outstanding.get(name, Outstanding())
        parked = [row for row in rows.parked if not Outstanding.configured(row)]
        left_alone = [row for row in rows.parked if Outstanding.configured(row)]
        summary[name] = {
            "pending": cycle.pending,
            "acknowledged": cycle.acknowledged,
            "parked": cycle.parked,
            "failed": cycle.failed,
            "deferred": cycle.deferred,
            "waiting": cycle.waiting,
            "requests": cycle.requests,
            "held": cycle.held_id,
            "blocked": cycle.blocked,
            "reasons": cycle.reasons + cycle.waiting_reasons,
            "parked_variants": {row.sku: row.reason for row in rows.parked},
            "failed_variants": {row.sku: row.reason for row in rows.failed},
        }
        if cycle.blocked:
            problems.append(f"{name}: blocked: {cycle.blocked}")
        if cycle.held_id is not None:
            problems.append(
                f"{name}: cycle held (hold {cycle.held_id}): {'; '.join(cycle.reasons)}; "
                "rerun with --confirm or run `syncd confirm`"
            )
        if parked:
            problems.append(f"{name}: {len(parked)} variant(s) parked: not retried until unparked")
            problems += _listed(name, "parked", parked)
        notes += _listed(name, "left alone", left_alone)
        if cycle.failed or rows.failed:
            count = max(cycle.failed, len(rows.failed))
            problems.append(f"{name}: {count} update(s) failed; they will be retried")
            problems += _listed(name, "failed", rows.failed)
        if cycle.deferred:
            problems.append(f"{name}: {cycle.deferred} update(s) deferred by the rate budget")
        problems += [f"{name}: {reason}" for reason in cycle.waiting_reasons]
        if cycle.waiting and not cycle.waiting_reasons:
            problems.append(f"{name}: {cycle.waiting} increase(s) waiting for a fresh read")
    if as_json:
        print(json.dumps({"ok": not problems, "channels": summary, "problems": problems}, indent=2))
    else:
        for name, item in summary.items():
            print(
                f"{name}: {item['acknowledged']} acknowledged, {item['parked']} parked, "
                f"{item['failed']} failed, {item['requests']} request(s)"
            )
        for note in notes:
            print(f"syncd once: {note}")
        for problem in problems:
            print(f"syncd once: {problem}", file=sys.stderr)
    return 1 if problems else 0


def cli_once(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    configure_logging(config.daemon.log_format, stream=sys.stderr)
    return anyio.run(_run, config, args)
