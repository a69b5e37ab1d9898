"""The ledger's one SQLite connection and the lock that serialises it.

syncd keeps ONE connection (one writer, as SQLite prefers). Because reads and
writes share it, a read running between two statements of a write would see
that write's uncommitted rows; so reads take the same lock as writes. Writes
are ``BEGIN IMMEDIATE ... COMMIT``: the write lock is taken up front, so a
read-modify-write never discovers half-way that another process got in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import anyio
import structlog

from syncd.ledger.schema import configure, migrate

_log = structlog.get_logger(__name__)

# Staging tables for set-based writes (see postings.py, snapshots.py). They
# are connection-private and emptied at the start and end of every write.
_TEMP_TABLES: tuple[str, ...] = (
    """
    CREATE TEMP TABLE IF NOT EXISTS stage_postings (
        seq INTEGER PRIMARY KEY,
        location TEXT NOT NULL,
        status TEXT NOT NULL,
        sku TEXT NOT NULL,
        lot TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        movement TEXT NOT NULL,
        batches INTEGER,
        unit_multiplier INTEGER NOT NULL DEFAULT 1,
        external_id TEXT,
        ref TEXT
    )
    """,
    """
    CREATE TEMP TABLE IF NOT EXISTS stage_levels (
        status TEXT NOT NULL,
        sku TEXT NOT NULL,
        lot TEXT NOT NULL,
        level INTEGER NOT NULL,
        PRIMARY KEY (status, sku, lot)
    ) WITHOUT ROWID
    """,
)


class Database:
    """One aiosqlite connection, a lock, and transaction scopes over it."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> Database:
        path = Path(path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; Python's
        # implicit transactions would otherwise open DEFERRED ones behind us.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await configure(conn)
            await migrate(conn)
            for statement in _TEMP_TABLES:
                await conn.execute(statement)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.close()
            raise
        return cls(conn, path)

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction, committed on exit.

        Any exception -- including cancellation -- rolls back, so either every
        row of the write is on disk or none is.
        """
        async with self._lock:
            conn = self._conn
            await _abandon_stale_transaction(conn)
            await conn.execute("BEGIN IMMEDIATE")
            try:
                await _clear_stage(conn)
                yield conn
                await _clear_stage(conn)
                await conn.execute("COMMIT")
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await _rollback_quietly(conn, exc)
                raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """A read transaction: every statement in it sees the same state."""
        async with self._lock:
            conn = self._conn
            await _abandon_stale_transaction(conn)
            await conn.execute("BEGIN")
            try:
                yield conn
                await conn.execute("COMMIT")
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await _rollback_quietly(conn, exc)
                raise


async def _abandon_stale_transaction(conn: aiosqlite.Connection) -> None:
    """Roll back a transaction an earlier failed rollback left open.

    Otherwise every later BEGIN would fail with "cannot start a transaction
    within a transaction" and the daemon would be wedged until restarted.
    """
    if conn.in_transaction:
        _log.warning("ledger.stale_transaction_rolled_back")
        await conn.execute("ROLLBACK")


async def _clear_stage(conn: aiosqlite.Connection) -> None:
    await conn.execute("DELETE FROM stage_postings")
    await conn.execute("DELETE FROM stage_levels")


async def _rollback_quietly(conn: aiosqlite.Connection, cause: BaseException) -> None:
    """Roll back; if that fails too, keep the original error (it is the news).

    A rollback can only fail when the connection itself is gone, in which
    case SQLite discards the open transaction anyway.
    """
    try:
        await conn.execute("ROLLBACK")
    except Exception as exc:
        _log.warning("ledger.rollback_failed", error=repr(exc), cause=repr(cause))
