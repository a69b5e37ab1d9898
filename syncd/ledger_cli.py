"""`syncd ledger check` and `syncd ledger rebuild-balances`: the damaged-ledger recovery.

`syncd run` and `syncd once` refuse a ledger that fails ``PRAGMA
quick_check`` or its invariants (:mod:`syncd.ledger.integrity`) and print
which of these to run:

* ``syncd ledger check`` -- the same checks, on demand; exit 0 when sound.
* ``syncd ledger rebuild-balances`` -- recompute every balance from the
  postings (the ledger's record; balances are their materialised sum), in
  one transaction, then check again. It cannot repair a file SQLite itself
  finds damaged: that one is moved aside and a fresh ledger started.

Both work on the file directly, so both take the lock `syncd run` holds
(:mod:`syncd.daemon.lock`): with a daemon running they refuse, naming its
pid, and change nothing.

Exit status: 0 the ledger is sound (after the rebuild); 1 problems remain
(printed with the recovery); 2 the ledger could not be reached (no file,
lock held, unreadable config).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tomllib
from pathlib import Path

import anyio
import structlog

from syncd.config import read_daemon_section
from syncd.daemon.lock import AlreadyRunning, LockError, RuntimeLock
from syncd.ledger import integrity
from syncd.ledger.store import Ledger

log = structlog.get_logger("syncd.ledger")

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_UNREACHABLE = 2
CANNOT_REPAIR = "syncd ledger: rebuilding balances cannot repair a damaged file"
LISTED = 20
"""Corrected accounts printed one by one; the count is always complete."""


class _Unreachable(Exception):
    """The ledger cannot be reached; ``str()`` says why."""


async def _check(database: Path, config: str) -> int:
    async with await Ledger.open(database) as ledger:
        report = await ledger.check_integrity()
    if report.ok:
        print(f"ledger {database}: sound (quick_check ok, invariants hold)")
        return EXIT_OK
    print(integrity.recovery(database, report, config=config), file=sys.stderr)
    return EXIT_PROBLEMS


async def _rebuild(database: Path, config: str) -> int:
    async with await Ledger.open(database) as ledger:
        before = await ledger.check_integrity()
        if before.damaged:
            print(
                f"{CANNOT_REPAIR}\n{integrity.recovery(database, before, config=config)}",
                file=sys.stderr,
            )
            return EXIT_PROBLEMS
        corrected = await ledger.rebuild_balances()
        log.warning("ledger.balances_rebuilt", database=str(database), corrected=len(corrected))
        after = await ledger.check_integrity()
    print(f"ledger {database}: {len(corrected)} balance(s) recomputed from their postings")
    for line in corrected[:LISTED]:
        print(f"  {line}")
    if len(corrected) > LISTED:
        print(f"  ... and {len(corrected) - LISTED} more")
    if after.ok:
        print(f"ledger {database}: sound; start syncd")
        return EXIT_OK
    print(integrity.recovery(database, after, config=config), file=sys.stderr)
    return EXIT_PROBLEMS


async def run(action: str, config_path: Path) -> int:
    try:
        section = read_daemon_section(config_path)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise _Unreachable(f"cannot read [daemon] from {config_path}: {exc}") from exc
    database = section.database
    if not await anyio.Path(database).is_file():
        raise _Unreachable(f"there is no ledger at {database}")
    lock = RuntimeLock(section.lock_path, database)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        raise _Unreachable(f"{exc}; stop it first (it checks the ledger when it starts)") from exc
    except LockError as exc:
        raise _Unreachable(str(exc)) from exc
    try:
        if action == "check":
            return await _check(database, str(config_path))
        return await _rebuild(database, str(config_path))
    except sqlite3.OperationalError as exc:  # permissions, disk: says nothing of the content
        raise _Unreachable(f"cannot open the ledger {database}: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # SQLite could not even read it
        report = integrity.IntegrityReport(damaged=[str(exc)])
        message = integrity.recovery(database, report, config=str(config_path))
        if action != "check":
            message = f"{CANNOT_REPAIR}\n{message}"
        print(message, file=sys.stderr)
        return EXIT_PROBLEMS
    finally:
        lock.release()


def cli_ledger(args: argparse.Namespace) -> int:
    try:
        return anyio.run(run, args.action, Path(args.config))
    except _Unreachable as exc:
        print(f"syncd ledger: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
