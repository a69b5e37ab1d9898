"""Read-side questions: filtered balances, what changed, history of a SKU."""

from __future__ import annotations

import pytest

from syncd.ledger.store import Ledger

from .builders import AV, VOID, acc, snapshot


@pytest.mark.anyio
async def test_balances_filtered_by_sku(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 1, "B": 2, "C": 0}))
    assert await ledger.balances(["B", "C"]) == {acc("wh", AV, "B"): 2, acc("wh", VOID, "B"): -2}
    assert await ledger.balances([]) == {}


@pytest.mark.anyio
async def test_changed_skus_since_a_transaction(ledger: Ledger) -> None:
    assert await ledger.last_txn_id() == 0
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 1, "B": 2}))
    mark = await ledger.last_txn_id()
    await ledger.record_snapshot(snapshot("s2", "wh", {"A": 1, "B": 3}))
    assert await ledger.changed_skus_since(mark) == {"B"}
    assert await ledger.changed_skus_since(0) == {"A", "B"}
    assert await ledger.changed_skus_since(await ledger.last_txn_id()) == set()


@pytest.mark.anyio
async def test_explain_rows_are_newest_first_and_bounded(ledger: Ledger) -> None:
    for i in range(5):
        await ledger.record_snapshot(snapshot(f"s{i}", "wh", {"A": i + 1}))
    rows = await ledger.explain_rows("A", limit=3)
    assert [(r.key, r.account.status, r.quantity) for r in rows] == [
        ("s4", VOID, -1),
        ("s4", AV, 1),
        ("s3", VOID, -1),
    ]
    assert rows[0].metadata["location"] == "wh"
