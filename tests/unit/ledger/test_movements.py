"""Recording source transactions: zero-sum, idempotency, duplicate postings."""

from __future__ import annotations

from datetime import datetime

import pytest

from syncd.ledger.errors import (
    ConflictingPostingError,
    InvalidObservationError,
    UnbalancedTransactionError,
)
from syncd.ledger.movements import staged_rows
from syncd.ledger.store import Ledger
from syncd.model import CursorUpdate, Posting, StockStatus, TransactionDraft, TransactionKind

from .builders import AV, T0, VOID, acc, movement, transfer

WH_A = acc("astral:wh", AV, "A")
VOID_A = acc("astral:wh", VOID, "A")
RES_A = acc("astral:wh", StockStatus.RESERVED, "A")
FEED = "astral:postings"


@pytest.mark.anyio
async def test_replaying_the_same_key_changes_nothing(ledger: Ledger) -> None:
    draft = movement("txn-1", *transfer(VOID_A, WH_A, 10, ids=("p1", "p2")))
    assert await ledger.record(draft) is True
    balances = await ledger.balances()
    last = await ledger.last_txn_id()
    assert await ledger.record(draft) is False
    assert await ledger.balances() == balances == {WH_A: 10, VOID_A: -10}
    assert await ledger.last_txn_id() == last


@pytest.mark.anyio
async def test_unbalanced_draft_is_refused_and_nothing_written(ledger: Ledger) -> None:
    draft = movement("bad", Posting(WH_A, 5), Posting(VOID_A, -4))
    with pytest.raises(UnbalancedTransactionError, match=r"\+1"):
        await ledger.record(draft)
    assert await ledger.last_txn_id() == 0
    assert await ledger.balances() == {}


@pytest.mark.anyio
async def test_postings_already_recorded_under_another_key_are_skipped(ledger: Ledger) -> None:
    first = transfer(VOID_A, WH_A, 10, ids=("p1", "p2"))
    await ledger.record(movement("page-1", *first))
    second = transfer(WH_A, RES_A, 3, ids=("p3", "p4"))
    # An overlapping re-read: page 2 repeats page 1's postings and adds two.
    assert await ledger.record(movement("page-2", *first, *second)) is True
    assert await ledger.balances() == {WH_A: 7, VOID_A: -10, RES_A: 3}
    assert await ledger.check_invariants() == []


@pytest.mark.anyio
async def test_new_postings_that_do_not_balance_alone_refuse_the_draft(ledger: Ledger) -> None:
    await ledger.record(movement("t1", *transfer(VOID_A, WH_A, 4, ids=("p1", "p2"))))
    # Balanced as a whole, but p1 is known: the new p9 alone would be +4.
    mixed = movement(
        "t2", Posting(VOID_A, -4, external_id="p1"), Posting(RES_A, 4, external_id="p9")
    )
    with pytest.raises(UnbalancedTransactionError, match="already recorded"):
        await ledger.record(mixed)
    assert await ledger.balances() == {WH_A: 4, VOID_A: -4}


@pytest.mark.anyio
async def test_same_external_id_with_other_content_is_refused(ledger: Ledger) -> None:
    await ledger.record(movement("t1", *transfer(VOID_A, WH_A, 4, ids=("p1", "p2"))))
    changed = movement("t2", *transfer(VOID_A, WH_A, 5, ids=("p1", "p2")))
    with pytest.raises(ConflictingPostingError, match="p1"):
        await ledger.record(changed)
    assert await ledger.balances() == {WH_A: 4, VOID_A: -4}


@pytest.mark.anyio
async def test_all_duplicate_draft_is_a_noop(ledger: Ledger) -> None:
    postings = transfer(VOID_A, WH_A, 4, ids=("p1", "p2"))
    await ledger.record(movement("t1", *postings))
    last = await ledger.last_txn_id()
    assert await ledger.record(movement("t1-again", *postings)) is False
    assert await ledger.last_txn_id() == last


@pytest.mark.anyio
async def test_all_duplicate_draft_still_advances_the_cursor(ledger: Ledger) -> None:
    postings = transfer(VOID_A, WH_A, 4, ids=("p1", "p2"))
    await ledger.record(movement("t1", *postings, cursor=CursorUpdate(FEED, "c1")))
    assert await ledger.record(movement("t2", *postings, cursor=CursorUpdate(FEED, "c2")))
    assert await ledger.cursor(FEED) == "c2"
    assert await ledger.balances() == {WH_A: 4, VOID_A: -4}
    # Same cursor again: nothing left to record.
    assert not await ledger.record(movement("t3", *postings, cursor=CursorUpdate(FEED, "c2")))


@pytest.mark.anyio
async def test_cursor_only_page(ledger: Ledger) -> None:
    draft = movement("empty-page", cursor=CursorUpdate(FEED, "c7"), kind=TransactionKind.CURSOR)
    assert await ledger.record(draft)
    assert await ledger.cursor(FEED) == "c7"
    assert not await ledger.record(draft)


@pytest.mark.anyio
async def test_units_and_batches_are_kept_on_the_posting(ledger: Ledger) -> None:
    draft = movement(
        "b1",
        Posting(VOID_A, -12, movement="replenishment", batches=-2, unit_multiplier=6),
        Posting(WH_A, 12, movement="replenishment", batches=2, unit_multiplier=6, external_id="x"),
    )
    await ledger.record(draft)
    rows = await ledger.explain_rows("A")
    assert [(r.account, r.quantity, r.batches, r.unit_multiplier) for r in rows] == [
        (WH_A, 12, 2, 6),
        (VOID_A, -12, -2, 6),
    ]


def test_staged_rows_refuse_malformed_drafts() -> None:
    naive = TransactionDraft(TransactionKind.MOVEMENT, "s", "k", datetime(2026, 1, 1))
    with pytest.raises(InvalidObservationError, match="time zone"):
        staged_rows(naive)
    twice = movement("k", Posting(WH_A, 1, external_id="p"), Posting(VOID_A, -1, external_id="p"))
    with pytest.raises(InvalidObservationError, match="twice"):
        staged_rows(twice)
    with pytest.raises(InvalidObservationError, match="multiplier"):
        staged_rows(movement("k", Posting(WH_A, 0, unit_multiplier=0)))
    snapshot_kind = TransactionDraft(TransactionKind.SNAPSHOT, "s", "k", T0)
    with pytest.raises(InvalidObservationError, match="record_snapshot"):
        staged_rows(snapshot_kind)
