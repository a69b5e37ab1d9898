"""Drift between what a channel shows and what syncd last had confirmed."""

from __future__ import annotations

from syncd.channels.base import LiveValue
from syncd.channels.drift import Drift, find_drift, missing


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
