"""The ledger's invariants, checked against what is on disk.

Tests run this after every step; the daemon can run it at start-up. Each
violation is one human-readable line; an empty list means all hold.
"""

from __future__ import annotations

import aiosqlite

from syncd.model import StockStatus

_LIMIT = 20  # enough to diagnose; a broken file would otherwise flood the report


async def check_invariants(conn: aiosqlite.Connection) -> list[str]:
    # 1. sum(postings) == balance for every account (ARCHITECTURE.md invariant 1).
    problems = await balance_mismatches(conn)
    problems += await other_violations(conn)
    return problems


async def balance_mismatches(
    conn: aiosqlite.Connection, *, limit: int | None = _LIMIT
) -> list[str]:
    """Accounts whose stored balance is not the sum of their postings (``limit``: at most)."""
    problems: list[str] = []
    async with conn.execute(
        """
        SELECT a.location, a.status, a.sku, a.lot, COALESCE(p.total, 0), COALESCE(b.quantity, 0)
        FROM accounts a
        LEFT JOIN (SELECT account_id, SUM(quantity) AS total FROM postings GROUP BY account_id) p
               ON p.account_id = a.id
        LEFT JOIN balances b ON b.account_id = a.id
        WHERE COALESCE(p.total, 0) != COALESCE(b.quantity, 0)
        LIMIT ?
        """,
        (-1 if limit is None else limit,),
    ) as cursor:
        for location, status, sku, lot, total, balance in await cursor.fetchall():
            problems.append(
                f"account {location}/{status}/{sku}/{lot}: postings sum to {total}"
                f" but the balance is {balance}"
            )
    return problems


async def other_violations(conn: aiosqlite.Connection) -> list[str]:
    """Invariants 2-4: transactions sum to zero, open lines match reserved balances, no
    dangling reference."""
    problems: list[str] = []
    # 2. every transaction sums to zero (seed 000 L13125).
    async with conn.execute(
        "SELECT txn_id, SUM(quantity) FROM postings GROUP BY txn_id"
        " HAVING SUM(quantity) != 0 LIMIT ?",
        (_LIMIT,),
    ) as cursor:
        for txn_id, total in await cursor.fetchall():
            problems.append(f"transaction {txn_id}: postings sum to {total}, not 0")
    # 3. open reservation lines == the reserved balance of the channel's pool
    #    ('reserved:' || channel is reservations.reservation_pool in SQL).
    async with conn.execute(
        """
        WITH lines AS (
            SELECT 'reserved:' || channel AS location, sku, SUM(quantity) AS quantity
            FROM reservation_lines GROUP BY channel, sku),
        pools AS (
            SELECT a.location, a.sku, b.quantity FROM accounts a
            JOIN balances b ON b.account_id = a.id
            WHERE a.location LIKE 'reserved:%' AND a.status = ? AND b.quantity != 0)
        SELECT l.location, l.sku, l.quantity, COALESCE(p.quantity, 0) FROM lines l
        LEFT JOIN pools p ON p.location = l.location AND p.sku = l.sku
        WHERE l.quantity != COALESCE(p.quantity, 0)
        UNION ALL
        SELECT p.location, p.sku, 0, p.quantity FROM pools p
        WHERE NOT EXISTS (SELECT 1 FROM lines l WHERE l.location = p.location AND l.sku = p.sku)
        LIMIT ?
        """,
        (StockStatus.RESERVED.value, _LIMIT),
    ) as cursor:
        for location, sku, lines, balance in await cursor.fetchall():
            problems.append(
                f"{location}/{sku}: open order lines total {lines} but the reserved balance"
                f" is {balance}"
            )
    # 4. no dangling references (foreign keys are on, this catches old files).
    async with conn.execute("PRAGMA foreign_key_check") as cursor:
        for row in list(await cursor.fetchall())[:_LIMIT]:
            problems.append(f"foreign key violation: {tuple(row)!r}")
    return problems
