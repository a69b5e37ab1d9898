"""The outbox: the latest desired absolute value per (channel, variant), and its writes.

A row holds what syncd wants the channel to show (``desired``), what the
channel last confirmed (``acknowledged``) and a ``seq`` bumped each time the
desired value changes. A value is pending while desired != acknowledged and
the row is not parked. Because values are absolute, sending one twice is
harmless, so at-least-once delivery is enough (ARCHITECTURE.md "Outbox").

This module is the SQL of the row's life only: each write reads the rows it
concerns, asks :func:`syncd.ledger.outbox_life.transition` what every row
becomes (the rules, superseded replies and lost sends included, are
documented and property-tested there) and writes the answer with the push-log
entries (:mod:`syncd.ledger.outbox_log`), in one transaction. Reads of the
queue live in :mod:`syncd.ledger.outbox_queue`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import NamedTuple

import aiosqlite
import structlog

from syncd.clock import Clock
from syncd.ledger.codec import ExplanationEncoder, encode_time
from syncd.ledger.connection import Database
from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.outbox_life import (
    STATUS_OF,
    Acknowledged,
    Computed,
    Event,
    Failed,
    ImpossibleMoveError,
    LogStatus,
    OutboxStatus,
    Refused,
    RowState,
    Sent,
    Unparked,
    logged_as,
    returns_to_acknowledged,
    transition,
)
from syncd.ledger.outbox_log import (
    LogLine,
    PushLogEntry,
    PushLogMixin,
    Reply,
    encode_reply,
    log_pushes,
    sent_quantity,
    unconfirmed_send,
)
from syncd.ledger.outbox_queue import OutboxQueueMixin, PendingFigures
from syncd.model import Desired, PushedValue, Sku

__all__ = ["OutboxMixin", "PendingFigures", "PushItem", "PushLogEntry", "Reply"]

_log = structlog.get_logger(__name__)

PushItem = tuple[Sku, int, int]
"""(sku, seq, quantity) of one value handed to a channel: a `PushedValue` or a plain triple."""


class CurrentRow(NamedTuple):
    """What the writes need of a row: its life, and what a new value is compared with."""

    state: RowState
    explanation: str | None
    own_reserved: int


async def current_rows(
    conn: aiosqlite.Connection,
    keys: Sequence[tuple[str, Sku]],
) -> dict[tuple[str, Sku], CurrentRow]:
    """Current rows for ``keys``: one indexed query per channel."""
    by_channel: dict[str, list[Sku]] = {}
    for channel, sku in keys:
        by_channel.setdefault(channel, []).append(sku)
    found: dict[tuple[str, Sku], CurrentRow] = {}
    for channel, skus in by_channel.items():
        async with conn.execute(
            "SELECT sku, desired, acknowledged, acked_seq, seq, status, explanation, own_reserved"
            " FROM outbox WHERE channel = ? AND sku IN (SELECT value FROM json_each(?))",
            (channel, json.dumps(skus)),
        ) as cursor:
            # INTEGER columns come back as int: no conversion (one row per value).
            for r in await cursor.fetchall():
                state = RowState(r[1], r[4], r[2], r[3], STATUS_OF[r[5]])
                found[(channel, r[0])] = CurrentRow(state, r[6], r[7])
    return found


def _move(channel: str, sku: Sku, state: RowState | None, event: Event) -> RowState:
    """:func:`transition`, its refusal worded for the (channel, SKU) at hand."""
    try:
        return transition(state, event)
    except ImpossibleMoveError as exc:
        raise InvalidObservationError(f"{channel}/{sku}: {exc}") from exc


class _Step(NamedTuple):
    value: PushedValue
    before: RowState
    after: RowState
    explanation: str | None


async def _replay(
    conn: aiosqlite.Connection,
    channel: str,
    items: Sequence[PushItem],
    event: Callable[[PushedValue], Event],
) -> list[_Step]:
    """Apply ``event`` to each item's row in turn; refuses the whole call on an impossible one."""
    values = [PushedValue(*item) for item in items]
    current = await current_rows(conn, [(channel, v.sku) for v in values])
    states = {sku: row.state for (_, sku), row in current.items()}
    steps = []
    for value in values:
        before = states.get(value.sku)
        after = _move(channel, value.sku, before, event(value))
        assert before is not None  # only a computed value creates a row
        states[value.sku] = after
        row = current[(channel, value.sku)]
        steps.append(_Step(value, before, after, row.explanation))
    return steps


class OutboxMixin(OutboxQueueMixin, PushLogMixin):
    """Outbox and push-log operations of `syncd.ledger.store.Ledger`."""

    _db: Database
    clock: Clock

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
            current = await current_rows(conn, [(r.channel, r.sku) for r in rows])
            changed: list[tuple[str, Sku, int, int, str, int | None, str, str, int]] = []
            same: list[tuple[str, int, str, Sku]] = []
            for row in rows:
                explanation = encoder.encode(row.explanation)
                old = current.get((row.channel, row.sku))
                if old is not None and old.state.desired == row.quantity:
                    if old.explanation != explanation or old.own_reserved != row.own_reserved:
                        same.append((explanation, row.own_reserved, row.channel, row.sku))
                    continue
                before = None if old is None else old.state
                # The push log is asked only when the value returns to the acknowledged one.
                doubt = (
                    before is not None
                    and returns_to_acknowledged(before, row.quantity)
                    and await unconfirmed_send(conn, row.channel, row.sku, before)
                )
                after = _move(row.channel, row.sku, before, Computed(row.quantity, doubt))
                changed.append(
                    (
                        row.channel,
                        row.sku,
                        after.desired,
                        after.seq,
                        str(after.status),
                        after.acknowledged,
                        explanation,
                        stamp,
                        row.own_reserved,
                    )
                )
            await conn.executemany(
                """
                INSERT INTO outbox (channel, sku, desired, seq, status, acknowledged, explanation,
                                    updated_at, own_reserved)
                VALUES (?,?,?,?,?,?,?,?,?)
                ON CONFLICT (channel, sku) DO UPDATE SET desired = excluded.desired,
                    seq = excluded.seq, status = excluded.status,
                    acknowledged = excluded.acknowledged,
                    explanation = excluded.explanation, updated_at = excluded.updated_at,
                    own_reserved = excluded.own_reserved
                """,
                changed,
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

    async def mark_sent(
        self, channel: str, items: Sequence[PushItem], request_id: str | None, at: datetime
    ) -> None:
        """Log values handed to the channel; rows still at that seq become ``sent``."""
        stamp = encode_time(at)
        async with self._db.write() as conn:
            steps = await _replay(conn, channel, items, Sent)
            await log_pushes(
                conn,
                channel,
                stamp,
                [
                    LogLine(
                        s.value,
                        LogStatus.SENT,
                        request_id,
                        # The explanation of the value sent; an older seq's is gone.
                        explanation=s.explanation if s.value.seq == s.before.seq else None,
                    )
                    for s in steps
                ],
            )
            await conn.executemany(
                "UPDATE outbox SET status = ?, sent_at = ? WHERE channel = ? AND sku = ?",
                [
                    (str(s.after.status), stamp, channel, s.value.sku)
                    for s in steps
                    if s.after.status is OutboxStatus.SENT and s.value.seq == s.after.seq
                ],
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
        text = encode_reply(reply)
        async with self._db.write() as conn:
            steps = await _replay(conn, channel, items, Acknowledged)
            await log_pushes(
                conn,
                channel,
                stamp,
                [
                    LogLine(s.value, _logged(s.before, Acknowledged(s.value)), request_id, text)
                    for s in steps
                ],
            )
            await conn.executemany(
                "UPDATE outbox SET acknowledged = ?, acked_seq = ?, acked_at = ?, status = ?"
                " WHERE channel = ? AND sku = ?",
                [
                    (
                        s.after.acknowledged,
                        s.after.acked_seq,
                        stamp,
                        str(s.after.status),
                        channel,
                        s.value.sku,
                    )
                    for s in steps
                    if s.after.acked_seq == s.value.seq  # the reply was taken, not too old
                ],
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
        text = encode_reply(error)
        async with self._db.write() as conn:
            steps = await _replay(conn, channel, items, Failed)
            await log_pushes(
                conn,
                channel,
                stamp,
                [LogLine(s.value, LogStatus.FAILED, request_id, text) for s in steps],
            )
            await conn.executemany(
                "UPDATE outbox SET status = ?, reason = ? WHERE channel = ? AND sku = ?",
                [
                    (str(s.after.status), text, channel, s.value.sku)
                    for s in steps
                    if s.after.status is OutboxStatus.FAILED and s.value.seq == s.after.seq
                ],
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
            row = (await current_rows(conn, [(channel, sku)])).get((channel, sku))
            before = None if row is None else row.state
            after = _move(channel, sku, before, Refused(seq))
            assert before is not None  # only a computed value creates a row
            status = _logged(before, Refused(seq))
            parked = status is LogStatus.PARKED
            # The refused value is the one that was sent under that seq.
            quantity = before.desired if parked else await sent_quantity(conn, channel, sku, seq)
            await log_pushes(
                conn, channel, stamp, [LogLine((sku, seq, quantity), status, None, reason)]
            )
            if parked:
                await conn.execute(
                    "UPDATE outbox SET status = ?, reason = ? WHERE channel = ? AND sku = ?",
                    (str(after.status), reason, channel, sku),
                )
        _log.warning("outbox.parked", channel=channel, sku=sku, seq=seq, parked=parked)
        return parked

    async def unpark(self, channel: str, sku: Sku) -> bool:
        """Make a parked item pushable again; False if it was not parked."""
        return bool(await self.unpark_items(channel, [sku], self.clock.now(), "unparked"))

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
                "SELECT sku, desired, seq, acknowledged, acked_seq FROM outbox INDEXED BY"
                " outbox_parked WHERE channel = ? AND status = 'parked' ORDER BY sku",
                (channel,),
            ) as cursor:
                parked = [
                    (r[0], RowState(int(r[1]), int(r[2]), r[3], int(r[4]), OutboxStatus.PARKED))
                    for r in await cursor.fetchall()
                ]
            if skus is not None:
                wanted = set(skus)
                parked = [row for row in parked if row[0] in wanted]
            if not parked:
                return []
            moved = [(sku, state, _move(channel, sku, state, Unparked())) for sku, state in parked]
            await log_pushes(
                conn,
                channel,
                stamp,
                [
                    LogLine(PushedValue(sku, s.seq, s.desired), LogStatus.UNPARKED, None, note)
                    for sku, s, _ in moved
                ],
            )
            await conn.executemany(
                "UPDATE outbox SET reason = NULL, status = ?"
                " WHERE channel = ? AND sku = ? AND status = 'parked'",
                [(str(after.status), channel, sku) for sku, _, after in moved],
            )
        unparked = [sku for sku, _ in parked]
        _log.warning("outbox.unparked", channel=channel, skus=unparked[:20], count=len(unparked))
        return unparked


def _logged(before: RowState, event: Event) -> LogStatus:
    status = logged_as(before, event)
    assert status is not None  # replies and refusals are always logged
    return status
