"""The outbox row's life (syncd.ledger.outbox_life), property-tested.

The state machine at the end runs the row against a model of the channel:
one push in flight at a time, applied in order, whose request or reply can be
lost, refused, or cut short by a crash, while new values are computed and
read-backs correct the cache. Whatever happens, syncd never believes a value
is in place while the channel shows another one.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from syncd.ledger.outbox_life import (
    Acknowledged,
    Computed,
    Event,
    Failed,
    ImpossibleMoveError,
    LogStatus,
    OutboxStatus,
    ReadBack,
    Refused,
    RowState,
    Sent,
    Unparked,
    logged_as,
    returns_to_acknowledged,
    sent_since_acknowledged,
    transition,
)
from syncd.model import PushedValue

QTY = st.integers(0, 5)


@st.composite
def states(draw: st.DrawFn, status: OutboxStatus | None = None) -> RowState:
    """Rows as the ledger can hold them: ``acknowledged`` status only with that value."""
    seq = draw(st.integers(1, 5))
    desired = draw(QTY)
    status = draw(st.sampled_from(OutboxStatus)) if status is None else status
    return RowState(
        desired=desired,
        seq=seq,
        acknowledged=desired if status is OutboxStatus.ACKNOWLEDGED else draw(st.none() | QTY),
        acked_seq=draw(st.integers(0, seq)),
        status=status,
    )


def values(state: RowState) -> st.SearchStrategy[PushedValue]:
    """Values this row really carried: the current one, or any older seq."""
    current = st.just(PushedValue("A", state.seq, state.desired))
    if state.seq == 1:
        return current
    return current | st.builds(PushedValue, st.just("A"), st.integers(1, state.seq - 1), QTY)


@st.composite
def possible_events(draw: st.DrawFn, state: RowState) -> Event:
    """Any event that can happen to ``state`` (Unparked only to a parked row)."""
    value = draw(values(state))
    kinds: list[Event] = [
        Computed(draw(QTY), draw(st.booleans())),
        Sent(value),
        Acknowledged(value),
        Failed(value),
        Refused(value.seq),
        ReadBack(
            draw(st.sampled_from([state.seq, max(1, state.seq - 1)])),
            draw(st.sampled_from([state.acknowledged, None, 0])),
            draw(st.none() | QTY),
            draw(st.booleans()),
        ),
    ]
    if state.status is OutboxStatus.PARKED:
        kinds.append(Unparked())
    return draw(st.sampled_from(kinds))


@given(st.data())
def test_a_reply_about_a_value_the_row_never_carried_is_refused(data: st.DataObject) -> None:
    state = data.draw(states())
    value = PushedValue("A", data.draw(st.integers(-1, 7)), data.draw(QTY))
    replies: list[Event] = [Sent(value), Acknowledged(value), Failed(value)]
    event = data.draw(st.sampled_from(replies))
    never = value.seq < 1 or value.seq > state.seq
    lies = value.seq == state.seq and value.quantity != state.desired
    if never or lies:
        with pytest.raises(ImpossibleMoveError, match="never issued" if never else "carries"):
            transition(state, event)
    else:
        transition(state, event)


@given(st.data())
def test_nothing_but_a_computed_value_creates_a_row(data: st.DataObject) -> None:
    state = data.draw(states())
    event = data.draw(possible_events(state))
    if isinstance(event, Computed):
        assert transition(None, event) == RowState(desired=event.quantity, seq=1)
    else:
        with pytest.raises(ImpossibleMoveError, match="no outbox row"):
            transition(None, event)


@given(QTY.map(lambda q: -1 - q))
def test_a_negative_value_is_never_taken(quantity: int) -> None:
    with pytest.raises(ImpossibleMoveError, match="never pushed"):
        transition(RowState(desired=3, seq=1), Computed(quantity))


@given(st.data())
def test_a_reply_for_a_superseded_seq_never_acknowledges_the_new_value(
    data: st.DataObject,
) -> None:
    state = data.draw(states().filter(lambda s: s.seq > 1))
    old = data.draw(
        st.builds(PushedValue, st.just("A"), st.integers(1, state.seq - 1), QTY).filter(
            lambda v: v.quantity != state.desired
        )
    )
    after = transition(state, Acknowledged(old))
    assert logged_as(state, Acknowledged(old)) is LogStatus.SUPERSEDED
    if old.seq < state.acked_seq:
        assert after == state  # older than the last reply taken: says nothing new
    else:
        assert after.acknowledged == old.quantity  # what the channel shows now
        assert after.status is not OutboxStatus.ACKNOWLEDGED
        assert after.pending or after.status is OutboxStatus.PARKED
    assert (after.desired, after.seq) == (state.desired, state.seq)


@given(st.data())
def test_parked_stays_parked_until_unparked(data: st.DataObject) -> None:
    state = data.draw(states(OutboxStatus.PARKED))
    event = data.draw(possible_events(state).filter(lambda e: not isinstance(e, Unparked)))
    after = transition(state, event)
    assert after.status is OutboxStatus.PARKED
    assert not after.pending
    unparked = transition(state, Unparked())
    assert unparked.status is (
        OutboxStatus.ACKNOWLEDGED if state.acknowledged == state.desired else OutboxStatus.PENDING
    )
    assert logged_as(state, Unparked()) is LogStatus.UNPARKED


@given(states().filter(lambda s: s.status is not OutboxStatus.PARKED))
def test_only_a_parked_row_can_be_unparked(state: RowState) -> None:
    with pytest.raises(ImpossibleMoveError, match="not parked"):
        transition(state, Unparked())


@given(st.data())
def test_the_same_value_computed_again_changes_nothing(data: st.DataObject) -> None:
    state = data.draw(states())
    assert transition(state, Computed(state.desired, data.draw(st.booleans()))) == state


@given(st.data())
def test_desired_equal_to_acknowledged_means_nothing_to_push(data: st.DataObject) -> None:
    state = data.draw(states())
    for _ in range(data.draw(st.integers(1, 6))):
        state = transition(state, data.draw(possible_events(state)))
        assert state.pending is (
            state.status is not OutboxStatus.PARKED and state.acknowledged != state.desired
        )
        assert state.acked_seq <= state.seq


def test_a_lost_send_is_remembered_when_the_value_returns() -> None:
    """5 acknowledged, 4 sent and maybe applied, back to 5: the channel may show 4."""
    acknowledged = RowState(
        desired=5, seq=1, acknowledged=5, acked_seq=1, status=OutboxStatus.ACKNOWLEDGED
    )
    four = transition(acknowledged, Computed(4))
    assert returns_to_acknowledged(four, 5)
    assert not returns_to_acknowledged(four, 4)  # the same value: nothing to ask
    assert transition(four, Computed(5, unconfirmed_send=True)) == RowState(
        desired=5, seq=3, acknowledged=None, acked_seq=1, status=OutboxStatus.PENDING
    )
    assert transition(four, Computed(5)).status is OutboxStatus.ACKNOWLEDGED


def test_a_parked_row_forgets_too() -> None:
    """Refused, then back to the acknowledged value after a lost send: unparking must push."""
    parked = RowState(desired=4, seq=2, acknowledged=5, acked_seq=1, status=OutboxStatus.PARKED)
    back = transition(parked, Computed(5, unconfirmed_send=True))
    assert (back.acknowledged, back.status) == (None, OutboxStatus.PARKED)
    assert transition(back, Unparked()).status is OutboxStatus.PENDING


def test_a_resend_of_the_acknowledged_seq_after_a_read_back_counts_as_unconfirmed() -> None:
    corrected = RowState(desired=5, seq=1, acknowledged=9, acked_seq=1)
    assert sent_since_acknowledged(corrected, [PushedValue("A", 1, 5)])
    confirmed = RowState(desired=5, seq=1, acknowledged=5, acked_seq=1)
    assert not sent_since_acknowledged(confirmed, [PushedValue("A", 1, 5)])


class RowAgainstChannel(RuleBasedStateMachine):
    """One row, one channel that applies what it is sent in order."""

    def __init__(self) -> None:
        super().__init__()
        self.state: RowState | None = None
        self.shown: int | None = None
        """What the channel shows (None: it does not list the SKU)."""
        self.in_flight: PushedValue | None = None
        self.sent: list[PushedValue] = []
        """The push log's ``sent`` entries."""
        self.replied: set[PushedValue] = set()
        """Values the channel said it applied."""
        self.read: set[int | None] = set()
        """Values a read-back saw on the channel."""
        self.issued: dict[int, int] = {}
        self.drifted = False
        """The channel was edited behind syncd's back since syncd last wrote or read it."""

    def _apply(self, event: Event) -> None:
        before = self.state
        after = transition(before, event)
        if before is not None:
            assert after.seq >= before.seq
            assert after.acked_seq >= before.acked_seq
        self.state = after

    # --- syncd computes -----------------------------------------------------------------

    @rule(quantity=QTY)
    def compute(self, quantity: int) -> None:
        state = self.state
        # What ledger/outbox.py asks the push log (outbox_log.unconfirmed_send).
        doubt = (
            state is not None
            and returns_to_acknowledged(state, quantity)
            and sent_since_acknowledged(state, self.sent)
        )
        self._apply(Computed(quantity, doubt))
        assert self.state is not None
        self.issued[self.state.seq] = self.state.desired

    # --- the pusher ---------------------------------------------------------------------

    @precondition(
        lambda self: (
            self.state is not None
            and self.in_flight is None
            and self.state.status is not OutboxStatus.PARKED
        )
    )
    @rule()
    def send(self) -> None:
        """The pending value (or a resend of an acknowledged one) goes out."""
        assert self.state is not None
        value = PushedValue("A", self.state.seq, self.state.desired)
        self._apply(Sent(value))
        self.sent.append(value)
        self.in_flight = value

    def _show(self, quantity: int) -> None:
        self.shown = quantity
        self.drifted = False

    def _land(self) -> PushedValue:
        value = self.in_flight
        assert value is not None
        self.in_flight = None
        return value

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def applied_and_confirmed(self) -> None:
        value = self._land()
        self._show(value.quantity)
        self.replied.add(value)
        self._apply(Acknowledged(value))

    @precondition(lambda self: self.in_flight is not None)
    @rule(applied=st.booleans())
    def failed(self, applied: bool) -> None:
        """A timeout or a 5xx: the request may or may not have been applied."""
        value = self._land()
        if applied:
            self._show(value.quantity)
        self._apply(Failed(value))

    @precondition(lambda self: self.in_flight is not None)
    @rule()
    def refused(self) -> None:
        value = self._land()
        self._apply(Refused(value.seq))

    @precondition(lambda self: self.in_flight is not None)
    @rule(applied=st.booleans())
    def crash(self, applied: bool) -> None:
        """syncd died with the request out: nothing about it is recorded."""
        value = self._land()
        if applied:
            self._show(value.quantity)

    # --- operators and read-backs -------------------------------------------------------

    @precondition(lambda self: self.state is not None and self.state.status is OutboxStatus.PARKED)
    @rule()
    def unpark(self) -> None:
        self._apply(Unparked())

    @precondition(lambda self: self.state is not None and self.in_flight is None)
    @rule(include_sent=st.booleans())
    def read_back(self, include_sent: bool) -> None:
        """A read-back compares the row as read with what the channel holds."""
        assert self.state is not None
        self.read.add(self.shown)
        self._apply(ReadBack(self.state.seq, self.state.acknowledged, self.shown, include_sent))
        if self.state.acknowledged == self.shown:
            self.drifted = False  # syncd knows what the channel shows

    @precondition(lambda self: self.in_flight is None)
    @rule(quantity=st.none() | QTY)
    def someone_edits_the_channel(self, quantity: int | None) -> None:
        """Drift: the channel changed outside syncd (a read-back must find it)."""
        self.shown = quantity
        self.drifted = True

    # --- what must always hold ----------------------------------------------------------

    @invariant()
    def acknowledged_only_what_the_channel_said(self) -> None:
        """A value is acknowledged only from a reply to that very value, or a read-back."""
        state = self.state
        if state is None or state.acknowledged is None:
            return
        reply = PushedValue("A", state.acked_seq, state.acknowledged)
        assert reply in self.replied or state.acknowledged in self.read
        if state.acked_seq:
            assert self.issued[state.acked_seq] == state.acknowledged or (
                state.acknowledged in self.read
            )

    @invariant()
    def acknowledged_status_means_acknowledged_value(self) -> None:
        state = self.state
        if state is not None and state.status is OutboxStatus.ACKNOWLEDGED:
            assert state.acknowledged == state.desired

    @invariant()
    def settled_means_the_channel_shows_it(self) -> None:
        """Nothing in flight and nothing to push: the channel shows the desired value.

        Outside drift: a channel edited behind syncd's back is found by a read-back.
        """
        state = self.state
        if (
            state is None
            or self.in_flight is not None
            or state.status is OutboxStatus.PARKED
            or state.pending
        ):
            return
        if not self.drifted:
            assert self.shown == state.desired


RowAgainstChannel.TestCase.settings = settings(max_examples=400, stateful_step_count=40)
test_row_against_the_channel = RowAgainstChannel.TestCase
