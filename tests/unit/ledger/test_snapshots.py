"""Snapshots: absolute levels become adjustments against ``void``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.store import Ledger
from syncd.model import CursorUpdate, StockStatus, TransactionKind

from .builders import AV, VOID, acc, snapshot

DMG = StockStatus.DAMAGED


@pytest.mark.anyio
async def test_difference_is_posted_against_void(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 10, "B": 3}))
    await ledger.record_snapshot(snapshot("s2", "wh", {"A": 7}))
    assert await ledger.balances() == {
        acc("wh", AV, "A"): 7,
        acc("wh", VOID, "A"): -7,
        acc("wh", AV, "B"): 3,
        acc("wh", VOID, "B"): -3,
    }
    newest = (await ledger.explain_rows("A"))[:2]
    assert {(r.account.status, r.quantity, r.kind) for r in newest} == {
        (AV, -3, TransactionKind.SNAPSHOT),
        (VOID, 3, TransactionKind.SNAPSHOT),
    }
    assert {r.key for r in newest} == {"s2"}


@pytest.mark.anyio
async def test_replayed_snapshot_does_not_undo_newer_changes(ledger: Ledger) -> None:
    old = snapshot("s1", "wh", {"A": 10})
    await ledger.record_snapshot(old)
    await ledger.record_snapshot(snapshot("s1b", "wh", {"A": 8}))
    assert await ledger.record_snapshot(old) is False
    assert (await ledger.balances())[acc("wh", AV, "A")] == 8


@pytest.mark.anyio
async def test_unchanged_snapshot_is_remembered_without_postings(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 5}))
    before = await ledger.last_txn_id()
    assert await ledger.record_snapshot(snapshot("s2", "wh", {"A": 5}))
    assert await ledger.last_txn_id() == before + 1
    assert await ledger.changed_skus_since(before) == set()


@pytest.mark.anyio
async def test_status_move_within_a_snapshot_needs_no_void(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {(AV, "A", ""): 10}))
    await ledger.record_snapshot(snapshot("s2", "wh", {(AV, "A", ""): 7, (DMG, "A", ""): 3}))
    assert await ledger.balances() == {
        acc("wh", AV, "A"): 7,
        acc("wh", DMG, "A"): 3,
        acc("wh", VOID, "A"): -10,
    }
    # The second snapshot posted -3/+3 and nothing on void.
    second = [r for r in await ledger.explain_rows("A") if r.key == "s2"]
    assert sorted(r.quantity for r in second) == [-3, 3]


@pytest.mark.anyio
async def test_complete_snapshot_zeroes_only_its_own_location(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4, "B": 2}))
    await ledger.record_snapshot(snapshot("s2", "wh", {(AV, "C", "L1"): 6}))
    await ledger.record_snapshot(snapshot("o1", "other", {"B": 9}, source="astral"))
    await ledger.record_snapshot(snapshot("s3", "wh", {"A": 1}, complete=True))
    balances = await ledger.balances()
    assert balances == {
        acc("wh", AV, "A"): 1,
        acc("wh", VOID, "A"): -1,
        acc("other", AV, "B"): 9,
        acc("other", VOID, "B"): -9,
    }
    assert await ledger.check_invariants() == []


@pytest.mark.anyio
async def test_partial_snapshot_leaves_unlisted_skus_alone(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4, "B": 2}))
    await ledger.record_snapshot(snapshot("s2", "wh", {"A": 1}))
    assert (await ledger.balances())[acc("wh", AV, "B")] == 2


@pytest.mark.anyio
async def test_empty_complete_snapshot_is_refused(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4}))
    with pytest.raises(InvalidObservationError, match="zero the location"):
        await ledger.record_snapshot(snapshot("s2", "wh", {}, complete=True))
    assert (await ledger.balances())[acc("wh", AV, "A")] == 4


@pytest.mark.anyio
async def test_void_is_not_a_level(ledger: Ledger) -> None:
    with pytest.raises(InvalidObservationError, match="void"):
        await ledger.record_snapshot(snapshot("s1", "wh", {(VOID, "A", ""): 1}))


@pytest.mark.anyio
async def test_cursor_is_committed_with_the_snapshot(ledger: Ledger) -> None:
    cursor = CursorUpdate("activeants:stock", "2026-01-05T09:00:00Z")
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4}, cursor=cursor))
    assert await ledger.cursor("activeants:stock") == cursor.value


@pytest.mark.anyio
async def test_hundred_thousand_variants_in_one_transaction(
    ledger: Ledger, ledger_path: Path
) -> None:
    count = 100_000
    levels = {f"SKU-{i:06d}": i % 37 for i in range(count)}
    assert await ledger.record_snapshot(snapshot("full-1", "wh", levels, complete=True))
    changed = {sku: level + 1 for sku, level in levels.items() if sku.endswith("7")}
    assert await ledger.record_snapshot(
        snapshot("full-2", "wh", {**levels, **changed}, complete=True)
    )

    balances = await ledger.balances()
    expected = {**levels, **changed}
    assert {a.sku: q for a, q in balances.items() if a.status is AV} == {
        sku: q for sku, q in expected.items() if q
    }
    assert all(balances.get(acc("wh", VOID, sku), 0) == -q for sku, q in expected.items())
    assert await ledger.check_invariants() == []
    with sqlite3.connect(ledger_path) as raw:
        per_txn = raw.execute(
            "SELECT t.key, COUNT(p.id) FROM transactions t LEFT JOIN postings p ON p.txn_id = t.id"
            " GROUP BY t.id ORDER BY t.id"
        ).fetchall()
    nonzero = sum(1 for q in levels.values() if q)
    assert per_txn == [("full-1", 2 * nonzero), ("full-2", 2 * len(changed))]
