"""check_invariants reports real damage to the file, and only real damage."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from syncd.ledger.store import Ledger

from .builders import at, order, snapshot


@pytest.mark.anyio
async def test_sound_ledger_has_no_violations(ledger: Ledger) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4}))
    await ledger.record_orders("ank", "o", at(0), [order("o1", {"A": 1})], complete=False)
    assert await ledger.check_invariants() == []


@pytest.mark.anyio
async def test_tampered_balance_is_reported(ledger: Ledger, ledger_path: Path) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4}))
    with sqlite3.connect(ledger_path) as raw:
        raw.execute("UPDATE balances SET quantity = quantity + 1")
    problems = await ledger.check_invariants()
    assert any("wh/available/A/: postings sum to 4 but the balance is 5" in p for p in problems)


@pytest.mark.anyio
async def test_reservation_lines_out_of_step_with_the_pool_are_reported(
    ledger: Ledger, ledger_path: Path
) -> None:
    await ledger.record_orders("ank", "o", at(0), [order("o1", {"A": 2})], complete=False)
    with sqlite3.connect(ledger_path) as raw:
        raw.execute("UPDATE reservation_lines SET quantity = 3")
    (problem,) = await ledger.check_invariants()
    assert "reserved:ankorstore/A" in problem
