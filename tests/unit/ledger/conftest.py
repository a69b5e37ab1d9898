"""Fixtures for ledger tests: a real SQLite file under tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.ledger.store import Ledger


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
async def ledger(ledger_path: Path) -> AsyncIterator[Ledger]:
    async with await Ledger.open(ledger_path) as opened:
        yield opened
