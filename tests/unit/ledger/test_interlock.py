"""Held cycles survive restarts until confirmed."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.ledger.store import Ledger

from .builders import at


@pytest.mark.anyio
async def test_held_cycle_is_kept_until_confirmed(ledger_path: Path) -> None:
    async with await Ledger.open(ledger_path) as ledger:
        cycle = await ledger.hold_cycle(
            "ankorstore", "would zero 40% of the catalog", {"zeros": 400}, at(0)
        )
    async with await Ledger.open(ledger_path) as ledger:
        (held,) = await ledger.held_cycles("ankorstore")
        assert (held.id, held.payload, held.confirmed_at) == (cycle, {"zeros": 400}, None)
        assert await ledger.confirm_held_cycle(cycle, at(1))
        assert not await ledger.confirm_held_cycle(cycle, at(2))
        assert await ledger.held_cycles() == []
        (done,) = await ledger.held_cycles(include_confirmed=True)
        assert done.confirmed_at == at(1)
