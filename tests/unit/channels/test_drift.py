"""Drift between what a channel holds and what syncd last had confirmed, and what to correct."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.channels.base import LiveValue
from syncd.channels.drift import Drift, Sighting, find_drift, missing, to_correct


def live(**values: int | None) -> dict[str, LiveValue]:
    return {sku: LiveValue(sku=sku, sellable=v, written=v) for sku, v in values.items()}


def test_a_different_written_number_is_drift_and_its_sign_says_which_way() -> None:
    found = find_drift(live(A=5, B=9, C=3), {"A": 5, "B": 7, "C": 4})
    assert found == [
        Drift(sku="B", acknowledged=7, shown=9),
        Drift(sku="C", acknowledged=4, shown=3),
    ]
    assert [d.delta for d in found] == [2, -1]


def test_no_number_shown_and_unlisted_skus_are_not_drift() -> None:
    shown = live(ALWAYS=None, A=1)
    acknowledged = {"ALWAYS": 4, "A": 1, "GONE": 2}
    assert find_drift(shown, acknowledged) == []
    assert missing(shown, acknowledged) == ["GONE"]


def test_the_channel_subtracting_its_own_orders_is_not_drift() -> None:
    # Ankorstore: stockQuantity 20 written and kept; an order reserves 6, so
    # availableQuantity shows 14. The written field is what is compared.
    shown = {"WINE": LiveValue(sku="WINE", sellable=14, written=20, reserved=6)}
    assert find_drift(shown, {"WINE": 20}) == []
    assert find_drift(shown, {"WINE": 18}) == [Drift(sku="WINE", acknowledged=18, shown=20)]


# --- what each drift_policy corrects now ------------------------------------------

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def drift(sku: str, acknowledged: int, shown: int) -> Drift:
    return Drift(sku=sku, acknowledged=acknowledged, shown=shown)


def test_protect_corrects_a_higher_number_at_once_and_only_reports_a_lower_one() -> None:
    higher, lower = drift("A", 5, 9), drift("B", 5, 3)
    plan = to_correct(
        [higher, lower], policy="protect", seen={}, orders_read_at=None, orders_overdue=True
    )
    assert plan.now == (higher,)
    assert plan.later == ()


def test_report_corrects_nothing() -> None:
    plan = to_correct(
        [drift("A", 5, 9)], policy="report", seen={}, orders_read_at=None, orders_overdue=False
    )
    assert plan.now == ()
    assert plan.later == ()


def test_overwrite_raises_a_lower_number_only_when_seen_again_after_a_fresh_order_read() -> None:
    lowered = drift("A", 5, 3)

    def plan(
        seen: dict[str, Sighting], read_at: datetime, overdue: bool, d: Drift = lowered
    ) -> tuple[tuple[Drift, ...], tuple[Drift, ...]]:
        found = to_correct(
            [d], policy="overwrite", seen=seen, orders_read_at=read_at, orders_overdue=overdue
        )
        return found.now, found.later

    assert plan({}, T0, False) == ((), (lowered,))
    seen = {"A": Sighting(shown=3, at=T0)}
    assert plan(seen, T0, False)[0] == ()  # no order read since the sighting
    later = T0 + timedelta(seconds=30)
    assert plan(seen, later, True)[0] == ()  # order feed overdue
    assert plan(seen, later, False, drift("A", 5, 2))[0] == ()  # another number: a new sighting
    assert plan(seen, later, False)[0] == (lowered,)


def test_overwrite_on_a_channel_without_an_order_feed_needs_only_the_repeated_sighting() -> None:
    seen = {"A": Sighting(shown=3, at=T0)}
    plan = to_correct(
        [drift("A", 5, 3)], policy="overwrite", seen=seen, orders_read_at=None, orders_overdue=False
    )
    assert [d.sku for d in plan.now] == ["A"]


def test_a_sku_listed_twice_in_one_read_back_is_judged_by_the_larger_figure() -> None:
    from syncd.channels.base import larger_shown

    low, high = LiveValue("A", 3, written=3), LiveValue("A", 9, written=9)
    assert larger_shown(larger_shown(None, low), high) is high
    assert larger_shown(larger_shown(None, high), low) is high
    always = LiveValue("A", None, written=None)
    assert larger_shown(high, always) is always
