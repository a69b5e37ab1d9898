"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd.ledger.store import Ledger


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    """A real ledger file in the test's directory, closed afterwards."""
    opened = await Ledger.open(tmp_path / "ledger.db")
    try:
        yield opened
    finally:
        await opened.close()
