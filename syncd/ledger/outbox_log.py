"""The push log: every value handed to a channel and every answer about it.

Append-only. Each entry names the value it is about by the same identity the
planner and the outbox use (:class:`syncd.model.PushedValue`: SKU, seq,
quantity, within the entry's channel) and, for a send, carries the explanation
of that value, so each number a channel shows can be traced back
(ARCHITECTURE.md invariant 5). Statuses are :class:`LogStatus`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import aiosqlite

from syncd.ledger.codec import decode_json, decode_time, encode_json
from syncd.ledger.connection import Database
from syncd.ledger.outbox_life import LogStatus, RowState
from syncd.model import PushedValue, Sku

Reply = str | Mapping[str, Any] | None
"""A channel's reply or error as recorded: text, or JSON-encodable data."""


@dataclass(frozen=True, slots=True)
class PushLogEntry:
    id: int
    channel: str
    sku: Sku
    seq: int
    quantity: int | None
    """None only for a superseded refusal of a value never logged as sent."""
    status: LogStatus
    request_id: str | None
    reply: str | None
    at: datetime
    explanation: dict[str, Any] | None

    @property
    def value(self) -> PushedValue | None:
        """The pushed value the entry is about (None when its quantity is unknown)."""
        return None if self.quantity is None else PushedValue(self.sku, self.seq, self.quantity)


class LogLine(NamedTuple):
    """One push-log entry to write (a named tuple: one per value pushed)."""

    value: PushedValue | tuple[Sku, int, int | None]
    status: LogStatus
    request_id: str | None = None
    reply: str | None = None
    explanation: str | None = None


def encode_reply(reply: Reply) -> str | None:
    if reply is None or isinstance(reply, str):
        return reply
    return encode_json(reply)


async def log_pushes(
    conn: aiosqlite.Connection, channel: str, stamp: str, lines: Sequence[LogLine]
) -> None:
    await conn.executemany(
        "INSERT INTO push_log (channel, sku, seq, quantity, status, request_id, reply, at,"
        " explanation) VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (
                channel,
                line.value[0],
                line.value[1],
                line.value[2],
                str(line.status),
                line.request_id,
                line.reply,
                stamp,
                line.explanation,
            )
            for line in lines
        ],
    )


async def unconfirmed_send(
    conn: aiosqlite.Connection, channel: str, sku: Sku, state: RowState
) -> bool:
    """True when a value other than the acknowledged one was sent after the last acknowledgement.

    Such a send may have reached the channel (a lost reply, a crash before the
    acknowledgement was recorded), so the acknowledged value is no longer
    known to be what the channel shows (found by the simulation, tests/sim).
    The rule is :func:`syncd.ledger.outbox_life.sent_since_acknowledged`.
    """
    async with conn.execute(
        "SELECT 1 FROM push_log WHERE channel = ? AND sku = ? AND status = 'sent'"
        " AND seq >= ? AND quantity IS NOT ? LIMIT 1",
        (channel, sku, state.acked_seq, state.acknowledged),
    ) as cursor:
        return await cursor.fetchone() is not None


async def sent_quantity(conn: aiosqlite.Connection, channel: str, sku: Sku, seq: int) -> int | None:
    """The quantity last logged for ``seq`` (None: nothing was logged for it)."""
    async with conn.execute(
        "SELECT quantity FROM push_log WHERE channel = ? AND sku = ? AND seq = ?"
        " ORDER BY id DESC LIMIT 1",
        (channel, sku, seq),
    ) as cursor:
        row = await cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


class PushLogMixin:
    """Push-log reads of `syncd.ledger.store.Ledger`."""

    _db: Database

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
                status=LogStatus(r[5]),
                request_id=r[6],
                reply=r[7],
                at=decode_time(r[8]),
                explanation=decode_json(r[9]),
            )
            for r in rows
        ]
