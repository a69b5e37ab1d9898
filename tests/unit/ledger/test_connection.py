"""Atomicity of ledger writes: an error, a crash or a cancellation mid-write
leaves nothing behind -- neither the postings nor the cursor that covers them."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.model import CursorUpdate, TransactionDraft

from .builders import AV, VOID, acc, movement, snapshot, transfer
from .faults import SimulatedCrash, inject, remove

CURSOR = CursorUpdate("astral:postings", "uuid-2,1767600000")


def _draft(key: str = "t2") -> TransactionDraft:
    return movement(key, *transfer(acc("wh", VOID, "A"), acc("wh", AV, "A"), 5), cursor=CURSOR)


async def _state(ledger: Ledger) -> tuple[object, ...]:
    return (
        await ledger.balances(),
        await ledger.cursor(CURSOR.feed),
        await ledger.last_txn_id(),
        await ledger.check_invariants(),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("point", ["INSERT INTO postings", "INSERT INTO cursors", "COMMIT"])
async def test_failure_mid_write_leaves_neither_postings_nor_cursor(
    ledger: Ledger, point: str
) -> None:
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 2}))
    before = await _state(ledger)
    faulty = inject(ledger, match=point)
    with pytest.raises(SimulatedCrash):
        await ledger.record(_draft())
    assert faulty.fired
    remove(ledger, faulty)
    assert await _state(ledger) == before
    # The same draft is then recorded whole, so nothing was half-remembered.
    assert await ledger.record(_draft())
    assert await ledger.cursor(CURSOR.feed) == CURSOR.value
    assert (await ledger.balances())[acc("wh", AV, "A")] == 7


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["abandon", "kill"])
async def test_crash_before_commit_loses_only_that_write(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "ledger.sqlite"
    copy = tmp_path / "after-kill" / "ledger.sqlite"
    ledger = await Ledger.open(path)
    await ledger.record_snapshot(snapshot("s1", "wh", {"A": 2}, cursor=CURSOR))
    inject(ledger, match="INSERT INTO cursors", mode=mode, kill_copy=copy)  # type: ignore[arg-type]
    with pytest.raises(SimulatedCrash):
        await ledger.record(_draft())
    await ledger.close()
    async with await Ledger.open(copy if mode == "kill" else path) as reopened:
        assert await reopened.balances() == {acc("wh", AV, "A"): 2, acc("wh", VOID, "A"): -2}
        assert await reopened.cursor(CURSOR.feed) == CURSOR.value
        assert await reopened.check_invariants() == []
        assert await reopened.record(_draft())


@pytest.mark.anyio
async def test_committed_write_survives_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    copy = tmp_path / "after-kill" / "ledger.sqlite"
    ledger = await Ledger.open(path)
    await ledger.record(_draft("t1"))
    # The next write dies at once; the copy is what the disk holds then.
    inject(ledger, at_statement=1, mode="kill", kill_copy=copy)
    with pytest.raises(SimulatedCrash):
        await ledger.record_snapshot(snapshot("s9", "wh", {"A": 0}))
    await ledger.close()
    async with await Ledger.open(copy) as reopened:
        assert await reopened.balances() == {acc("wh", AV, "A"): 5, acc("wh", VOID, "A"): -5}
        assert await reopened.cursor(CURSOR.feed) == CURSOR.value


@pytest.mark.anyio
async def test_cancelled_write_is_rolled_back(ledger: Ledger) -> None:
    before = await _state(ledger)
    gate = anyio.Event()
    real = ledger._db._conn
    original = real.execute

    def slow_execute(sql: str, parameters: object = None) -> object:
        if sql.strip().startswith("INSERT INTO cursors"):

            async def wait_forever() -> None:
                gate.set()
                await anyio.sleep_forever()

            return wait_forever()
        return original(sql, parameters)

    real.execute = slow_execute  # type: ignore[method-assign,assignment]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ledger.record, _draft())
            await gate.wait()
            tg.cancel_scope.cancel()
    finally:
        real.execute = original  # type: ignore[method-assign]
    assert await _state(ledger) == before
    assert await ledger.record(_draft())
