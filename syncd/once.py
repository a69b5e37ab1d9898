"""`syncd once`: one complete cycle -- read every source, compute, push -- then exit.

For cron-style use, for a first sync before enabling the service, and for
`--dry-run`, which shows what syncd would publish without writing anything:
sources are read into a throw-away copy of the ledger and the channels are
only read (their current values), never written.

A run pushes round after round until every channel is through, re-reading
sources before they go stale, and reports totals over the whole run
(:mod:`syncd.once_run`). On a terminal, stderr shows one updating progress
line per round (done / total, rate, ETA per channel); elsewhere nothing extra.

Exit status (``--help`` says the same, ``syncd.cli.ONCE_EXIT_STATUS``): 0
when every channel acknowledged every value; 1 with the reasons when
anything is parked, held, deferred or waiting, or when it could not start
(another syncd holds the ledger, the ledger is damaged); 2 for a config
problem; 3
when a source or a channel failed during the run (a read or a push round
raised, updates failed, or a push was blocked by a stale source) -- 3 wins
over 1. A variant parked by an earlier run still counts (it is not
acknowledged) -- except one parked because Ankorstore shows it as always in
stock under ``always_in_stock = "leave"``, which is configured behaviour and
only listed.

One writer per ledger: a real run takes the lock ``syncd run`` holds for
its lifetime (:mod:`syncd.daemon.lock`) and refuses, naming the holder's
pid, while a daemon or another ``syncd once`` runs on the same ledger --
before reading anything, so it writes nothing anywhere. A dry run takes no
lock: it works on a copy. Either way the ledger is checked before it is
trusted (:mod:`syncd.ledger.guard`).

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
from typing import Any, TextIO, cast

import anyio
import structlog

from syncd.assembly import Assembly, assemble
from syncd.channels.ankorstore import ALWAYS_IN_STOCK_REASON
from syncd.config import Config, ConfigError, load_config
from syncd.daemon.lock import AlreadyRunning, LockError, RuntimeLock
from syncd.engine import ChannelCycle
from syncd.http.clock import SystemClock
from syncd.ledger import integrity
from syncd.ledger.guard import LedgerRefused, open_checked
from syncd.ledger.store import Ledger
from syncd.logs import configure_logging
from syncd.model import OutboxRow
from syncd.once_run import ChannelTotals, OnceRun, SourceTotals
from syncd.progress import describe as describe_progress
from syncd.readback import ReadBack
from syncd.safety import SafetyPolicy, assess, increase_needs_second_read
from syncd.sources.base import PollResult

log = structlog.get_logger("syncd.once")

LISTED_ROWS = 20
"""Parked or failed variants named one by one in the report; the count is always complete."""

EXIT_OK = 0
EXIT_LEFT = 1
EXIT_CONFIG = 2
EXIT_FAILED = 3
EXIT_NOT_STARTED = EXIT_LEFT
"""Another syncd holds the ledger's lock, or the ledger is damaged: nothing was read or written."""


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
    left: int = 0
    """Values still not acknowledged (parked ones aside)."""

    @staticmethod
    def configured(row: OutboxRow) -> bool:
        """Parked on purpose by the config (always in stock, left alone)."""
        return (row.reason or "").startswith(ALWAYS_IN_STOCK_REASON)


async def read_sources(assembly: Assembly) -> list[PollResult]:
    """Poll every source until it says it caught up; failures are reported, not fatal."""
    return await OnceRun.for_assembly(assembly).read()


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
    for name in assembly.channels:
        try:
            await ReadBack.for_assembly(assembly, name).run(startup=True)
        except Exception as exc:  # one unreadable channel never stops the others
            failed[name] = f"{type(exc).__name__}: {exc}"
            log.error("channel.readback_failed", channel=name, startup=True, error=failed[name])
            continue
        assembly.engine.take_packs(name)
    return failed


async def push_all(assembly: Assembly, *, confirm: bool) -> dict[str, ChannelCycle]:
    """Push every channel until it is through (see :class:`OnceRun`); the last round of each."""
    totals = await OnceRun.for_assembly(assembly).push(confirm=confirm)
    return {name: channel.last for name, channel in totals.items()}


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
            stale_sources=await engine.stale_causes(name),
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


class ProgressLine:
    """One line on a terminal's stderr, rewritten after every push round; nothing elsewhere.

    Logs go to the same terminal, so log output is written through this object
    too: it erases the progress line first, the log lines scroll above it,
    and the next round draws it again at the bottom -- one line, never a trail.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.enabled = stream.isatty()
        self._shown = False

    def show(self, run: OnceRun) -> None:
        if not self.enabled:
            return
        parts = [
            f"{name} {describe_progress(progress)}"
            for name, progress in run.progress.items()
            if progress is not None
        ]
        if not parts:
            return
        width = max(20, shutil.get_terminal_size().columns - 1)
        text = ("syncd once: " + "; ".join(parts))[:width]
        # Carriage return and erase-line: the line updates in place.
        self._stream.write(f"\r\x1b[K{text}")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False

    # --- the log's stream --------------------------------------------------------

    def write(self, text: str) -> int:
        self.clear()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self.enabled

    def fileno(self) -> int:
        return self._stream.fileno()


async def _run(config: Config, args: argparse.Namespace, line: ProgressLine) -> int:
    if args.dry_run:
        return await _cycle(config, args, line)
    # One writer per ledger: the lock `syncd run` holds for its lifetime
    # (keyed by the ledger's resolved path, so a symlink finds the same lock).
    lock = RuntimeLock(config.daemon.lock_path, config.daemon.database)
    try:
        lock.acquire()
    except (AlreadyRunning, LockError) as exc:
        print(f"syncd once: {exc}; nothing was read or written", file=sys.stderr)
        return EXIT_NOT_STARTED
    try:
        return await _cycle(config, args, line)
    finally:
        lock.release()


async def _cycle(config: Config, args: argparse.Namespace, line: ProgressLine) -> int:
    database = Path(config.daemon.database)
    scratch: Path | None = None
    if args.dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="syncd-dry-run-"))
        copy = scratch / "ledger.db"
        try:
            await anyio.to_thread.run_sync(copy_ledger, database, copy)
        except sqlite3.DatabaseError as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            if isinstance(exc, sqlite3.OperationalError):
                raise
            print(f"syncd once: {integrity.unreadable(database, str(exc))}", file=sys.stderr)
            return EXIT_NOT_STARTED
        database = copy
    else:
        database.parent.mkdir(parents=True, exist_ok=True)
    try:
        ledger = await open_checked(
            database,
            config=str(config.source_path) if config.source_path else None,
            shown=Path(config.daemon.database),
        )
    except LedgerRefused as exc:
        print(f"syncd once: {exc}", file=sys.stderr)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        return EXIT_NOT_STARTED
    assembly = assemble(config, ledger, clock=SystemClock())
    run = OnceRun.for_assembly(assembly, on_round=line.show)
    try:
        await run.read()
        await assembly.engine.recompute(full=True)
        if await _needs_second_read(assembly):
            # An increase from zero goes out only after a second consistent read.
            await assembly.engine.note_pending_computed()
            await run.read()
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
            return EXIT_OK
        unverified = await verify_channels(assembly)
        try:
            totals = await run.push(confirm=args.confirm, skip=unverified)
        finally:
            line.clear()
        outstanding = await _outstanding(ledger, list(totals))
    finally:
        await assembly.aclose()
        await ledger.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return report(totals, outstanding, sources=run.source_totals, as_json=args.json)


async def _outstanding(ledger: Ledger, channels: list[str]) -> dict[str, Outstanding]:
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


def cli_once(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_CONFIG
    line = ProgressLine(sys.stderr)
    # On a terminal the log writes through the progress line, which steps aside for it.
    configure_logging(config.daemon.log_format, config.daemon.log_level, stream=cast(TextIO, line))
    return anyio.run(_run, config, args, line)
