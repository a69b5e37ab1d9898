"""Recording absolute stock levels as adjustments against ``void``.

A snapshot never overwrites a balance. For each level that differs from the
balance it posts ``level - balance`` on the account and the opposite on the
location's ``void`` account for the same variant and lot, so
sum(postings) == balance keeps holding and every change keeps a cause
(seed 000 L13157 "Wildcard location to source (temporarily) unexplained
movements"; brief seed-astral section 7 "Absolute snapshots").

The ``void`` side is one posting per (variant, lot), netted over statuses: a
snapshot where 3 units moved from ``available`` to ``damaged`` posts -3/+3 and
nothing on ``void``, because that change explains itself.

The differences are computed in SQL over a staged copy of the levels, so a
100 000-variant snapshot is one transaction and a few statements.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite
import structlog

from syncd.ledger.codec import check_quantity, encode_time
from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.transactions import (
    insert_transaction,
    store_cursor,
    transaction_exists,
    write_staged,
)
from syncd.model import SnapshotDraft, StockStatus, TransactionKind

_log = structlog.get_logger(__name__)

_VOID = StockStatus.VOID.value


def level_rows(draft: SnapshotDraft) -> list[tuple[str, str, str, int]]:
    """Validate a snapshot and return its (status, sku, lot, level) rows (pure)."""
    encode_time(draft.observed_at)
    if not draft.source or not draft.key or not draft.location:
        raise InvalidObservationError("a snapshot needs a source, a key and a location")
    if draft.complete and not draft.levels:
        # An empty read must never become a mass zeroing (ARCHITECTURE.md,
        # safety interlocks): a really empty location still lists its SKUs at 0.
        raise InvalidObservationError(
            f"{draft.location}: a complete snapshot with no levels would zero the location"
        )
    rows: list[tuple[str, str, str, int]] = []
    for (raw_status, sku, lot), level in draft.levels.items():
        try:
            status = StockStatus(raw_status)
        except ValueError:
            raise InvalidObservationError(f"{sku}: unknown status {raw_status!r}") from None
        if status is StockStatus.VOID:
            raise InvalidObservationError(f"{sku}: void is never a stock level (seed 000 L13157)")
        if isinstance(level, bool) or not isinstance(level, int):
            raise InvalidObservationError(f"{sku}: level {level!r} is not an int")
        check_quantity(level, f"{sku}: level")
        if not sku:
            raise InvalidObservationError("a level has an empty SKU")
        rows.append((status.value, sku, lot, level))
    return rows


async def record_snapshot(
    conn: aiosqlite.Connection, draft: SnapshotDraft, recorded_at: datetime
) -> bool:
    """Record a snapshot inside an open write transaction; False if replayed.

    A snapshot with no differences is still recorded (as a transaction with
    no postings): its key must be remembered, or replaying this *old*
    snapshot after newer changes would post them back.
    """
    levels = level_rows(draft)
    if await transaction_exists(conn, draft.source, draft.key):
        return False
    location = draft.location
    await conn.executemany(
        "INSERT INTO stage_levels (status, sku, lot, level) VALUES (?,?,?,?)", levels
    )
    await conn.execute(
        """
        INSERT INTO stage_postings (location, status, sku, lot, quantity, movement)
        SELECT :location, l.status, l.sku, l.lot, l.level - COALESCE(b.quantity, 0), 'snapshot'
        FROM stage_levels l
        LEFT JOIN accounts a ON a.location = :location AND a.status = l.status
                            AND a.sku = l.sku AND a.lot = l.lot
        LEFT JOIN balances b ON b.account_id = a.id
        WHERE l.level != COALESCE(b.quantity, 0)
        ORDER BY l.sku, l.lot, l.status
        """,
        {"location": location},
    )
    if draft.complete:
        # Only accounts of THIS location; void accounts are the counter side.
        await conn.execute(
            """
            INSERT INTO stage_postings (location, status, sku, lot, quantity, movement)
            SELECT a.location, a.status, a.sku, a.lot, -b.quantity, 'snapshot'
            FROM accounts a JOIN balances b ON b.account_id = a.id
            WHERE a.location = :location AND a.status != :void AND b.quantity != 0
              AND NOT EXISTS (SELECT 1 FROM stage_levels l WHERE l.status = a.status
                              AND l.sku = a.sku AND l.lot = a.lot)
            ORDER BY a.sku, a.lot, a.status
            """,
            {"location": location, "void": _VOID},
        )
    await conn.execute(
        """
        INSERT INTO stage_postings (location, status, sku, lot, quantity, movement)
        SELECT :location, :void, sku, lot, -SUM(quantity), 'snapshot'
        FROM stage_postings GROUP BY sku, lot HAVING SUM(quantity) != 0
        ORDER BY sku, lot
        """,
        {"location": location, "void": _VOID},
    )
    txn_id = await insert_transaction(
        conn,
        kind=TransactionKind.SNAPSHOT,
        source=draft.source,
        key=draft.key,
        observed_at=draft.observed_at,
        recorded_at=recorded_at,
        metadata={
            **draft.metadata,
            "location": location,
            "complete": "true" if draft.complete else "false",
            "levels": str(len(levels)),
        },
    )
    written = await write_staged(conn, txn_id)
    if draft.cursor is not None:
        await store_cursor(conn, draft.cursor, txn_id, recorded_at)
    _log.debug(
        "ledger.snapshot_recorded",
        source=draft.source,
        key=draft.key,
        location=location,
        levels=len(levels),
        complete=draft.complete,
        txn_id=txn_id,
        postings=written,
    )
    return True
