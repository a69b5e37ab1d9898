"""Held cycles: pushes the safety interlock refused until someone confirms.

A cycle that would zero or change more than a configured share of a
channel's catalog is held, not pushed (ARCHITECTURE.md "Safety
interlocks"). The interlock itself lives with the push planner; the ledger
only keeps the record, so a restart does not forget a held cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.ledger.codec import (
    decode_json,
    decode_optional_time,
    decode_time,
    encode_json,
    encode_time,
)
from syncd.ledger.connection import Database


@dataclass(frozen=True, slots=True)
class HeldCycle:
    id: int
    channel: str
    created_at: datetime
    reason: str
    payload: dict[str, Any]
    confirmed_at: datetime | None


class InterlockMixin:
    """Held-cycle records of `syncd.ledger.store.Ledger`."""

    _db: Database

    async def hold_cycle(
        self, channel: str, reason: str, payload: Mapping[str, Any], at: datetime
    ) -> int:
        """Record a held cycle; returns its id."""
        async with (
            self._db.write() as conn,
            conn.execute(
                "INSERT INTO held_cycles (channel, created_at, reason, payload)"
                " VALUES (?,?,?,?) RETURNING id",
                (channel, encode_time(at), reason, encode_json(payload)),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def confirm_held_cycle(
        self, cycle_id: int, at: datetime, *, by: str | None = None
    ) -> bool:
        """Mark a held cycle confirmed by an operator; False if unknown or done.

        ``by`` (who confirmed) goes into the hold's payload as ``confirmed_by``.
        """
        async with self._db.write() as conn:
            cursor = await conn.execute(
                "UPDATE held_cycles SET confirmed_at = ?,"
                " payload = CASE WHEN ? IS NULL THEN payload"
                " ELSE json_set(payload, '$.confirmed_by', ?) END"
                " WHERE id = ? AND confirmed_at IS NULL",
                (encode_time(at), by, by, cycle_id),
            )
            return cursor.rowcount > 0

    async def held_cycles(
        self, channel: str | None = None, *, include_confirmed: bool = False
    ) -> list[HeldCycle]:
        async with (
            self._db.read() as conn,
            conn.execute(
                "SELECT id, channel, created_at, reason, payload, confirmed_at FROM held_cycles"
                " WHERE (? IS NULL OR channel = ?) AND (? OR confirmed_at IS NULL) ORDER BY id",
                (channel, channel, int(include_confirmed)),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            HeldCycle(
                id=int(r[0]),
                channel=r[1],
                created_at=decode_time(r[2]),
                reason=r[3],
                payload=decode_json(r[4]) or {},
                confirmed_at=decode_optional_time(r[5]),
            )
            for r in rows
        ]
