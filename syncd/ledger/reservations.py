"""Reservations: orders committed on a channel but not yet shipped.

Each order line's open quantity is mirrored as postings on the channel's
reservation pool, ``reserved:<channel>``: reserving q posts +q on its
``reserved`` account and -q on its ``void`` account; a release is the
reverse. This copies ASTRAL's model of a reservation as "a specific type of
transaction" that a later one releases (seed 000 L13159-13161; brief
seed-astral section 7). ``reservation_lines`` keeps the open lines per order
so each observation only posts what changed, and an order is never counted
twice.

The plan (what changes) is pure; `record_orders` does the I/O.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiosqlite
import structlog

from syncd.ledger.codec import check_quantity, decode_time, encode_time
from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.transactions import (
    StagedRow,
    insert_transaction,
    stage,
    store_cursor,
    transaction_exists,
    write_staged,
)
from syncd.model import CursorUpdate, OrderObservation, StockStatus, TransactionKind

_log = structlog.get_logger(__name__)

LineKey = tuple[str, str, str]
"""(channel, order_ref, sku)."""
OrderKey = tuple[str, str]
"""(channel, order_ref)."""


def reservation_pool(channel: str) -> str:
    """The ledger location that holds a channel's open reservations."""
    return f"reserved:{channel}"


@dataclass(frozen=True, slots=True)
class OpenLine:
    location: str
    quantity: int
    since: datetime


@dataclass(frozen=True, slots=True)
class LineChange:
    channel: str
    order_ref: str
    sku: str
    location: str
    old: int
    new: int
    since: datetime
    movement: str
    """``reserve``, ``release``, ``release_warehouse`` or ``release_absent``."""


@dataclass(frozen=True, slots=True)
class ReservationPlan:
    changes: tuple[LineChange, ...]
    orders: tuple[OrderObservation, ...]
    """Observations that are not older than what the ledger already holds."""
    stale: tuple[OrderKey, ...]


def plan_reservations(
    orders: Sequence[OrderObservation],
    *,
    open_lines: Mapping[LineKey, OpenLine],
    last_seen: Mapping[OrderKey, datetime],
    complete_channels: Collection[str],
    observed_at: datetime,
) -> ReservationPlan:
    """What an order observation changes in the open reservation lines (pure).

    * An order's lines become its observed open quantities; an order the
      warehouse has taken over reserves nothing (its stock is in the
      warehouse figure already, ARCHITECTURE.md "Reservations").
    * An observation older than the order's last recorded one is ignored, so
      a late or replayed page cannot resurrect a released reservation.
    * For a channel the observation covers completely, open orders that are
      absent are released -- unless seen after this observation was taken.
    """
    seen: set[OrderKey] = set()
    for order in orders:
        key = (order.channel, order.order_ref)
        if key in seen:
            raise InvalidObservationError(
                f"order {order.channel}/{order.order_ref} appears twice in one observation"
            )
        seen.add(key)
        encode_time(order.observed_at)
        for sku, quantity in order.open_lines.items():
            if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
                raise InvalidObservationError(
                    f"order {order.channel}/{order.order_ref}: {sku} open quantity"
                    f" {quantity!r} is not a non-negative int"
                )
            check_quantity(
                quantity, f"order {order.channel}/{order.order_ref}: {sku} open quantity"
            )
    lines_by_order: dict[OrderKey, dict[str, OpenLine]] = {}
    for (channel, order_ref, sku), open_line in open_lines.items():
        lines_by_order.setdefault((channel, order_ref), {})[sku] = open_line

    changes: list[LineChange] = []
    fresh: list[OrderObservation] = []
    stale: list[OrderKey] = []
    for order in orders:
        key = (order.channel, order.order_ref)
        previous = last_seen.get(key)
        if previous is not None and order.observed_at < previous:
            stale.append(key)
            continue
        fresh.append(order)
        target = {} if order.held_by_warehouse else dict(order.open_lines)
        current = lines_by_order.get(key, {})
        for sku in sorted(set(current) | set(target)):
            line = current.get(sku)
            old = line.quantity if line else 0
            new = target.get(sku, 0)
            if old == new and (new == 0 or (line and line.location == order.location)):
                continue
            if new > old:
                movement = "reserve"
            elif order.held_by_warehouse:
                movement = "release_warehouse"
            else:
                movement = "release"
            since = line.since if line and new > 0 else order.observed_at
            changes.append(
                LineChange(
                    order.channel, order.order_ref, sku, order.location, old, new, since, movement
                )
            )

    for key, lines in sorted(lines_by_order.items()):
        channel, order_ref = key
        if channel not in complete_channels or key in seen:
            continue
        previous = last_seen.get(key)
        if previous is not None and previous > observed_at:
            continue
        for sku, line in sorted(lines.items()):
            changes.append(
                LineChange(
                    channel,
                    order_ref,
                    sku,
                    line.location,
                    line.quantity,
                    0,
                    observed_at,
                    "release_absent",
                )
            )
    return ReservationPlan(tuple(changes), tuple(fresh), tuple(stale))


def _postings(changes: Sequence[LineChange]) -> list[StagedRow]:
    rows: list[StagedRow] = []
    for change in changes:
        delta = change.new - change.old
        if delta == 0:
            continue
        pool = reservation_pool(change.channel)
        for status, quantity in ((StockStatus.RESERVED, delta), (StockStatus.VOID, -delta)):
            rows.append(
                (
                    pool,
                    status.value,
                    change.sku,
                    "",
                    quantity,
                    change.movement,
                    None,
                    1,
                    None,
                    change.order_ref,
                )
            )
    return rows


async def _load_state(
    conn: aiosqlite.Connection, channels: Collection[str], orders: Sequence[OrderObservation]
) -> tuple[dict[LineKey, OpenLine], dict[OrderKey, datetime]]:
    open_lines: dict[LineKey, OpenLine] = {}
    last_seen: dict[OrderKey, datetime] = {}
    async with conn.execute(
        """
        SELECT r.channel, r.order_ref, r.sku, r.location, r.quantity, r.since, o.last_seen
        FROM reservation_lines r
        LEFT JOIN orders o ON o.channel = r.channel AND o.order_ref = r.order_ref
        WHERE r.channel IN (SELECT value FROM json_each(?))
        """,
        (json.dumps(sorted(channels)),),
    ) as cursor:
        for channel, order_ref, sku, location, quantity, since, seen_at in await cursor.fetchall():
            open_lines[(channel, order_ref, sku)] = OpenLine(
                location, int(quantity), decode_time(since)
            )
            if seen_at is not None:
                last_seen[(channel, order_ref)] = decode_time(seen_at)
    async with conn.execute(
        """
        SELECT o.channel, o.order_ref, o.last_seen FROM json_each(?) j
        JOIN orders o ON o.channel = json_extract(j.value, '$[0]')
                     AND o.order_ref = json_extract(j.value, '$[1]')
        """,
        (json.dumps([[o.channel, o.order_ref] for o in orders]),),
    ) as cursor:
        for channel, order_ref, seen_at in await cursor.fetchall():
            last_seen[(channel, order_ref)] = decode_time(seen_at)
    return open_lines, last_seen


async def record_orders(
    conn: aiosqlite.Connection,
    *,
    source: str,
    key: str,
    observed_at: datetime,
    orders: Sequence[OrderObservation],
    complete: bool,
    channels: Collection[str],
    cursor: CursorUpdate | None,
    recorded_at: datetime,
) -> bool:
    """Record an order observation inside an open write transaction.

    Returns False when ``(source, key)`` was recorded before. A new key is
    always recorded, even with nothing changed, so replaying an old
    observation later cannot undo newer ones.
    """
    encode_time(observed_at)
    if not source or not key:
        raise InvalidObservationError("an order observation needs a source and a key")
    complete_channels = (
        frozenset(channels) | {o.channel for o in orders} if complete else frozenset()
    )
    if complete and not complete_channels:
        raise InvalidObservationError(
            "a complete observation with no orders must name its channel(s); refusing to guess"
        )
    if await transaction_exists(conn, source, key):
        return False
    involved = {o.channel for o in orders} | complete_channels
    open_lines, last_seen = await _load_state(conn, involved, orders)
    plan = plan_reservations(
        orders,
        open_lines=open_lines,
        last_seen=last_seen,
        complete_channels=complete_channels,
        observed_at=observed_at,
    )
    await stage(conn, _postings(plan.changes))
    txn_id = await insert_transaction(
        conn,
        kind=TransactionKind.RESERVATION,
        source=source,
        key=key,
        observed_at=observed_at,
        recorded_at=recorded_at,
        metadata={
            "orders": str(len(orders)),
            "complete": ",".join(sorted(complete_channels)),
        },
    )
    written = await write_staged(conn, txn_id)
    await conn.executemany(
        """
        INSERT INTO orders (channel, order_ref, status, location, held_by_warehouse,
                            first_seen, last_seen)
        VALUES (?,?,?,?,?,?,?)
        ON CONFLICT (channel, order_ref) DO UPDATE SET status = excluded.status,
            location = excluded.location, held_by_warehouse = excluded.held_by_warehouse,
            last_seen = excluded.last_seen
        """,
        [
            (
                o.channel,
                o.order_ref,
                o.status,
                o.location,
                int(o.held_by_warehouse),
                encode_time(o.observed_at),
                encode_time(o.observed_at),
            )
            for o in plan.orders
        ],
    )
    await conn.executemany(
        "DELETE FROM reservation_lines WHERE channel = ? AND order_ref = ? AND sku = ?",
        [(c.channel, c.order_ref, c.sku) for c in plan.changes if c.new == 0],
    )
    await conn.executemany(
        """
        INSERT INTO reservation_lines (channel, order_ref, sku, location, quantity, since)
        VALUES (?,?,?,?,?,?)
        ON CONFLICT (channel, order_ref, sku) DO UPDATE SET location = excluded.location,
            quantity = excluded.quantity, since = excluded.since
        """,
        [
            (c.channel, c.order_ref, c.sku, c.location, c.new, encode_time(c.since))
            for c in plan.changes
            if c.new > 0
        ],
    )
    if cursor is not None:
        await store_cursor(conn, cursor, txn_id, recorded_at)
    if plan.stale:
        _log.info(
            "ledger.stale_orders_ignored",
            source=source,
            key=key,
            orders=[f"{c}/{r}" for c, r in plan.stale],
        )
    _log.debug(
        "ledger.orders_recorded",
        source=source,
        key=key,
        txn_id=txn_id,
        orders=len(orders),
        changed_lines=len(plan.changes),
        postings=written,
    )
    return True
