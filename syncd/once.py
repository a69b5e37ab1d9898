"""`syncd once`: one complete cycle -- read every source, compute, push -- then exit.

For cron-style use, for a first sync before enabling the service, and for
`--dry-run`, which shows what syncd would publish without writing anything:
sources are read into a throw-away copy of the ledger and the channels are
only read (their current values), never written.

A run pushes round after round until every channel is through, re-reading
sources before they go stale, and reports totals over the whole run
(:mod:`syncd.once_run`). On a terminal, stderr shows one updating progress
line per round (done / total, rate, ETA per channel); elsewhere nothing extra.

What the run reports and its exit status: :mod:`syncd.once_report`; the
dry run's plan: :mod:`syncd.once_dry`.

One writer per ledger: a real run takes the lock ``syncd run`` holds for
its lifetime (:mod:`syncd.runtime_lock`) and refuses, naming the holder's
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
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO, cast

import anyio
import structlog

from syncd import once_dry
from syncd.assembly import Assembly, assemble
from syncd.channels.base import LiveValue
from syncd.clock import SystemClock
from syncd.config import Config, ConfigError, load_config
from syncd.engine import ChannelCycle
from syncd.ledger import integrity
from syncd.ledger.guard import LedgerRefused, open_checked
from syncd.ledger_copy import copy_ledger
from syncd.logs import configure_logging
from syncd.once_report import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_LEFT,
    EXIT_NOT_STARTED,
    EXIT_OK,
    Outstanding,
    outstanding_rows,
    report,
)
from syncd.once_run import OnceRun
from syncd.progress import describe as describe_progress
from syncd.readback import ReadBack
from syncd.runtime_lock import AlreadyRunning, LockError, RuntimeLock
from syncd.safety import increase_needs_second_read
from syncd.sources.base import PollResult

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_LEFT",
    "EXIT_OK",
    "Outstanding",
    "ProgressLine",
    "copy_ledger",
    "report",
]

log = structlog.get_logger("syncd.once")


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


async def verify_channels(
    assembly: Assembly, live: dict[str, Mapping[str, LiveValue]] | None = None
) -> dict[str, str]:
    """Read every channel back before trusting the ledger's acknowledgements.

    Corrects each acknowledged value the channel contradicts (the ledger may
    be a restored backup), so the push writes every difference; also teaches
    the engine the channels' own pack sizes. Returns, per channel whose read
    failed, why: such a channel is not pushed in this run. ``live`` collects
    what each channel showed (the dry run prints it).
    """
    failed: dict[str, str] = {}
    for name in assembly.channels:
        try:
            checked = await ReadBack.for_assembly(assembly, name, now=assembly.clock.now).run(
                startup=True, keep_live=live is not None
            )
            if live is not None and checked.live is not None:
                live[name] = checked.live
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
    clock = SystemClock()
    try:
        ledger = await open_checked(
            database,
            clock=clock,
            config=str(config.source_path) if config.source_path else None,
            shown=Path(config.daemon.database),
        )
    except LedgerRefused as exc:
        print(f"syncd once: {exc}", file=sys.stderr)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        return EXIT_NOT_STARTED
    assembly = assemble(config, ledger, clock=clock)
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
            # The same start-up read-back a real run makes (into the copy), then its plan.
            live: dict[str, Mapping[str, LiveValue]] = {}
            unverified = await verify_channels(assembly, live)
            plans = await once_dry.plan_channels(assembly, unverified, confirm=args.confirm)
            print(once_dry.render(plans, live, unverified, as_json=args.json))
            return EXIT_OK
        unverified = await verify_channels(assembly)
        try:
            totals = await run.push(confirm=args.confirm, skip=unverified)
        finally:
            line.clear()
        outstanding = await outstanding_rows(ledger, list(totals))
    finally:
        await assembly.aclose()
        await ledger.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return report(totals, outstanding, sources=run.source_totals, as_json=args.json)


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
