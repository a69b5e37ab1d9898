"""Open the ledger only if it can be trusted: what `syncd run` and `syncd once` call.

See :mod:`syncd.ledger.integrity` for the checks and the recovery they
print. A file SQLite cannot open at all ("file is not a database", a header
page overwritten) is reported the same way, as damaged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import structlog

from syncd.clock import Clock
from syncd.ledger import integrity
from syncd.ledger.store import Ledger

log = structlog.get_logger("syncd.ledger")


class LedgerRefused(Exception):
    """The ledger is damaged or inconsistent; ``str()`` is the problem and the recovery."""


async def open_checked(
    path: Path,
    *,
    clock: Clock | None = None,
    config: str | None = None,
    shown: Path | None = None,
) -> Ledger:
    """Open, migrate and check the ledger at ``path``; raises :class:`LedgerRefused`.

    ``clock`` is the process's one clock (:meth:`Ledger.open`).

    ``shown`` is the path the operator knows when ``path`` is a copy of it
    (``syncd once --dry-run``): the message and its recovery name that one.
    """
    named = shown or path
    try:
        ledger = await Ledger.open(path, clock=clock)
    except sqlite3.OperationalError:
        raise  # cannot open it at all (permissions, disk): not a verdict on its content
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
        raise LedgerRefused(integrity.unreadable(named, str(exc))) from exc
    started = ledger.clock.monotonic()
    try:
        report = await ledger.check_integrity()
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError):
            with anyio.CancelScope(shield=True):
                await ledger.close()
            raise
        report = integrity.IntegrityReport(damaged=[str(exc)])
    except BaseException:
        with anyio.CancelScope(shield=True):
            await ledger.close()
        raise
    seconds = round(ledger.clock.monotonic() - started, 3)
    if report.ok:
        log.info("ledger.checked", database=str(path), seconds=seconds)
        return ledger
    with anyio.CancelScope(shield=True):
        await ledger.close()
    log.error(
        "ledger.refused",
        database=str(named),
        damaged=report.damaged,
        balances=report.balances,
        other=report.other,
    )
    raise LedgerRefused(integrity.recovery(named, report, config=config))
