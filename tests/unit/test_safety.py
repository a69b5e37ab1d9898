"""Safety interlocks: stale sources block, mass zeroing and mass change hold."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syncd.model import OutboxRow
from syncd.safety import (
    Assessment,
    SafetyPolicy,
    assess,
    increase_needs_second_read,
    is_change,
    is_zeroing,
)

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def row(sku: str, desired: int, acknowledged: int | None) -> OutboxRow:
    return OutboxRow("fabric", sku, desired, acknowledged, 1, "pending", T0)


POLICY = SafetyPolicy(max_zero_share=0.2, max_change_share=0.5, min_catalog_for_share_check=20)


def judge(rows: list[OutboxRow], **kwargs: Any) -> Assessment:
    """Assess pending rows as the ledger counts them (:func:`is_change`, :func:`is_zeroing`)."""
    return assess(
        changes=sum(1 for r in rows if is_change(r)),
        zeroes=sum(1 for r in rows if is_zeroing(r)),
        **kwargs,
    )


def test_small_change_passes() -> None:
    verdict = judge([row("a", 0, 5), row("b", 3, 4)], published=100, policy=POLICY)
    assert verdict.ok
    assert verdict.zeroes == 1
    assert verdict.changes == 2


def test_mass_zeroing_is_held_with_a_reason() -> None:
    pending = [row(f"s{i}", 0, 5) for i in range(21)]
    verdict = judge(pending, published=100, policy=POLICY)
    assert verdict.hold
    assert not verdict.blocked
    assert any("21 of 100 variants to zero" in r for r in verdict.reasons)


def test_exactly_the_allowed_share_passes() -> None:
    pending = [row(f"s{i}", 0, 5) for i in range(20)]
    assert judge(pending, published=100, policy=POLICY).ok


def test_mass_change_is_held() -> None:
    pending = [row(f"s{i}", 7, 5) for i in range(51)]
    verdict = judge(pending, published=100, policy=POLICY)
    assert verdict.hold
    assert any("change 51 of 100" in r for r in verdict.reasons)


def test_confirmation_releases_a_hold_but_not_a_stale_block() -> None:
    pending = [row(f"s{i}", 0, 5) for i in range(60)]
    assert judge(pending, published=100, policy=POLICY, confirmed=True).ok
    stale = judge(
        pending, published=100, policy=POLICY, confirmed=True, stale_sources=["activeants"]
    )
    assert stale.blocked
    assert not stale.ok


def test_zero_already_acknowledged_is_not_a_new_zero() -> None:
    pending = [row(f"s{i}", 0, 0) for i in range(60)]
    assert judge(pending, published=100, policy=POLICY).zeroes == 0


def test_small_catalog_skips_share_checks() -> None:
    pending = [row(f"s{i}", 0, 5) for i in range(10)]
    assert judge(pending, published=10, policy=POLICY).ok


def test_increase_after_zero_waits_for_a_second_read() -> None:
    r = row("a", 4, 0)
    assert increase_needs_second_read(r, policy=POLICY, consistent_reads=1)
    assert not increase_needs_second_read(r, policy=POLICY, consistent_reads=2)
    relaxed = SafetyPolicy(confirm_increase_after_zero=False)
    assert not increase_needs_second_read(r, policy=relaxed, consistent_reads=1)
    assert not increase_needs_second_read(row("b", 4, 2), policy=POLICY, consistent_reads=1)


def test_first_publication_is_not_counted_as_a_change() -> None:
    pending = [row(f"s{i}", 5, None) for i in range(100)]
    verdict = judge(pending, published=100, policy=POLICY)
    assert verdict.changes == 0
    assert verdict.ok


def test_first_publication_of_zeros_is_still_held() -> None:
    pending = [row(f"s{i}", 0, None) for i in range(100)]
    assert judge(pending, published=100, policy=POLICY).hold


def own(sku: str, desired: int, acknowledged: int | None, own_reserved: int) -> OutboxRow:
    """An Ankorstore row: ``desired`` carries ``own_reserved`` units of its own orders."""
    return OutboxRow("ankorstore", sku, desired, acknowledged, 1, "pending", T0, None, own_reserved)


def test_a_pool_emptied_under_open_orders_still_counts_as_zeroing() -> None:
    # A bad read empties the pool: 21 variants fall to their own orders' units
    # (sellable 0) -- exactly what a mass zeroing looks like on Ankorstore.
    pending = [own(f"s{i}", 2, 12, own_reserved=2) for i in range(21)]
    verdict = judge(pending, published=100, policy=POLICY)
    assert verdict.hold
    assert verdict.zeroes == 21


def test_an_increase_from_nothing_sellable_waits_with_open_orders_too() -> None:
    policy = SafetyPolicy(confirm_increase_after_zero=True)
    back = own("a", 7, 2, own_reserved=2)  # showed 2 - 2 = 0, now 5 sellable
    assert increase_needs_second_read(back, policy=policy, consistent_reads=1)
    assert not increase_needs_second_read(back, policy=policy, consistent_reads=2)
    steady = own("b", 9, 7, own_reserved=2)
    assert not increase_needs_second_read(steady, policy=policy, consistent_reads=1)
