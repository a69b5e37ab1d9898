"""Fault injection for ledger tests: make a write die before its COMMIT.

`FaultyConnection` stands in for the ledger's aiosqlite connection and lets
statements through until the chosen one inside the next write transaction
(counted from ``BEGIN IMMEDIATE``; always at the latest on ``COMMIT``). Then:

* ``raise``   -- the statement raises; the ledger rolls back as for any error;
* ``abandon`` -- the connection is closed under the ledger first, as if the
  process died holding it (SQLite discards the open transaction);
* ``kill``    -- the database and WAL files are copied as they are on disk at
  that instant -- what a ``kill -9`` leaves behind -- to ``kill_copy``.
"""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from syncd.ledger.store import Ledger

Mode = Literal["raise", "abandon", "kill"]


class SimulatedCrash(Exception):
    """The fault this module injects."""


class _Failing:
    """Awaitable and async context manager, like aiosqlite's results."""

    def __init__(self, action: Callable[[], Awaitable[None]]) -> None:
        self._action = action

    async def _run(self) -> Any:
        await self._action()
        raise SimulatedCrash

    def __await__(self) -> Any:
        return self._run().__await__()

    async def __aenter__(self) -> Any:
        return await self._run()

    async def __aexit__(self, *exc: object) -> None:
        return None


class FaultyConnection:
    def __init__(
        self,
        real: aiosqlite.Connection,
        *,
        db_path: Path,
        at_statement: int,
        mode: Mode,
        match: str | None = None,
        kill_copy: Path | None = None,
    ) -> None:
        self._real = real
        self._db_path = db_path
        self._at = at_statement
        self._mode = mode
        self._match = match
        self._kill_copy = kill_copy
        self._count: int | None = None  # None until BEGIN IMMEDIATE
        self.fired = False

    def _should_fire(self, sql: str) -> bool:
        if self.fired:
            return False
        text = " ".join(sql.split())
        if text.startswith("BEGIN IMMEDIATE"):
            self._count = 0
            return False
        if text == "ROLLBACK":
            # The write already failed on its own (bad input): the fault point
            # was never reached, and the rollback must go through.
            self._count = None
            return False
        if self._count is None:
            return False
        self._count += 1
        if self._match is not None:
            return self._match in text or text == "COMMIT"
        return self._count >= self._at or text == "COMMIT"

    async def _crash(self) -> None:
        self.fired = True
        if self._mode == "abandon":
            await self._real.close()
        elif self._mode == "kill":
            assert self._kill_copy is not None
            self._kill_copy.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal"):
                source = Path(f"{self._db_path}{suffix}")
                if source.exists():
                    shutil.copyfile(source, f"{self._kill_copy}{suffix}")

    def execute(self, sql: str, parameters: Any = None) -> Any:
        if self._should_fire(sql):
            return _Failing(self._crash)
        return self._real.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any) -> Any:
        if self._should_fire(sql):
            return _Failing(self._crash)
        return self._real.executemany(sql, parameters)

    @property
    def in_transaction(self) -> bool:
        return self._real.in_transaction

    async def close(self) -> None:
        await self._real.close()


def inject(
    ledger: Ledger,
    *,
    at_statement: int = 1,
    mode: Mode = "raise",
    match: str | None = None,
    kill_copy: Path | None = None,
) -> FaultyConnection:
    """Swap a fault in under ``ledger`` (tests reach into its private connection
    on purpose: production code has no fault hooks)."""
    db = ledger._db
    faulty = FaultyConnection(
        db._conn,
        db_path=db.path,
        at_statement=at_statement,
        mode=mode,
        match=match,
        kill_copy=kill_copy,
    )
    db._conn = faulty  # type: ignore[assignment]
    return faulty


def remove(ledger: Ledger, faulty: FaultyConnection) -> None:
    ledger._db._conn = faulty._real
