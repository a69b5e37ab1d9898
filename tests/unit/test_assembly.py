"""One clock for the whole assembly: the ledger's, the engine's and the adapters' time agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.assembly import assemble
from syncd.clock import FakeClock
from syncd.config import Config, load_config
from syncd.ledger.store import Ledger

from .test_config import MINIMAL, _write

pytestmark = pytest.mark.anyio


def _config(tmp_path: Path) -> Config:
    return load_config(_write(tmp_path, MINIMAL + "\n[sources.astral]\n"), environ={})


async def test_a_ledger_opened_with_another_clock_is_refused(tmp_path: Path) -> None:
    async with await Ledger.open(tmp_path / "ledger.db", clock=FakeClock()) as ledger:
        with pytest.raises(ValueError, match="another clock"):
            assemble(_config(tmp_path), ledger, clock=FakeClock())


async def test_the_engine_and_the_ledger_tell_time_by_the_assemblys_clock(tmp_path: Path) -> None:
    # 2030: a "now" read from the host instead of the clock would not match.
    clock = FakeClock(wall_start=1_900_000_000.0)
    async with await Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        assembly = assemble(_config(tmp_path), ledger, clock=clock)
        try:
            assert assembly.clock is clock
            clock.advance(90)
            assert assembly.engine.now() == clock.now()
            await ledger.mark_feed("astral", success_at=clock.now())
            clock.advance(15)
            assert ledger.freshness.age("astral") == 15.0
        finally:
            await assembly.aclose()
