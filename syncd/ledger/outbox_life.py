"""The life of an outbox row: its states, the events that move it, and the rules.

Pure: no I/O, no clock. :mod:`syncd.ledger.outbox` reads a row, asks
:func:`transition` what the row becomes when something happens to it, and
writes the answer; the rules live here once, property-tested
(tests/unit/ledger/test_outbox_life.py), instead of in SQL ``CASE``\\ s and
Python ``if``\\ s spread over the write paths.

A row holds the latest desired absolute value of one (channel, SKU), the
``seq`` that names it (bumped on every change), and what the channel last
confirmed (``acknowledged``, from the reply to ``acked_seq``). A value is
*pending* -- there is something to push -- while it differs from the
acknowledged one and the row is not parked (ARCHITECTURE.md "Outbox").

``seq`` keeps replies honest (brief seed-astral section 5.3: "Sequence pushes
per variant with a monotonically increasing local version, and drop superseded
ones"): a pushed value is identified by :class:`syncd.model.PushedValue`
(SKU, seq, quantity) from the planner to the push log, and a reply about an
older seq is logged ``superseded``: it never makes the newer value look
confirmed unless it carried that very quantity.

The rules, one event at a time (the states are :class:`OutboxStatus`):

- :class:`Computed` -- a new desired value: seq + 1; the row is acknowledged
  when the channel is known to show it already, pending otherwise, parked if
  it was parked. A value returning to the acknowledged one after a *different*
  value was handed to the channel and never confirmed (reply lost, crash)
  forgets the acknowledgement: that send may have landed, so what the
  channel shows is unknown and the value is pushed again (found by tests/sim).
- :class:`Sent` -- handed to the channel: the current value becomes ``sent``.
- :class:`Acknowledged` -- the channel confirmed a value: ``acknowledged``
  takes it when it is the newest reply so far, even for an older seq, because
  it says what the channel now shows (5 -> 7 sent -> 5, then 7 confirmed: the
  channel shows 7 and 5 must still go out).
- :class:`Refused` -- the channel refused the value for good: the current
  value is parked until an operator unparks it; a refusal of an older value
  is only logged (the newer value may well be accepted).
- :class:`Failed` -- the push did not land; the value stays pending.
- :class:`Unparked` -- an operator made a parked row pushable again.
- :class:`ReadBack` -- a read-back saw what the channel holds: a
  compare-and-set on the row as it was read, never over a value in flight.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum
from typing import NamedTuple

from syncd.model import PushedValue


class OutboxStatus(StrEnum):
    """What ``outbox.status`` says about the row's current value."""

    PENDING = "pending"
    """Not yet handed to the channel (or handed back: read-back, unpark)."""
    SENT = "sent"
    """Handed to the channel; no reply recorded yet."""
    ACKNOWLEDGED = "acknowledged"
    """The channel confirmed it shows ``desired``."""
    PARKED = "parked"
    """Refused by the channel for good; nothing is pushed until unparked."""
    FAILED = "failed"
    """The last push of this value did not land; retried next round."""


# Module constants: looking a member up on the enum class costs as much as the
# rest of a transition, and the ledger applies one per value (100 000 at a start).
_PENDING = OutboxStatus.PENDING
_SENT = OutboxStatus.SENT
_ACKNOWLEDGED = OutboxStatus.ACKNOWLEDGED
_PARKED = OutboxStatus.PARKED
_FAILED = OutboxStatus.FAILED

STATUS_OF: dict[str, OutboxStatus] = {status.value: status for status in OutboxStatus}
"""``outbox.status`` text to :class:`OutboxStatus` (a dict: faster than calling the enum)."""


class LogStatus(StrEnum):
    """What a push-log entry records (``push_log.status``)."""

    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    SUPERSEDED = "superseded"
    """A reply or refusal about a value a newer one replaced."""
    PARKED = "parked"
    FAILED = "failed"
    UNPARKED = "unparked"


class PushClass(IntEnum):
    """The planner's order classes of a pending row, lowest first.

    The same values as :class:`syncd.channels.updates.Move`; the SQL twin is the
    generated ``outbox.push_class`` column (schema version 5).
    """

    TO_ZERO = 0
    DECREASE = 1
    UNKNOWN = 2
    INCREASE = 3


def push_class(desired: int, acknowledged: int | None) -> PushClass:
    """Decreases first (a late decrease can oversell), then unknown, then increases."""
    if acknowledged is None:
        return PushClass.UNKNOWN
    if desired < acknowledged:
        return PushClass.TO_ZERO if desired == 0 else PushClass.DECREASE
    return PushClass.INCREASE


class ImpossibleMoveError(ValueError):
    """An event that cannot happen to the row as it is (a bug, or a reply that lies)."""


class RowState(NamedTuple):
    """The part of an outbox row its life is about.

    Named tuples, here and for the events: the ledger applies one transition
    per value (100 000 at a start) and a frozen dataclass costs several times
    as much to build.
    """

    desired: int
    seq: int
    acknowledged: int | None = None
    acked_seq: int = 0
    status: OutboxStatus = OutboxStatus.PENDING

    @property
    def pending(self) -> bool:
        """True when there is something to push."""
        return self.status is not _PARKED and self.acknowledged != self.desired


class Computed(NamedTuple):
    """Allocation computed ``quantity`` for the row."""

    quantity: int
    unconfirmed_send: bool = False
    """A value other than the acknowledged one was sent after the last
    acknowledgement and never confirmed (read from the push log; only asked
    when :func:`returns_to_acknowledged`)."""


class Sent(NamedTuple):
    value: PushedValue


class Acknowledged(NamedTuple):
    value: PushedValue


class Failed(NamedTuple):
    value: PushedValue


class Refused(NamedTuple):
    """The channel refused the value sent under ``seq`` for good (it is parked)."""

    seq: int


class Unparked(NamedTuple):
    """An operator made the parked row pushable again."""


class ReadBack(NamedTuple):
    """A read-back found the channel holding ``shown`` (None: it does not list the SKU)."""

    seq: int
    """The row's seq when it was compared."""
    compared: int | None
    """The acknowledged value the read was compared with."""
    shown: int | None
    include_sent: bool = False
    """Also correct a row marked ``sent`` (right after a start nothing is in flight)."""


Event = Computed | Sent | Acknowledged | Failed | Refused | Unparked | ReadBack


def returns_to_acknowledged(state: RowState | None, quantity: int) -> bool:
    """True when a new value equals the acknowledged one (then ask the push log)."""
    return state is not None and quantity != state.desired and state.acknowledged == quantity


def sent_since_acknowledged(state: RowState, sent: Iterable[PushedValue]) -> bool:
    """Whether a value other than the acknowledged one was sent since it was acknowledged.

    ``sent`` are the push log's ``sent`` entries of the row. Such a send may
    have reached the channel (reply lost, crash before it was recorded). The
    acknowledged seq itself counts: after a read-back corrected the cache, the
    acknowledged value is not the one that seq carries, and a resend of that
    seq may be what the channel shows now (found by the property test).
    :func:`syncd.ledger.outbox_log.unconfirmed_send` asks the same in SQL.
    """
    return any(v.seq >= state.acked_seq and v.quantity != state.acknowledged for v in sent)


def _settled(status: OutboxStatus, desired: int, acknowledged: int | None) -> OutboxStatus:
    """The status of a row nothing is in flight for."""
    if status is _PARKED:
        return _PARKED
    return _ACKNOWLEDGED if acknowledged == desired else _PENDING


def check_reply(state: RowState, value: PushedValue) -> None:
    """Refuse a reply about a value this row never carried."""
    if value.seq < 1 or value.seq > state.seq:
        raise ImpossibleMoveError(f"seq {value.seq} was never issued")
    if value.seq == state.seq and value.quantity != state.desired:
        raise ImpossibleMoveError(f"seq {value.seq} carries {state.desired}, not {value.quantity}")


def _with_status(state: RowState, status: OutboxStatus) -> RowState:
    # Built directly: dataclasses.replace costs several times more, once per value.
    if status is state.status:
        return state
    return RowState(state.desired, state.seq, state.acknowledged, state.acked_seq, status)


def transition(state: RowState | None, event: Event) -> RowState:
    """The row after ``event``; raises :class:`ImpossibleMoveError` for a move that cannot be.

    ``state`` is None for a (channel, SKU) without a row: only a computed value
    creates one.
    """
    if isinstance(event, Computed):
        return _computed(state, event)
    if state is None:
        raise ImpossibleMoveError("no outbox row")
    parked = state.status is _PARKED
    if isinstance(event, Acknowledged):
        check_reply(state, event.value)
        return _acknowledged(state, event.value)
    if isinstance(event, Sent | Failed):
        check_reply(state, event.value)
        if event.value.seq != state.seq or parked:
            return state  # an older value's send or failure: the row's value is another
        return _with_status(state, _SENT if isinstance(event, Sent) else _FAILED)
    if isinstance(event, Refused):
        if event.seq < 1 or event.seq > state.seq:
            raise ImpossibleMoveError(f"seq {event.seq} was never issued")
        return _with_status(state, _PARKED) if event.seq == state.seq else state
    if isinstance(event, Unparked):
        if not parked:
            raise ImpossibleMoveError("not parked")
        return _with_status(state, _settled(_PENDING, state.desired, state.acknowledged))
    return _read_back(state, event)


def _computed(state: RowState | None, event: Computed) -> RowState:
    quantity = event.quantity
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise ImpossibleMoveError(f"desired {quantity!r} is not a whole number")
    if quantity < 0:
        raise ImpossibleMoveError(f"desired {quantity} < 0 is never pushed")
    if state is None:
        return RowState(quantity, 1, None, 0, _PENDING)
    if quantity == state.desired:
        return state  # the same value keeps its seq: nothing new to push
    acknowledged = state.acknowledged
    if event.unconfirmed_send and acknowledged == quantity:
        # Back to the acknowledged value, but another value was handed to the
        # channel since and never confirmed: it may be what the channel shows.
        # A parked row forgets too, or unparking would call it in sync.
        acknowledged = None
    return RowState(
        quantity,
        state.seq + 1,
        acknowledged,
        state.acked_seq,
        _settled(state.status, quantity, acknowledged),
    )


def _acknowledged(state: RowState, value: PushedValue) -> RowState:
    if value.seq < state.acked_seq:
        return state  # an older reply arriving late says nothing new
    status = _settled(state.status, state.desired, value.quantity)
    superseded = value.seq < state.seq
    if superseded and status is _PENDING and (state.status is _SENT or state.status is _FAILED):
        status = state.status  # the newer value's own send is still in flight
    return RowState(state.desired, state.seq, value.quantity, value.seq, status)


def _read_back(state: RowState, event: ReadBack) -> RowState:
    applies = (
        state.seq == event.seq
        and state.acknowledged == event.compared
        and state.status is not _PARKED
        and (event.include_sent or state.status is not _SENT)
    )
    if not applies:
        return state  # the row moved since it was read: the push path wins
    return RowState(
        state.desired,
        state.seq,
        event.shown,
        state.acked_seq,
        _settled(_PENDING, state.desired, event.shown),
    )


def logged_as(state: RowState, event: Event) -> LogStatus | None:
    """The push-log status an event is recorded with (None: not logged).

    ``state`` is the row before the event. A reply or refusal about a seq
    older than the row's is ``superseded``; a send and a failure keep their
    own name whatever seq they carry (the log shows what was attempted).
    """
    if isinstance(event, Sent):
        return LogStatus.SENT
    if isinstance(event, Failed):
        return LogStatus.FAILED
    if isinstance(event, Acknowledged):
        return LogStatus.SUPERSEDED if event.value.seq < state.seq else LogStatus.ACKNOWLEDGED
    if isinstance(event, Refused):
        return LogStatus.SUPERSEDED if event.seq < state.seq else LogStatus.PARKED
    if isinstance(event, Unparked):
        return LogStatus.UNPARKED
    return None
