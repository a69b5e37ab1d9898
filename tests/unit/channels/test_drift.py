"""Drift between what a channel shows and what syncd last had confirmed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.channels.base import LiveValue
from syncd.channels.drift import Drift, Sighting, find_drift, missing, restorable


def live(**values: int | None) -> dict[str, LiveValue]:
    return {sku: LiveValue(sku=sku, sellable=v) for sku, v in values.items()}


def test_a_different_number_is_drift_and_its_sign_says_which_way() -> None:
    found = find_drift(live(A=5, B=9, C=3), {"A": 5, "B": 7, "C": 4})
    assert found == [
        Drift(sku="B", acknowledged=7, expected=7, shown=9),
        Drift(sku="C", acknowledged=4, expected=4, shown=3),
    ]
    assert [d.delta for d in found] == [2, -1]


def test_no_number_shown_and_unlisted_skus_are_not_drift() -> None:
    shown = live(ALWAYS=None, A=1)
    acknowledged = {"ALWAYS": 4, "A": 1, "GONE": 2}
    assert find_drift(shown, acknowledged) == []
    assert missing(shown, acknowledged) == ["GONE"]


def test_whole_packs_shown_for_an_acknowledged_value_are_not_drift() -> None:
    def packs_of_6(_sku: str, units: int) -> int:
        return units - units % 6

    assert find_drift(live(WINE=18), {"WINE": 20}, shown_for=packs_of_6) == []
    assert find_drift(live(WINE=20), {"WINE": 20}, shown_for=packs_of_6) == [
        Drift(sku="WINE", acknowledged=20, expected=18, shown=20)
    ]


# --- what drift_policy = "overwrite" may write back now ------------------------------

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def drift(sku: str, acknowledged: int, shown: int) -> Drift:
    return Drift(sku=sku, acknowledged=acknowledged, expected=acknowledged, shown=shown)


def test_a_channel_showing_more_than_syncd_allows_is_restored_at_once() -> None:
    plan = restorable(
        [drift("A", 5, 9)], settled={"A": 5}, seen={}, orders_read_at=None, orders_overdue=True
    )
    assert [d.sku for d in plan.now] == ["A"]
    assert plan.later == ()


def test_a_lower_number_is_raised_only_when_seen_again_after_a_fresh_order_read() -> None:
    lowered = drift("A", 5, 3)
    first = restorable(
        [lowered], settled={"A": 5}, seen={}, orders_read_at=T0, orders_overdue=False
    )
    assert first.now == ()
    assert first.later == (lowered,)
    seen = {"A": Sighting(shown=3, at=T0)}
    no_read_since = restorable(
        [lowered], settled={"A": 5}, seen=seen, orders_read_at=T0, orders_overdue=False
    )
    assert no_read_since.now == ()
    later = T0 + timedelta(seconds=30)
    overdue = restorable(
        [lowered], settled={"A": 5}, seen=seen, orders_read_at=later, orders_overdue=True
    )
    assert overdue.now == ()
    other_number = restorable(
        [drift("A", 5, 2)], settled={"A": 5}, seen=seen, orders_read_at=later, orders_overdue=False
    )
    assert other_number.now == ()
    ready = restorable(
        [lowered], settled={"A": 5}, seen=seen, orders_read_at=later, orders_overdue=False
    )
    assert ready.now == (lowered,)


def test_a_channel_without_an_order_feed_needs_only_the_repeated_sighting() -> None:
    seen = {"A": Sighting(shown=3, at=T0)}
    plan = restorable(
        [drift("A", 5, 3)], settled={"A": 5}, seen=seen, orders_read_at=None, orders_overdue=False
    )
    assert [d.sku for d in plan.now] == ["A"]


def test_a_row_that_moved_since_is_left_to_the_normal_push() -> None:
    plan = restorable(
        [drift("A", 5, 9), drift("B", 5, 3)],
        settled={"B": 4},  # A is pending a new value; B's value changed since the read-back
        seen={"B": Sighting(shown=3, at=T0)},
        orders_read_at=T0 + timedelta(seconds=1),
        orders_overdue=False,
    )
    assert plan.now == ()
    assert plan.later == ()
