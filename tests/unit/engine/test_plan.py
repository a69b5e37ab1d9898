"""The push planner: interlocks, waits, parks, order (decreases first), batching, budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from syncd.channels.updates import Move, PlannedUpdate
from syncd.engine.plan import (
    Block,
    Defer,
    Hold,
    Park,
    PushFacts,
    Send,
    Wait,
    describe,
    order_key,
    plan_push,
)
from syncd.model import MAX_UNITS, OutboxRow
from syncd.safety import SafetyPolicy, is_change, is_zeroing

T0 = datetime(2026, 11, 23, tzinfo=UTC)
POLICY = SafetyPolicy()


@dataclass(frozen=True)
class Planned:
    """The sends of a plan, as the old tests read them."""

    batches: tuple[tuple[PlannedUpdate, ...], ...]
    deferred: int


def facts(rows: list[OutboxRow], per_request: int = 50, **changes: Any) -> PushFacts:
    """The facts the engine would gather for these pending rows (counts as the ledger's)."""
    pending = [r for r in rows if r.acknowledged is None or r.acknowledged != r.desired]
    base: dict[str, Any] = {
        "channel": "ankorstore",
        "candidates": tuple(sorted(pending, key=order_key)),
        "pending": len(pending),
        "changes": sum(1 for r in pending if is_change(r)),
        "zeroes": sum(1 for r in pending if is_zeroing(r)),
        "published": 10_000,
        "per_request": per_request,
        "budget": None,
    }
    return PushFacts(**(base | changes))


def plan(rows: list[OutboxRow], *, per_request: int, max_requests: int | None = None) -> Planned:
    actions = plan_push(facts(rows, per_request, budget=max_requests), POLICY)
    sends = tuple(a.updates for a in actions if isinstance(a, Send))
    deferred = sum(a.count for a in actions if isinstance(a, Defer))
    return Planned(sends, deferred)


def row(sku: str, desired: int, acknowledged: int | None, seq: int = 1) -> OutboxRow:
    return OutboxRow(
        channel="ankorstore",
        sku=sku,
        desired=desired,
        acknowledged=acknowledged,
        seq=seq,
        status="pending",
        updated_at=T0,
    )


def test_decreases_go_out_before_increases() -> None:
    rows = [row("up-1", 10, 5), row("down-1", 3, 9), row("zero", 0, 4), row("new", 7, None)]
    result = plan(rows, per_request=50)
    order = [u.sku for u in result.batches[0]]
    assert order == ["zero", "down-1", "new", "up-1"]
    assert [u.move for u in result.batches[0]] == [
        Move.TO_ZERO,
        Move.DECREASE,
        Move.UNKNOWN,
        Move.INCREASE,
    ]


def test_every_decrease_is_sent_in_an_earlier_or_same_batch_than_any_increase() -> None:
    rows = [row(f"up-{i:03d}", 10, 1) for i in range(70)] + [
        row(f"dn-{i:03d}", 1, 10) for i in range(70)
    ]
    result = plan(rows, per_request=50)
    last_decrease_batch = max(
        i for i, b in enumerate(result.batches) for u in b if u.move < Move.INCREASE
    )
    first_increase_batch = min(
        i for i, b in enumerate(result.batches) for u in b if u.move == Move.INCREASE
    )
    assert last_decrease_batch <= first_increase_batch


def test_unchanged_rows_are_not_planned() -> None:
    result = plan([row("same", 5, 5), row("diff", 6, 5)], per_request=50)
    assert [u.sku for b in result.batches for u in b] == ["diff"]


def test_a_value_outside_the_one_bound_is_parked_never_sent() -> None:
    rows = [row("bad", -1, 3), row("huge", MAX_UNITS + 1, 3), row("ok", 2, 3)]
    actions = plan_push(facts(rows), POLICY)
    parks = {a.sku: a.reason for a in actions if isinstance(a, Park)}
    assert set(parks) == {"bad", "huge"}
    assert "negative" in parks["bad"]
    sent = [u.sku for a in actions if isinstance(a, Send) for u in a.updates]
    assert sent == ["ok"]


def test_budget_defers_the_rest_and_keeps_priority() -> None:
    rows = [row(f"up-{i:03d}", 10, 1) for i in range(100)] + [
        row(f"dn-{i:03d}", 1, 10) for i in range(20)
    ]
    result = plan(rows, per_request=50, max_requests=1)
    assert len(result.batches) == 1
    assert result.deferred == 70
    assert all(u.move == Move.DECREASE for u in result.batches[0][:20])


@given(
    st.lists(
        st.tuples(st.integers(0, 500), st.one_of(st.none(), st.integers(0, 500))),
        max_size=400,
    ),
    st.integers(1, 60),
)
def test_batches_are_the_physical_minimum_and_never_exceed_the_maximum(
    values: list[tuple[int, int | None]], per_request: int
) -> None:
    rows = [row(f"S{i:04d}", d, a, seq=i + 1) for i, (d, a) in enumerate(values)]
    changed = sum(1 for d, a in values if a is None or d != a)
    result = plan(rows, per_request=per_request)
    assert len(result.batches) == math.ceil(changed / per_request)
    assert all(1 <= len(b) <= per_request for b in result.batches)
    sent = [u for b in result.batches for u in b]
    assert len({u.sku for u in sent}) == len(sent) == changed
    # Priorities never go backwards across the whole plan.
    assert [u.move for u in sent] == sorted(u.move for u in sent)
    # Each update carries the row's own seq and desired value.
    by_sku = {r.sku: r for r in rows}
    assert all(u.quantity == by_sku[u.sku].desired and u.seq == by_sku[u.sku].seq for u in sent)


def test_oldest_first_within_a_class() -> None:
    older = row("b-old", 1, 5)
    newer = OutboxRow("ankorstore", "a-new", 1, 5, 2, "pending", T0 + timedelta(seconds=1))
    result = plan([newer, older], per_request=50)
    assert [u.sku for u in result.batches[0]] == ["b-old", "a-new"]


def test_a_stale_source_blocks_everything_and_says_why() -> None:
    rows = [row("a", 0, 5), row("b", 9, 5)]
    actions = plan_push(facts(rows, stale=("activeants (unread 900 s)",)), POLICY)
    assert actions == (Block(reasons=("stale source(s): activeants (unread 900 s)",), pending=2),)


def test_a_mass_zero_is_held_once_and_nothing_is_sent() -> None:
    rows = [row(f"s{i:02d}", 0, 5) for i in range(30)]
    [hold] = plan_push(facts(rows, published=100), POLICY)
    assert isinstance(hold, Hold)
    assert hold.existing is None
    assert hold.zeroes == 30
    assert "30 of 100 variants to zero" in hold.reasons[0]
    assert len(hold.sample) == 20
    [again] = plan_push(facts(rows, published=100, open_hold=7), POLICY)
    assert isinstance(again, Hold)
    assert again.existing == 7


def test_confirmed_values_are_not_counted_again() -> None:
    rows = [row(f"s{i:02d}", 0, 5) for i in range(30)]
    # The ledger counts only values computed after the confirmed hold.
    actions = plan_push(facts(rows, published=100, zeroes=0, changes=0), POLICY)
    assert sum(len(a.updates) for a in actions if isinstance(a, Send)) == 30


def test_increases_wait_for_an_overdue_order_feed_but_decreases_go() -> None:
    rows = [row("down", 1, 5), row("up", 9, 5), row("new", 4, None)]
    actions = plan_push(facts(rows, orders_overdue=("fabric_orders (failing)",)), POLICY)
    sent = [u.sku for a in actions if isinstance(a, Send) for u in a.updates]
    [wait] = [a for a in actions if isinstance(a, Wait)]
    assert sent == ["down"]
    assert wait.why == "orders"
    assert set(wait.skus) == {"up", "new"}
    assert "fabric_orders (failing)" in wait.reason


def test_an_increase_from_zero_waits_for_a_second_read() -> None:
    rows = [row("back", 6, 0), row("other", 8, 5)]
    first = plan_push(facts(rows, single_read=frozenset({"back", "other"})), POLICY)
    [wait] = [a for a in first if isinstance(a, Wait)]
    assert wait.skus == ("back",)
    assert wait.why == "second_read"
    second = plan_push(facts(rows, single_read=frozenset()), POLICY)
    assert not [a for a in second if isinstance(a, Wait)]
    assert {u.sku for a in second if isinstance(a, Send) for u in a.updates} == {"back", "other"}


def test_a_resend_goes_out_like_a_first_publication() -> None:
    settled = row("shipped", 7, 7)
    actions = plan_push(facts([row("x", 1, 3)], resends=(settled,)), POLICY)
    [send] = [a for a in actions if isinstance(a, Send)]
    assert [(u.sku, u.previous, u.move) for u in send.updates] == [
        ("x", 3, Move.DECREASE),
        ("shipped", None, Move.UNKNOWN),
    ]


def test_nothing_pending_plans_nothing() -> None:
    assert plan_push(facts([row("same", 4, 4)]), POLICY) == ()


def test_describe_is_plain_data() -> None:
    actions = plan_push(facts([row("a", 1, 3)]), POLICY)
    assert [describe(a, "ankorstore") for a in actions] == [
        {
            "action": "send",
            "channel": "ankorstore",
            "updates": [{"sku": "a", "quantity": 1, "previous": 3, "move": "decrease"}],
        }
    ]


def test_rows_behind_a_window_of_waiting_increases_wait_too_not_deferred() -> None:
    rows = [row("down", 1, 5), row("up-1", 9, 5), row("up-2", 9, 5)]
    actions = plan_push(
        facts(rows, orders_overdue=("fabric_orders (failing)",), budget=1, beyond=40), POLICY
    )
    [wait] = [a for a in actions if isinstance(a, Wait)]
    assert wait.count == 42
    assert not [a for a in actions if isinstance(a, Defer)]


def test_an_empty_budget_defers_what_is_pending() -> None:
    actions = plan_push(facts([], budget=0, pending=12, beyond=12), POLICY)
    assert actions == (Defer(12),)
