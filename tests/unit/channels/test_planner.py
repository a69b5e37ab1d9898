"""The push planner: order (decreases first), batching (ceil(N/50)), budget."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.channels.planner import Move, plan
from syncd.model import OutboxRow

T0 = datetime(2026, 11, 23, tzinfo=UTC)


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


def test_negative_desired_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        plan([row("bad", -1, 3)], per_request=50)


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
