"""Is the ledger file sound enough to run on? Checked before syncd trusts it.

Every number syncd publishes is computed from the ledger's balances, so a
damaged ledger must stop syncd rather than be pushed to the channels. Two
checks run when `syncd run` or `syncd once` opens the ledger:

1. ``PRAGMA quick_check``: SQLite's own structural check (pages, b-trees,
   records; it skips only the index-content comparison of ``integrity_check``
   and so stays linear in the file size). A file that fails it is damaged
   below syncd's level: nothing in it can be trusted.
2. the ledger's invariants (:mod:`syncd.ledger.invariants`): every balance
   equals the sum of its postings, every transaction sums to zero, the open
   order lines equal the reserved balances, no dangling reference.

A failure refuses the start with the exact problem and the recovery
(:func:`recovery`). Balances that disagree with their postings are the
common case -- a hand edit, a restored table -- and the postings are the
record, so `syncd ledger rebuild-balances` recomputes the balances from
them (:func:`rebuild_balances`). Anything else means moving the file aside
and starting a fresh ledger: sources are read in full again and the
channels are read back before anything is pushed.

A third check runs while the daemon runs (:func:`file_problem`): a ledger
file that was unlinked or replaced under an open connection would take
every later write into a file nobody will ever open again. The daemon
compares the opened file's ``st_dev``/``st_ino`` with the path's each tick,
reports ``failing`` and exits non-zero so systemd restarts it on the file
now at the path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from syncd.ledger import invariants

_QUICK_CHECK_LINES = 20
"""``quick_check`` lines kept in the report: enough to diagnose, bounded for the log."""


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """What the checks found; empty lists mean the ledger is sound."""

    damaged: list[str] = field(default_factory=list)
    """``PRAGMA quick_check`` lines other than ``ok``: the file itself is damaged."""
    balances: list[str] = field(default_factory=list)
    """Accounts whose balance is not the sum of their postings."""
    other: list[str] = field(default_factory=list)
    """Every other broken invariant (transactions, reservations, references)."""

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.balances or self.other)

    @property
    def problems(self) -> list[str]:
        return [*self.damaged, *self.balances, *self.other]


FileId = tuple[int, int]
"""``(st_dev, st_ino)``: which file a path names."""


def file_id(path: Path) -> FileId:
    """The identity of the file at ``path`` (symlinks followed); raises OSError."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def file_problem(path: Path, opened: FileId) -> str | None:
    """Why ``path`` no longer names the file opened as ``opened``; None while it does."""
    try:
        current = file_id(path)
    except FileNotFoundError:
        return f"the ledger file {path} was removed while syncd was running"
    except OSError as exc:
        return f"the ledger file {path} cannot be checked: {exc.strerror or exc}"
    if current != opened:
        return f"the ledger file {path} was replaced by another file while syncd was running"
    return None


async def quick_check(conn: aiosqlite.Connection) -> list[str]:
    """``PRAGMA quick_check`` findings; empty when SQLite finds the file sound."""
    async with conn.execute(f"PRAGMA quick_check({_QUICK_CHECK_LINES})") as cursor:
        rows = await cursor.fetchall()
    lines = [str(row[0]) for row in rows]
    return [] if lines == ["ok"] else lines


async def check(conn: aiosqlite.Connection) -> IntegrityReport:
    """Both checks; the invariants only when the file itself is sound."""
    damaged = await quick_check(conn)
    if damaged:
        return IntegrityReport(damaged=damaged)
    return IntegrityReport(
        balances=await invariants.balance_mismatches(conn),
        other=await invariants.other_violations(conn),
    )


async def rebuild_balances(conn: aiosqlite.Connection) -> list[str]:
    """Recompute every balance from the postings; returns the accounts it corrected.

    Run inside one write transaction: either every balance is rebuilt or
    none is. Postings are append-only and are the record (seed 000
    L13129-13131); a balance is only their materialised sum.
    """
    corrected = await invariants.balance_mismatches(conn, limit=None)
    await conn.execute("DELETE FROM balances")
    await conn.execute(
        "INSERT INTO balances (account_id, quantity)"
        " SELECT account_id, SUM(quantity) FROM postings GROUP BY account_id"
    )
    return corrected


def recovery(database: Path, report: IntegrityReport, *, config: str | None = None) -> str:
    """The operator's message: what is wrong, then how to recover, one step per line."""
    where = f" --config {config}" if config else ""
    aside = (
        f"stop syncd; move the ledger aside: mv {database} {database}.damaged"
        f" (and {database}-wal, {database}-shm if present); start syncd: it creates a fresh"
        " ledger, whose first cycle reads every source in full and the channels back before"
        " it pushes anything"
    )
    if report.damaged:
        head = f"the ledger {database} is damaged (SQLite quick_check):"
        steps = [f"recovery: {aside}"]
    elif report.balances:
        head = f"the ledger {database} is inconsistent:"
        steps = [
            "recovery, either:",
            f"  - syncd ledger rebuild-balances{where} (with syncd stopped: recomputes every"
            " balance from the postings, the ledger's record), then start syncd; or",
            f"  - {aside}",
        ]
    else:
        head = f"the ledger {database} is inconsistent:"
        steps = [f"recovery: {aside}"]
    found = [line for problem in report.problems for line in problem.splitlines() if line]
    return "\n".join([head, *(f"  {line}" for line in found), *steps])


def unreadable(database: Path, error: str) -> str:
    """The message for a file SQLite cannot even open as a database."""
    report = IntegrityReport(damaged=[error])
    return recovery(database, report)
