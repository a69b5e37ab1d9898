"""The outbox: the latest desired absolute value per (channel, variant).

A row holds what syncd wants the channel to show (``desired``), what the
channel last confirmed (``acknowledged``) and a ``seq`` bumped each time the
desired value changes. A value is pending while desired != acknowledged and
the row is not parked. Because values are absolute, sending one twice is
harmless, so at-least-once delivery is enough (ARCHITECTURE.md "Outbox").

``seq`` is what keeps replies honest (brief seed-astral section 5.3: "Sequence
pushes per variant with a monotonically increasing local version, and drop
superseded ones"): a reply for an older seq is logged as ``superseded`` and
the newer value stays pending. The reply still updates ``acknowledged`` when
it is the newest reply so far, because it tells what the channel now shows:
otherwise, after 5 -> 7 (sent) -> 5, the late acknowledgement of 7 would leave
``acknowledged`` at 5 == desired and the channel stuck at 7.
When no reply ever comes (it was lost, or syncd crashed before recording
it), the same 5 -> 7 (sent, maybe applied) -> 5 would leave the row
"acknowledged" at 5 while the channel may show 7; so a value that returns to
the acknowledged one after an unconfirmed send of another value clears
``acknowledged`` (the channel's value is unknown) and is pushed again.

Every push is logged with the explanation of the value it carried, so each
number a channel shows can be traced back (ARCHITECTURE.md invariant 5).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosqlite
import structlog

from syncd.ledger.codec import (
    ExplanationEncoder,
    decode_json,
    decode_time,
    encode_json,
    encode_time,
)
from syncd.ledger.connection import Database
from syncd.ledger.errors import InvalidObservationError
from syncd.model import Desired, OutboxRow, Sku, now_utc

_log = structlog.get_logger(__name__)

PushItem = tuple[Sku, int, int]
"""(sku, seq, quantity) of one value handed to a channel."""

Reply = str | Mapping[str, Any] | None

_ROW_COLUMNS = "channel, sku, desired, acknowledged, seq, status, updated_at, reason, own_reserved"


@dataclass(frozen=True, slots=True)
class PushLogEntry:
    id: int
    channel: str
    sku: Sku
    seq: int
    quantity: int | None
    """None only for a superseded refusal of a value never logged as sent."""
    status: str
    """``sent``, ``acknowledged``, ``superseded``, ``parked``, ``failed`` or ``unparked``."""
    request_id: str | None
    reply: str | None
    at: datetime
    explanation: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Current:
    desired: int
    acknowledged: int | None
    acked_seq: int
    seq: int
    status: str
    explanation: str | None
    own_reserved: int


def _settled_status(status: str, desired: int, acknowledged: int | None) -> str:
    """The status a row has when nothing is in flight for it."""
    if status == "parked":
        return "parked"
    return "acknowledged" if acknowledged == desired else "pending"


def _encode_reply(reply: Reply) -> str | None:
    if reply is None or isinstance(reply, str):
        return reply
    return encode_json(reply)


def _to_row(r: aiosqlite.Row | tuple[Any, ...]) -> OutboxRow:
    return OutboxRow(
        channel=r[0],
        sku=r[1],
        desired=int(r[2]),
        acknowledged=None if r[3] is None else int(r[3]),
        seq=int(r[4]),
        status=r[5],
        updated_at=decode_time(r[6]),
        reason=r[7],
        own_reserved=int(r[8]),
    )


async def _current(
    conn: aiosqlite.Connection,
    keys: Sequence[tuple[str, Sku]],
) -> dict[tuple[str, Sku], _Current]:
    """Current rows for ``keys``: one indexed query per channel."""
    by_channel: dict[str, list[Sku]] = {}
    for channel, sku in keys:
        by_channel.setdefault(channel, []).append(sku)
    found: dict[tuple[str, Sku], _Current] = {}
    for channel, skus in by_channel.items():
        async with conn.execute(
            "SELECT sku, desired, acknowledged, acked_seq, seq, status, explanation, own_reserved"
            " FROM outbox WHERE channel = ? AND sku IN (SELECT value FROM json_each(?))",
            (channel, json.dumps(skus)),
        ) as cursor:
            for r in await cursor.fetchall():
                found[(channel, r[0])] = _Current(
                    int(r[1]),
                    None if r[2] is None else int(r[2]),
                    int(r[3]),
                    int(r[4]),
                    r[5],
                    r[6],
                    int(r[7]),
                )
    return found


async def _unconfirmed_send(
    conn: aiosqlite.Connection, channel: str, sku: Sku, row: _Current
) -> bool:
    """True when a value other than the acknowledged one was sent after the last acknowledgement.

    Such a send may have reached the channel (a lost reply, a crash before the
    acknowledgement was recorded), so the acknowledged value is no longer
    known to be what the channel shows (found by the simulation, tests/sim).
    """
    async with conn.execute(
        "SELECT 1 FROM push_log WHERE channel = ? AND sku = ? AND status = 'sent'"
        " AND seq > ? AND quantity IS NOT ? LIMIT 1",
        (channel, sku, row.acked_seq, row.acknowledged),
    ) as cursor:
        return await cursor.fetchone() is not None


async def _rows_for_items(
    conn: aiosqlite.Connection, channel: str, items: Sequence[PushItem]
) -> dict[Sku, _Current]:
    """Current rows for a reply's items; refuses replies that cannot be true."""
    current = await _current(conn, [(channel, sku) for sku, _, _ in items])
    found: dict[Sku, _Current] = {}
    for sku, seq, quantity in items:
        row = current.get((channel, sku))
        if row is None:
            raise InvalidObservationError(f"{channel}/{sku}: no outbox row")
        if seq > row.seq or seq < 1:
            raise InvalidObservationError(f"{channel}/{sku}: seq {seq} was never issued")
        if seq == row.seq and quantity != row.desired:
            raise InvalidObservationError(
                f"{channel}/{sku}: seq {seq} carries {row.desired}, not {quantity}"
            )
        found[sku] = row
    return found


async def _log_pushes(
    conn: aiosqlite.Connection,
    rows: Sequence[tuple[str, Sku, int, int | None, str, str | None, str | None, str, str | None]],
) -> None:
    await conn.executemany(
        "INSERT INTO push_log (channel, sku, seq, quantity, status, request_id, reply, at,"
        " explanation) VALUES (?,?,?,?,?,?,?,?,?)",
        rows,
    )


class OutboxMixin:
    """Outbox and push-log operations of `syncd.ledger.store.Ledger`."""

    _db: Database

    async def set_desired(self, rows: Sequence[Desired], at: datetime) -> int:
        """Upsert desired values; returns how many values changed.

        ``seq`` is bumped only when the value changes; the explanation is
        always refreshed. A negative value is refused (nothing is ever pushed
        negative), as is the same (channel, sku) twice in one call.
        """
        stamp = encode_time(at)
        keys: set[tuple[str, Sku]] = set()
        for row in rows:
            if isinstance(row.quantity, bool) or not isinstance(row.quantity, int):
                raise InvalidObservationError(f"{row.channel}/{row.sku}: {row.quantity!r}")
            if row.quantity < 0:
                raise InvalidObservationError(
                    f"{row.channel}/{row.sku}: desired {row.quantity} < 0 is never pushed"
                )
            if not 0 <= row.own_reserved <= row.quantity:
                raise InvalidObservationError(
                    f"{row.channel}/{row.sku}: own orders {row.own_reserved} outside 0..{row.quantity}"
                )
            if (row.channel, row.sku) in keys:
                raise InvalidObservationError(f"{row.channel}/{row.sku} appears twice")
            keys.add((row.channel, row.sku))
        encoder = ExplanationEncoder()
        async with self._db.write() as conn:
            current = await _current(conn, [(r.channel, r.sku) for r in rows])
            changed: list[tuple[str, Sku, int, int, str, str, str, int]] = []
            same: list[tuple[str, int, str, Sku]] = []
            unknown: list[tuple[str, Sku]] = []
            for row in rows:
                explanation = encoder.encode(row.explanation)
                old = current.get((row.channel, row.sku))
                if old is not None and old.desired == row.quantity:
                    if old.explanation != explanation or old.own_reserved != row.own_reserved:
                        same.append((explanation, row.own_reserved, row.channel, row.sku))
                    continue
                status = _settled_status(
                    old.status if old else "pending",
                    row.quantity,
                    old.acknowledged if old else None,
                )
                if (
                    old is not None
                    and status == "acknowledged"
                    and await _unconfirmed_send(conn, row.channel, row.sku, old)
                ):
                    # Back to the acknowledged value, but a different value was
                    # handed to the channel since and never confirmed (reply lost,
                    # crash): it may be what the channel shows now. What the channel
                    # shows is unknown, so the value is pushed again.
                    status = "pending"
                    unknown.append((row.channel, row.sku))
                seq = old.seq + 1 if old else 1
                changed.append(
                    (
                        row.channel,
                        row.sku,
                        row.quantity,
                        seq,
                        status,
                        explanation,
                        stamp,
                        row.own_reserved,
                    )
                )
            await conn.executemany(
                """
                INSERT INTO outbox (channel, sku, desired, seq, status, explanation, updated_at,
                                    own_reserved)
                VALUES (?,?,?,?,?,?,?,?)
                ON CONFLICT (channel, sku) DO UPDATE SET desired = excluded.desired,
                    seq = excluded.seq, status = excluded.status,
                    explanation = excluded.explanation, updated_at = excluded.updated_at,
                    own_reserved = excluded.own_reserved
                """,
                changed,
            )
            await conn.executemany(
                "UPDATE outbox SET acknowledged = NULL WHERE channel = ? AND sku = ?", unknown
            )
            # The reasoning behind an unchanged value may still have moved
            # (say, more stock behind the same cap); rewrite only those rows
            # (compared here: one UPDATE per row would cost as much as the recompute).
            await conn.executemany(
                "UPDATE outbox SET explanation = ?, own_reserved = ? WHERE channel = ? AND sku = ?",
                same,
            )
        if changed:
            _log.debug("outbox.desired_changed", changed=len(changed), unchanged=len(same))
        return len(changed)

    async def pending(self, channel: str, limit: int | None = None) -> list[OutboxRow]:
        """Rows whose desired value the channel has not confirmed, oldest first."""
        async with (
            self._db.read() as conn,
            conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox WHERE channel = ?"  # noqa: S608 -- constant
                " AND status != 'parked' AND (acknowledged IS NULL OR acknowledged != desired)"
                " ORDER BY updated_at, sku LIMIT ?",
                (channel, -1 if limit is None else limit),
            ) as cursor,
        ):
            return [_to_row(r) for r in await cursor.fetchall()]

    async def parked_rows(self, channel: str, limit: int | None = None) -> list[OutboxRow]:
        """The channel's parked rows, by SKU (``outbox_parked`` keeps this cheap on any catalog)."""
        async with (
            self._db.read() as conn,
            conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox INDEXED BY outbox_parked"  # noqa: S608
                " WHERE channel = ? AND status = 'parked' ORDER BY sku LIMIT ?",
                (channel, -1 if limit is None else limit),
            ) as cursor,
        ):
            return [_to_row(r) for r in await cursor.fetchall()]

    async def outbox_counts(self, channel: str) -> tuple[int, int]:
        """``(pending, parked)`` rows of the channel, counted in SQL (status reports them often).

        ``INDEXED BY``: without statistics SQLite prefers the primary key and
        would count by reading every row of the channel -- a few hundred ms
        every five seconds on a 100 000-variant catalog, for an idle daemon.
        """
        async with self._db.read() as conn:
            async with conn.execute(
                "SELECT COUNT(*) FROM outbox INDEXED BY outbox_pending WHERE channel = ?"
                " AND status != 'parked' AND (acknowledged IS NULL OR acknowledged != desired)",
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

    async def outbox_rows(self, channel: str | None = None) -> list[OutboxRow]:
        async with (
            self._db.read() as conn,
            conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox"  # noqa: S608 -- constant columns
                " WHERE ? IS NULL OR channel = ? ORDER BY channel, sku",
                (channel, channel),
            ) as cursor,
        ):
            return [_to_row(r) for r in await cursor.fetchall()]

    async def mark_sent(
        self, channel: str, items: Sequence[PushItem], request_id: str | None, at: datetime
    ) -> None:
        """Log values handed to the channel; rows still at that seq become ``sent``."""
        stamp = encode_time(at)
        async with self._db.write() as conn:
            rows = await _rows_for_items(conn, channel, items)
            log = []
            current = []
            for sku, seq, quantity in items:
                row = rows[sku]
                is_current = seq == row.seq
                explanation = row.explanation if is_current else None
                log.append(
                    (channel, sku, seq, quantity, "sent", request_id, None, stamp, explanation)
                )
                if is_current and row.status != "parked":
                    current.append((stamp, channel, sku))
            await _log_pushes(conn, log)
            await conn.executemany(
                "UPDATE outbox SET status = 'sent', sent_at = ? WHERE channel = ? AND sku = ?",
                current,
            )

    async def mark_acknowledged(
        self,
        channel: str,
        items: Sequence[PushItem],
        request_id: str | None,
        reply: Reply,
        at: datetime,
    ) -> None:
        """Record the channel's confirmation of values it now shows.

        The row is acknowledged only if still at that seq; otherwise the
        reply is logged ``superseded`` and the newer value stays pending.
        """
        stamp = encode_time(at)
        text = _encode_reply(reply)
        async with self._db.write() as conn:
            rows = await _rows_for_items(conn, channel, items)
            log = []
            updates = []
            for sku, seq, quantity in items:
                row = rows[sku]
                superseded = seq < row.seq
                log.append(
                    (
                        channel,
                        sku,
                        seq,
                        quantity,
                        "superseded" if superseded else "acknowledged",
                        request_id,
                        text,
                        stamp,
                        None,
                    )
                )
                if seq < row.acked_seq:
                    continue  # an older reply arriving late says nothing new
                status = _settled_status(row.status, row.desired, quantity)
                if superseded and status == "pending" and row.status in ("sent", "failed"):
                    status = row.status  # the newer value's own send is still in flight
                updates.append((quantity, seq, stamp, status, channel, sku))
            await _log_pushes(conn, log)
            await conn.executemany(
                "UPDATE outbox SET acknowledged = ?, acked_seq = ?, acked_at = ?, status = ?"
                " WHERE channel = ? AND sku = ?",
                updates,
            )

    async def mark_failed(
        self,
        channel: str,
        items: Sequence[PushItem],
        request_id: str | None,
        error: Reply,
        at: datetime,
    ) -> None:
        """A push that did not land; the value stays pending and is retried."""
        stamp = encode_time(at)
        text = _encode_reply(error)
        async with self._db.write() as conn:
            rows = await _rows_for_items(conn, channel, items)
            log = []
            updates = []
            for sku, seq, quantity in items:
                row = rows[sku]
                log.append((channel, sku, seq, quantity, "failed", request_id, text, stamp, None))
                if seq == row.seq and row.status != "parked":
                    updates.append((text, channel, sku))
            await _log_pushes(conn, log)
            await conn.executemany(
                "UPDATE outbox SET status = 'failed', reason = ? WHERE channel = ? AND sku = ?",
                updates,
            )

    async def mark_parked(
        self, channel: str, sku: Sku, seq: int, reason: str, at: datetime
    ) -> bool:
        """Stop pushing an item the channel refuses, until `unpark`.

        Only the value at ``seq`` is parked: if a newer value exists it may
        well be accepted, so the refusal is logged ``superseded`` and the
        newer value stays pending. Returns whether the row was parked.
        """
        stamp = encode_time(at)
        async with self._db.write() as conn:
            row = (await _current(conn, [(channel, sku)])).get((channel, sku))
            if row is None or seq > row.seq:
                raise InvalidObservationError(f"{channel}/{sku}: seq {seq} was never issued")
            parked = seq == row.seq
            quantity: int | None = row.desired
            if not parked:
                # The refused value is the one that was sent under that seq.
                async with conn.execute(
                    "SELECT quantity FROM push_log WHERE channel = ? AND sku = ? AND seq = ?"
                    " ORDER BY id DESC LIMIT 1",
                    (channel, sku, seq),
                ) as cursor:
                    sent = await cursor.fetchone()
                quantity = None if sent is None else sent[0]
            await _log_pushes(
                conn,
                [
                    (
                        channel,
                        sku,
                        seq,
                        quantity,
                        "parked" if parked else "superseded",
                        None,
                        reason,
                        stamp,
                        None,
                    )
                ],
            )
            if parked:
                await conn.execute(
                    "UPDATE outbox SET status = 'parked', reason = ? WHERE channel = ? AND sku = ?",
                    (reason, channel, sku),
                )
        _log.warning("outbox.parked", channel=channel, sku=sku, seq=seq, parked=parked)
        return parked

    async def unpark(self, channel: str, sku: Sku) -> bool:
        """Make a parked item pushable again; False if it was not parked."""
        return bool(await self.unpark_items(channel, [sku], now_utc(), "unparked"))

    async def unpark_items(
        self, channel: str, skus: Collection[Sku] | None, at: datetime, note: str
    ) -> list[Sku]:
        """Make parked items of ``channel`` pushable again; ``None`` means every parked one.

        Each one gets an ``unparked`` push-log entry carrying ``note`` (who
        asked and why), so the history shows why a refused value went out
        again. The row becomes pending, or acknowledged when the channel
        already shows the desired value. Returns the SKUs unparked, sorted;
        SKUs that were not parked are left alone.
        """
        stamp = encode_time(at)
        async with self._db.write() as conn:
            async with conn.execute(
                "SELECT sku, seq, desired FROM outbox WHERE channel = ? AND status = 'parked'"
                " ORDER BY sku",
                (channel,),
            ) as cursor:
                parked = [(r[0], r[1], r[2]) for r in await cursor.fetchall()]
            if skus is not None:
                wanted = set(skus)
                parked = [row for row in parked if row[0] in wanted]
            if not parked:
                return []
            await _log_pushes(
                conn,
                [
                    (channel, sku, seq, desired, "unparked", None, note, stamp, None)
                    for sku, seq, desired in parked
                ],
            )
            await conn.executemany(
                """
                UPDATE outbox SET reason = NULL, status = CASE
                    WHEN acknowledged IS NOT NULL AND acknowledged = desired THEN 'acknowledged'
                    ELSE 'pending' END
                WHERE channel = ? AND sku = ? AND status = 'parked'
                """,
                [(channel, sku) for sku, _, _ in parked],
            )
        unparked = [sku for sku, _, _ in parked]
        _log.warning("outbox.unparked", channel=channel, skus=unparked[:20], count=len(unparked))
        return unparked

    async def push_log(
        self, channel: str | None = None, sku: Sku | None = None, limit: int = 100
    ) -> list[PushLogEntry]:
        """Newest first."""
        async with (
            self._db.read() as conn,
            conn.execute(
                """
                SELECT id, channel, sku, seq, quantity, status, request_id, reply, at, explanation
                FROM push_log WHERE (? IS NULL OR channel = ?) AND (? IS NULL OR sku = ?)
                ORDER BY id DESC LIMIT ?
                """,
                (channel, channel, sku, sku, limit),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            PushLogEntry(
                id=int(r[0]),
                channel=r[1],
                sku=r[2],
                seq=int(r[3]),
                quantity=None if r[4] is None else int(r[4]),
                status=r[5],
                request_id=r[6],
                reply=r[7],
                at=decode_time(r[8]),
                explanation=decode_json(r[9]),
            )
            for r in rows
        ]
