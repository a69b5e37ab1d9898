"""Reading the outbox: the push queue in planner order, its figures, the rows.

A push round costs what it sends (issue "Performance", item 1): the next
``budget x 50`` rows come straight off the ``outbox_queue`` index in the
planner's order, and the safety interlock's figures are counted by one
index-only query, so a queue of 120 000 values is neither read nor sorted in
Python each round (bench/outbox_queue.py measures both).

``INDEXED BY`` everywhere the queue is read: without statistics SQLite may
prefer the primary key and read the whole channel; naming the index also
turns a query the index cannot serve into an error instead of a slow scan.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite

from syncd.ledger.codec import decode_json, decode_time, encode_time
from syncd.ledger.connection import Database
from syncd.ledger.outbox_life import STATUS_OF, PushClass
from syncd.model import OutboxRow, Sku

ROW_COLUMNS = "channel, sku, desired, acknowledged, seq, status, updated_at, reason, own_reserved"

PENDING_WHERE = "status != 'parked' AND (acknowledged IS NULL OR acknowledged != desired)"
"""The ``outbox_queue`` index's own condition: a query must repeat it to use the index."""


def to_row(r: aiosqlite.Row | tuple[Any, ...]) -> OutboxRow:
    """An outbox row from the columns of :data:`ROW_COLUMNS`, in that order."""
    return OutboxRow(
        channel=r[0],
        sku=r[1],
        desired=int(r[2]),
        acknowledged=None if r[3] is None else int(r[3]),
        seq=int(r[4]),
        status=STATUS_OF[r[5]],
        updated_at=decode_time(r[6]),
        reason=r[7],
        own_reserved=int(r[8]),
    )


def next_pending_query(
    channel: str, limit: int | None, *, increases: bool, skip: Collection[str]
) -> tuple[str, list[object]]:
    """The SQL and parameters of :meth:`OutboxQueueMixin.next_pending` (tests explain it)."""
    top = PushClass.INCREASE if increases else PushClass.UNKNOWN
    sql = (
        f"SELECT {ROW_COLUMNS} FROM outbox INDEXED BY outbox_queue"  # noqa: S608 -- constants
        f" WHERE channel = ? AND {PENDING_WHERE} AND push_class <= ?"
    )
    params: list[object] = [channel, int(top)]
    if skip:
        sql += " AND sku NOT IN (SELECT value FROM json_each(?))"
        params.append(json.dumps(sorted(skip)))
    sql += " ORDER BY push_class, updated_at, sku LIMIT ?"
    params.append(-1 if limit is None else limit)
    return sql, params


FIGURES_SQL = f"""
SELECT count(*),
    count(CASE WHEN updated_at > :until THEN 1 END),
    count(CASE WHEN acknowledged IS NOT NULL AND updated_at > :until THEN 1 END),
    count(CASE WHEN desired = own_reserved AND updated_at > :until
               AND (acknowledged IS NULL OR acknowledged > desired) THEN 1 END)
FROM outbox INDEXED BY outbox_queue
WHERE channel = :channel AND {PENDING_WHERE}
"""  # noqa: S608 -- constant condition
"""The SQL of :meth:`OutboxQueueMixin.pending_figures`, one pass over the index alone.

Over pending rows, "acknowledged known" already means "differs from desired"
(:func:`syncd.safety.is_change`), and ``sellable == 0`` is ``desired =
own_reserved`` (:func:`syncd.safety.is_zeroing`). ``count(CASE ...)``, the
cheapest test first: half the time of ``sum()`` over boolean expressions
(16 ms against 28 ms for 100 000 pending rows)."""


def figures_params(channel: str, confirmed_until: datetime | None) -> dict[str, object]:
    # Every stamp sorts after '': without a confirmation every row counts.
    return {
        "channel": channel,
        "until": "" if confirmed_until is None else encode_time(confirmed_until),
    }


@dataclass(frozen=True, slots=True)
class PendingFigures:
    """What the safety interlock judges a channel's queue by, counted in SQL.

    ``changes`` and ``zeroes`` are :func:`syncd.safety.assess`'s figures over
    the ``unconfirmed`` rows.
    """

    pending: int
    """Every pending row of the channel."""
    unconfirmed: int
    """Pending rows computed after the operator's last confirmation (all without one)."""
    changes: int
    """Unconfirmed rows whose acknowledged value is known and differs from the desired one."""
    zeroes: int
    """Unconfirmed rows that leave buyers nothing (``sellable == 0``) where the channel may
    show something (never acknowledged, or acknowledged above the own orders' units)."""


class OutboxQueueMixin:
    """Outbox reads of `syncd.ledger.store.Ledger`."""

    _db: Database

    async def next_pending(
        self,
        channel: str,
        limit: int | None,
        *,
        increases: bool = True,
        skip: Collection[str] = (),
    ) -> list[OutboxRow]:
        """The next ``limit`` pending rows of ``channel`` in the planner's order.

        Class first (:class:`syncd.ledger.outbox_life.PushClass`: to zero, other
        decreases, never acknowledged, increases), then oldest first
        (``updated_at``, then SKU). ``increases=False`` leaves the increases
        out (they wait, e.g. for an overdue order feed); ``skip`` leaves out the
        SKUs named (already sent this round). Read off ``outbox_queue``: the
        cost is that of the rows returned, not of the queue. ``limit`` None
        reads them all (`syncd once --dry-run` shows every planned value).
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        if limit == 0:
            return []
        sql, params = next_pending_query(channel, limit, increases=increases, skip=skip)
        async with self._db.read() as conn, conn.execute(sql, params) as cursor:
            return [to_row(r) for r in await cursor.fetchall()]

    async def pending_figures(
        self, channel: str, *, confirmed_until: datetime | None
    ) -> PendingFigures:
        """The interlock's figures for ``channel``: one index-only pass over its pending rows.

        ``confirmed_until``: rows computed up to then were authorised by an
        operator's confirmation and are not judged again (None: no confirmation).
        """
        async with (
            self._db.read() as conn,
            conn.execute(FIGURES_SQL, figures_params(channel, confirmed_until)) as cursor,
        ):
            row = await cursor.fetchone()
        assert row is not None  # an aggregate always yields one row
        return PendingFigures(
            pending=int(row[0]), unconfirmed=int(row[1]), changes=int(row[2]), zeroes=int(row[3])
        )

    async def pending(self, channel: str, limit: int | None = None) -> list[OutboxRow]:
        """Rows whose desired value the channel has not confirmed, oldest first."""
        async with (
            self._db.read() as conn,
            conn.execute(
                f"SELECT {ROW_COLUMNS} FROM outbox INDEXED BY outbox_queue"  # noqa: S608
                f" WHERE channel = ? AND {PENDING_WHERE} ORDER BY updated_at, sku LIMIT ?",
                (channel, -1 if limit is None else limit),
            ) as cursor,
        ):
            return [to_row(r) for r in await cursor.fetchall()]

    async def parked_rows(self, channel: str, limit: int | None = None) -> list[OutboxRow]:
        """The channel's parked rows, by SKU (``outbox_parked`` keeps this cheap on any catalog)."""
        async with (
            self._db.read() as conn,
            conn.execute(
                f"SELECT {ROW_COLUMNS} FROM outbox INDEXED BY outbox_parked"  # noqa: S608
                " WHERE channel = ? AND status = 'parked' ORDER BY sku LIMIT ?",
                (channel, -1 if limit is None else limit),
            ) as cursor,
        ):
            return [to_row(r) for r in await cursor.fetchall()]

    async def outbox_counts(self, channel: str) -> tuple[int, int]:
        """``(pending, parked)`` rows of the channel, counted in SQL (status reports them often).

        ``INDEXED BY``: without statistics SQLite prefers the primary key and
        would count by reading every row of the channel -- a few hundred ms
        every five seconds on a 100 000-variant catalog, for an idle daemon.
        """
        async with self._db.read() as conn:
            async with conn.execute(
                "SELECT COUNT(*) FROM outbox INDEXED BY outbox_queue"  # noqa: S608 -- constant
                f" WHERE channel = ? AND {PENDING_WHERE}",
                (channel,),
            ) as cursor:
                pending = await cursor.fetchone()
            async with conn.execute(
                "SELECT COUNT(*) FROM outbox INDEXED BY outbox_parked"
                " WHERE channel = ? AND status = 'parked'",
                (channel,),
            ) as cursor:
                parked = await cursor.fetchone()
        return (int(pending[0]) if pending else 0), (int(parked[0]) if parked else 0)

    async def outbox_rows(
        self, channel: str | None = None, skus: Collection[str] | None = None
    ) -> list[OutboxRow]:
        """Every outbox row (of ``channel``; of these ``skus`` only when given), by SKU."""
        sql = (
            f"SELECT {ROW_COLUMNS} FROM outbox"  # noqa: S608 -- constant columns
            " WHERE (? IS NULL OR channel = ?)"
        )
        params: list[object] = [channel, channel]
        if skus is not None:
            sql += " AND sku IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(skus)))
        async with (
            self._db.read() as conn,
            conn.execute(sql + " ORDER BY channel, sku", params) as cursor,
        ):
            return [to_row(r) for r in await cursor.fetchall()]

    async def explanation(self, channel: str, sku: Sku) -> dict[str, Any] | None:
        """Why the current desired value is what it is (for `syncd explain`)."""
        async with (
            self._db.read() as conn,
            conn.execute(
                "SELECT explanation FROM outbox WHERE channel = ? AND sku = ?", (channel, sku)
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return None if row is None else decode_json(row[0])
