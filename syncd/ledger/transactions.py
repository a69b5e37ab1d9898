"""Writing one ledger transaction: staging, duplicates, postings, cursor.

Every kind of write (movements, snapshots, reservations) stages its postings
in the connection-private ``stage_postings`` table, then moves them into
``postings`` with one set-based statement. That keeps a 100 000-variant
snapshot to a handful of round trips to SQLite's thread, and gives all kinds
the same duplicate handling and the same zero-sum assertion.

These helpers run inside `Database.write()`; none of them commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import aiosqlite

from syncd.ledger.codec import encode_strings, encode_time
from syncd.ledger.errors import ConflictingPostingError, UnbalancedTransactionError
from syncd.model import CursorUpdate, TransactionKind

StagedRow = tuple[str, str, str, str, int, str, int | None, int, str | None, str | None]
"""location, status, sku, lot, quantity, movement, batches, unit_multiplier,
external_id, ref -- the columns of ``stage_postings``."""


async def transaction_exists(conn: aiosqlite.Connection, source: str, key: str) -> bool:
    async with conn.execute(
        "SELECT 1 FROM transactions WHERE source = ? AND key = ?", (source, key)
    ) as cursor:
        return await cursor.fetchone() is not None


async def stage(conn: aiosqlite.Connection, rows: Iterable[StagedRow]) -> None:
    await conn.executemany(
        "INSERT INTO stage_postings (location, status, sku, lot, quantity, movement,"
        " batches, unit_multiplier, external_id, ref) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )


async def drop_duplicates(conn: aiosqlite.Connection) -> int:
    """Remove staged postings whose external id is already recorded.

    Returns how many were dropped. A recorded id with a different account or
    quantity raises `ConflictingPostingError` (source postings are immutable,
    seed 000 L13131; brief seed-astral section 5.3: "INSERT OR IGNORE the
    postings by id").
    """
    async with conn.execute(
        """
        SELECT s.external_id FROM stage_postings s
        JOIN postings p ON p.external_id = s.external_id
        JOIN accounts a ON a.id = p.account_id
        WHERE a.location != s.location OR a.status != s.status OR a.sku != s.sku
           OR a.lot != s.lot OR p.quantity != s.quantity
        ORDER BY s.seq
        """
    ) as cursor:
        conflicts = [str(row[0]) for row in await cursor.fetchall()]
    if conflicts:
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise ConflictingPostingError(
            f"postings already recorded with other content: {', '.join(conflicts[:5])}{more}",
            conflicts,
        )
    cursor = await conn.execute(
        """
        DELETE FROM stage_postings WHERE external_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM postings p WHERE p.external_id = stage_postings.external_id)
        """
    )
    return cursor.rowcount


async def staged_totals(conn: aiosqlite.Connection) -> tuple[int, int]:
    """(number of staged postings, their signed sum)."""
    async with conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(quantity), 0) FROM stage_postings"
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def insert_transaction(
    conn: aiosqlite.Connection,
    *,
    kind: TransactionKind,
    source: str,
    key: str,
    observed_at: datetime,
    recorded_at: datetime,
    metadata: Mapping[str, str],
    skipped_duplicates: int = 0,
) -> int:
    async with conn.execute(
        "INSERT INTO transactions (kind, source, key, observed_at, recorded_at, metadata,"
        " skipped_duplicates) VALUES (?,?,?,?,?,?,?) RETURNING id",
        (
            kind.value,
            source,
            key,
            encode_time(observed_at),
            encode_time(recorded_at),
            encode_strings(metadata),
            skipped_duplicates,
        ),
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def write_staged(conn: aiosqlite.Connection, txn_id: int) -> int:
    """Move staged postings into ``postings`` (the trigger updates balances).

    Then assert the transaction sums to zero -- on disk, not on the draft, so
    the check also covers postings computed in SQL (snapshots). Raises
    `UnbalancedTransactionError` and the caller's transaction rolls back.
    """
    # No DISTINCT: OR IGNORE already drops repeats, and sorting 200 000 staged
    # rows for it costs more than the index lookups it would save.
    await conn.execute(
        "INSERT OR IGNORE INTO accounts (location, status, sku, lot)"
        " SELECT location, status, sku, lot FROM stage_postings ORDER BY seq"
    )
    cursor = await conn.execute(
        """
        INSERT INTO postings (txn_id, account_id, quantity, movement, batches,
                              unit_multiplier, external_id, ref)
        SELECT ?, a.id, s.quantity, s.movement, s.batches, s.unit_multiplier,
               s.external_id, s.ref
        FROM stage_postings s
        JOIN accounts a ON a.location = s.location AND a.status = s.status
                       AND a.sku = s.sku AND a.lot = s.lot
        ORDER BY s.seq
        """,
        (txn_id,),
    )
    written = cursor.rowcount
    async with conn.execute(
        "SELECT COALESCE(SUM(quantity), 0) FROM postings WHERE txn_id = ?", (txn_id,)
    ) as check:
        row = await check.fetchone()
    total = int(row[0]) if row else 0
    if total != 0:
        raise UnbalancedTransactionError(
            f"transaction {txn_id} would sum to {total:+d}, not 0; nothing recorded"
        )
    return written


async def store_cursor(
    conn: aiosqlite.Connection, cursor: CursorUpdate, txn_id: int, at: datetime
) -> None:
    """Commit a feed cursor with the transaction that covers it (brief
    seed-astral section 5.2: postings and ``hwm`` in one SQLite transaction)."""
    await conn.execute(
        "INSERT INTO cursors (feed, value, txn_id, updated_at) VALUES (?,?,?,?)"
        " ON CONFLICT (feed) DO UPDATE SET value = excluded.value,"
        " txn_id = excluded.txn_id, updated_at = excluded.updated_at",
        (cursor.feed, cursor.value, txn_id, encode_time(at)),
    )


async def current_cursor(conn: aiosqlite.Connection, feed: str) -> str | None:
    async with conn.execute("SELECT value FROM cursors WHERE feed = ?", (feed,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row[0])
