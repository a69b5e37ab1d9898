"""Read-only questions to the ledger: balances, reservations, history."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import aiosqlite

from syncd.ledger.codec import account_from_row, decode_strings, decode_time
from syncd.model import Account, Reservation, TransactionKind


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One posting behind a SKU's balance and the transaction that caused it."""

    txn_id: int
    kind: TransactionKind
    source: str
    key: str
    observed_at: datetime
    recorded_at: datetime
    account: Account
    quantity: int
    movement: str
    batches: int | None = None
    unit_multiplier: int = 1
    external_id: str | None = None
    ref: str | None = None
    """The order a reservation posting belongs to."""
    metadata: Mapping[str, str] = field(default_factory=dict)


def _sku_filter(skus: Collection[str] | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE fragment on ``a.sku``: one JSON parameter, whatever the count."""
    if skus is None:
        return "1", ()
    return "a.sku IN (SELECT value FROM json_each(?))", (json.dumps(sorted(set(skus))),)


async def balances(
    conn: aiosqlite.Connection, skus: Collection[str] | None = None
) -> dict[Account, int]:
    where, params = _sku_filter(skus)
    async with conn.execute(
        f"SELECT a.location, a.status, a.sku, a.lot, b.quantity"  # noqa: S608 -- fixed fragment
        f" FROM balances b JOIN accounts a ON a.id = b.account_id"
        f" WHERE b.quantity != 0 AND {where}",
        params,
    ) as cursor:
        rows = await cursor.fetchall()
    return {account_from_row(*row[:4]): int(row[4]) for row in rows}


async def open_reservations(
    conn: aiosqlite.Connection, skus: Collection[str] | None = None
) -> list[Reservation]:
    where, params = _sku_filter(skus)
    async with conn.execute(
        f"SELECT a.channel, a.order_ref, a.sku, a.quantity, a.location, a.since"  # noqa: S608
        f" FROM reservation_lines a WHERE {where}"
        f" ORDER BY a.channel, a.order_ref, a.sku",
        params,
    ) as cursor:
        rows = await cursor.fetchall()
    return [
        Reservation(
            channel=channel,
            order_ref=order_ref,
            sku=sku,
            quantity=int(quantity),
            location=location,
            since=decode_time(since),
        )
        for channel, order_ref, sku, quantity, location, since in rows
    ]


async def last_txn_id(conn: aiosqlite.Connection) -> int:
    async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM transactions") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def changed_skus_since(
    conn: aiosqlite.Connection, txn_id: int, sources: Collection[str] | None = None
) -> set[str]:
    """SKUs with a posting in any transaction after ``txn_id`` (by ``sources`` only, if given)."""
    if sources is None:
        query = (
            "SELECT DISTINCT a.sku FROM postings p JOIN accounts a ON a.id = p.account_id"
            " WHERE p.txn_id > ?"
        )
        parameters: tuple[object, ...] = (txn_id,)
    else:
        query = (
            "SELECT DISTINCT a.sku FROM postings p JOIN accounts a ON a.id = p.account_id"
            " JOIN transactions t ON t.id = p.txn_id"
            " WHERE p.txn_id > ? AND t.source IN (SELECT value FROM json_each(?))"
        )
        parameters = (txn_id, json.dumps(sorted(sources)))
    async with conn.execute(query, parameters) as cursor:
        return {str(row[0]) for row in await cursor.fetchall()}


async def explain_rows(conn: aiosqlite.Connection, sku: str, limit: int) -> list[LedgerEntry]:
    """The newest ``limit`` postings on ``sku``'s accounts, newest first."""
    async with conn.execute(
        """
        SELECT t.id, t.kind, t.source, t.key, t.observed_at, t.recorded_at, t.metadata,
               a.location, a.status, a.sku, a.lot,
               p.quantity, p.movement, p.batches, p.unit_multiplier, p.external_id, p.ref
        FROM accounts a
        JOIN postings p ON p.account_id = a.id
        JOIN transactions t ON t.id = p.txn_id
        WHERE a.sku = ?
        ORDER BY p.id DESC
        LIMIT ?
        """,
        (sku, limit),
    ) as cursor:
        rows = await cursor.fetchall()
    return [
        LedgerEntry(
            txn_id=int(r[0]),
            kind=TransactionKind(r[1]),
            source=r[2],
            key=r[3],
            observed_at=decode_time(r[4]),
            recorded_at=decode_time(r[5]),
            metadata=decode_strings(r[6]),
            account=account_from_row(r[7], r[8], r[9], r[10]),
            quantity=int(r[11]),
            movement=r[12],
            batches=None if r[13] is None else int(r[13]),
            unit_multiplier=int(r[14]),
            external_id=r[15],
            ref=r[16],
        )
        for r in rows
    ]


_FETCH = 20_000
"""Rows fetched per round trip when reading the whole catalog (bounded memory)."""


async def allocation_inputs(
    conn: aiosqlite.Connection, locations: Sequence[str], skus: Collection[str] | None = None
) -> tuple[int, dict[str, int], list[tuple[str, str, str, int, str]]]:
    """What a recompute reads for one channel, in one read transaction.

    ``(txn, pools, reservations)``: ``txn`` is the last transaction the rest
    reflects; ``pools`` the ``available`` units per SKU at ``locations``
    (ids, or prefixes ending in ``*``; summed in SQL over locations and lots,
    so no other status -- reserved, ``void`` -- and no row per balance is
    read into Python); ``reservations`` the open lines as ``(channel,
    order_ref, sku, units, location)``.
    """
    txn = await last_txn_id(conn)
    where, params = _sku_filter(skus)
    fed, fed_params = _location_filter(locations)
    pools: dict[str, int] = {}
    async with conn.execute(
        "SELECT a.sku, SUM(b.quantity)"  # noqa: S608 -- fixed fragments, values bound
        " FROM accounts a INDEXED BY accounts_available JOIN balances b ON b.account_id = a.id"
        f" WHERE a.status = 'available' AND {where} AND ({fed}) GROUP BY a.sku",
        (*params, *fed_params),
    ) as cursor:
        while rows := await cursor.fetchmany(_FETCH):
            pools.update(rows)  # type: ignore[arg-type]  # (sku, units) by the SELECT
    async with conn.execute(
        f"SELECT a.channel, a.order_ref, a.sku, a.quantity, a.location"  # noqa: S608
        f" FROM reservation_lines a WHERE {where}",
        params,
    ) as cursor:
        held = [tuple(row) for row in await cursor.fetchall()]
    return txn, pools, held


def _location_filter(patterns: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """A WHERE fragment on ``a.location`` matching ids and ``prefix*`` patterns exactly.

    ``substr`` rather than ``LIKE``: LIKE ignores ASCII case and treats ``%``
    and ``_`` in a location id as wildcards.
    """
    parts: list[str] = []
    params: list[str] = []
    for pattern in patterns:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            parts.append(f"substr(a.location, 1, {len(prefix)}) = ?")
            params.append(prefix)
        else:
            parts.append("a.location = ?")
            params.append(pattern)
    return " OR ".join(parts) or "0", tuple(params)


async def available_at(
    conn: aiosqlite.Connection, skus: Collection[str], txn: int
) -> dict[str, list[tuple[str, str, int]]]:
    """``available`` balances of ``skus`` as they stood after transaction ``txn``.

    SKU -> (location, ``location/available/lot`` key, units), non-zero ones
    only, sorted by key: the sum of the postings up to ``txn`` (postings are
    never changed or removed, so this is exact however long ago ``txn`` was).
    """
    where, params = _sku_filter(skus)
    async with conn.execute(
        "SELECT a.sku, a.location, a.lot, SUM(p.quantity)"  # noqa: S608 -- fixed fragment
        " FROM accounts a JOIN postings p ON p.account_id = a.id"
        f" WHERE a.status = 'available' AND {where} AND p.txn_id <= ?"
        " GROUP BY a.id HAVING SUM(p.quantity) != 0",
        (*params, txn),
    ) as cursor:
        rows = await cursor.fetchall()
    found: dict[str, list[tuple[str, str, int]]] = {}
    for sku, location, lot, quantity in rows:
        found.setdefault(sku, []).append((location, f"{location}/available/{lot}", int(quantity)))
    for entries in found.values():
        entries.sort(key=lambda entry: entry[1])
    return found
