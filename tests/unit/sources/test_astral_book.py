"""ASTRAL postings and states as ledger drafts: mirrored postings, units, zeros, exclusions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.ledger.store import Ledger
from syncd.model import Account, CursorUpdate, StockStatus, TransactionKind
from syncd.sources.astral_book import (
    CONFLICTING_ID,
    DUPLICATE_ID,
    DUPLICATE_VARIANT,
    UNKNOWN_VARIANT,
    PagePlan,
    StatePlan,
    plan_page,
    plan_state,
)
from syncd.sources.astral_parse import FeedPosting, PostingsPage, StateEntity, StateLevel
from syncd.sources.problems import Skipped

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
LOC = "wh-1"
WH = f"astral:{LOC}"
MAPPING = {"v-tee": "TEE", "v-mug": "MUG"}
A, R, V, INC = StockStatus.AVAILABLE, StockStatus.RESERVED, StockStatus.VOID, StockStatus.INCOMING


def fp(
    pid: str, status: StockStatus, batches: int, variant: str = "v-tee", mult: int = 3
) -> FeedPosting:
    return FeedPosting(pid, variant, LOC, status, batches, mult, "order_reserved", "")


def page(
    *postings: FeedPosting, cursor: str | None = "c-2", skipped: tuple[Skipped, ...] = ()
) -> PostingsPage:
    return PostingsPage(
        postings=postings,
        skipped=skipped,
        listed=len(postings) + len(skipped),
        cursor=cursor,
        has_more=False,
    )


def planned(p: PostingsPage) -> PagePlan:
    return plan_page(p, MAPPING, source="astral", prefix="astral", after="c-1", observed_at=NOW)


def test_each_posting_is_recorded_in_units_with_a_void_mirror() -> None:
    plan = planned(page(fp("p1", A, -2), fp("p2", R, 2)))
    assert plan.draft is not None
    rows = [
        (p.account, p.quantity, p.batches, p.unit_multiplier, p.external_id)
        for p in plan.draft.postings
    ]
    assert rows == [
        (Account(WH, A, "TEE"), -6, -2, 3, "p1"),
        (Account(WH, V, "TEE"), 6, 2, 3, "p1/void"),
        (Account(WH, R, "TEE"), 6, 2, 3, "p2"),
        (Account(WH, V, "TEE"), -6, -2, 3, "p2/void"),
    ]
    assert sum(p.quantity for p in plan.draft.postings) == 0
    assert plan.draft.cursor is not None
    assert plan.draft.cursor.value == "c-2"
    assert plan.touched == {"TEE"}


def test_astral_void_postings_are_the_counter_side_and_not_recorded_twice() -> None:
    plan = planned(page(fp("p1", V, -5), fp("p2", INC, 5)))
    assert plan.draft is not None
    assert [p.external_id for p in plan.draft.postings] == ["p2", "p2/void"]


def test_unknown_variants_are_skipped_and_a_page_of_nothing_still_moves_the_cursor() -> None:
    plan = planned(page(fp("p1", A, 4, variant="v-unknown"), skipped=(Skipped("p9", "bad"),)))
    assert plan.skipped == [Skipped("p9", "bad"), Skipped("v-unknown", UNKNOWN_VARIANT)]
    assert plan.draft is not None
    assert plan.draft.postings == ()
    assert plan.draft.cursor is not None


def test_an_empty_page_keeps_the_cursor() -> None:
    assert planned(page(cursor=None)).draft is None


@pytest.mark.anyio
async def test_a_replayed_page_is_a_no_op_even_when_split_differently(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "l.db") as ledger:
        whole = planned(page(fp("p1", A, -2), fp("p2", R, 2), cursor="c-3")).draft
        assert whole is not None
        assert await ledger.record(whole)
        balances = await ledger.balances()
        assert await ledger.record(whole) is False
        # The same postings on a page cut elsewhere (another page size): new key, same ids.
        first_half = planned(page(fp("p1", A, -2), cursor="c-2")).draft
        assert first_half is not None
        await ledger.record(replace(first_half, cursor=None))
        assert await ledger.balances() == balances
        assert await ledger.check_invariants() == []


def level(
    status: StockStatus, batches: int, variant: str = "v-tee", lot: str = "", loc: str = LOC
) -> StateLevel:
    return StateLevel(variant, loc, status, lot, batches, 2)


def planned_state(
    entities: Sequence[StateEntity | Skipped],
    balances: dict[Account, int],
    *,
    exclude: frozenset[str] = frozenset(),
    cursor: CursorUpdate | None = None,
) -> StatePlan:
    return plan_state(
        entities,
        MAPPING,
        balances,
        source="astral",
        prefix="astral",
        key="state:test",
        observed_at=NOW,
        reason="reconciliation",
        exclude=exclude,
        cursor=cursor,
    )


def test_a_listed_variant_is_fully_described_and_absent_balances_become_zero() -> None:
    entities = [StateEntity("v-tee", (level(A, 5), level(INC, 1))), StateEntity("v-mug", ())]
    balances = {
        Account(WH, A, "TEE"): 10,
        Account(WH, StockStatus.DAMAGED, "TEE"): 2,
        Account(WH, V, "TEE"): -12,
        Account(WH, A, "MUG"): 4,
        Account("activeants", A, "MUG"): 9,
    }
    plan = planned_state(entities, balances)
    [snapshot] = plan.snapshots
    assert snapshot.location == WH
    assert not snapshot.complete
    assert dict(snapshot.levels) == {
        (A, "TEE", ""): 10,
        (INC, "TEE", ""): 2,
        (StockStatus.DAMAGED, "TEE", ""): 0,
        (A, "MUG", ""): 0,
    }
    assert plan.complete
    assert plan.covered == 2
    assert plan.differences == 3  # INC 0->2, DAMAGED 2->0, MUG 4->0 (TEE available unchanged)


def test_excluded_and_partly_unreadable_variants_are_not_zeroed() -> None:
    entities = [
        StateEntity("v-tee", (level(A, 1),)),
        StateEntity("v-mug", (level(A, 3, variant="v-mug"),), skipped=(Skipped("v-mug", "x"),)),
    ]
    balances = {Account(WH, A, "TEE"): 10, Account(WH, R, "MUG"): 4}
    plan = planned_state(entities, balances, exclude=frozenset({"TEE"}))
    [snapshot] = plan.snapshots
    assert dict(snapshot.levels) == {(A, "MUG", ""): 6}
    assert plan.skipped == [Skipped("v-mug", "x")]


def test_a_variant_listed_twice_in_one_state_read_counts_each_balance_at_the_lower() -> None:
    for copies in ((5, 8), (8, 5)):  # whichever copy comes first
        entities = [
            StateEntity("v-tee", (level(A, copies[0]), level(INC, 3))),
            StateEntity("v-mug", (level(A, 4, variant="v-mug"),)),
            StateEntity("v-tee", (level(A, copies[1]),)),  # omits its incoming balance
        ]
        plan = planned_state(entities, {Account(WH, A, "TEE"): 30})
        [snapshot] = plan.snapshots
        # Never added up (26 units), never the larger copy (16): 5 batches x 2.
        assert dict(snapshot.levels) == {
            (A, "TEE", ""): 10,
            (INC, "TEE", ""): 0,
            (A, "MUG", ""): 8,
        }
        assert plan.covered == 2
        assert plan.skipped == [Skipped("v-tee", DUPLICATE_VARIANT)]


def test_a_posting_listed_twice_counts_once_and_a_conflicting_copy_never_raises_more() -> None:
    same = planned(page(fp("p-1", A, 2), fp("p-1", A, 2)))
    assert same.draft is not None
    assert [p.quantity for p in same.draft.postings if p.account.status is A] == [6]
    assert same.skipped == [Skipped("p-1", DUPLICATE_ID)]
    for first, second in ((fp("p-1", A, 2), fp("p-1", A, -2)), (fp("p-1", A, -2), fp("p-1", A, 2))):
        plan = planned(page(first, second))
        assert plan.draft is not None
        assert [p.quantity for p in plan.draft.postings if p.account.status is A] == [-6]
        assert plan.skipped == [Skipped("p-1", CONFLICTING_ID)]
    # A copy on another status raises nothing sellable: the available one may not win.
    plan = planned(page(fp("p-1", A, 2), fp("p-1", R, 2)))
    assert plan.draft is not None
    assert {p.account.status for p in plan.draft.postings} == {R, V}


def test_levels_are_split_per_location_and_the_cursor_rides_on_the_last() -> None:
    entities = [StateEntity("v-tee", (level(A, 1), level(A, 2, loc="wh-2")))]
    plan = planned_state(entities, {}, cursor=CursorUpdate("astral", "head"))
    assert [s.location for s in plan.snapshots] == [WH, "astral:wh-2"]
    assert [s.cursor for s in plan.snapshots] == [None, CursorUpdate("astral", "head")]
    assert plan.cursor_only is None


def test_a_baseline_with_nothing_to_record_still_commits_its_cursor() -> None:
    plan = planned_state(
        [StateEntity("v-tee", ()), StateEntity("v-mug", ())],
        {},
        cursor=CursorUpdate("astral", "start"),
    )
    assert plan.snapshots == []
    assert plan.cursor_only is not None
    assert plan.cursor_only.kind is TransactionKind.CURSOR


def test_an_empty_state_read_is_refused_and_a_short_one_reported() -> None:
    refused = planned_state([], {Account(WH, A, "TEE"): 10})
    assert refused.refused is not None
    assert refused.snapshots == []
    short = planned_state([StateEntity("v-tee", (level(A, 1),)), StateEntity("v-zzz", ())], {})
    assert not short.complete
    assert short.skipped == [Skipped("v-zzz", UNKNOWN_VARIANT)]
    assert short.problems == [
        "stock state listed 1 of 2 mapped variants; the others keep their last recorded balances: MUG"
    ]
