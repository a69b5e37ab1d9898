"""The ledger is checked before syncd trusts it: damage is refused with the recovery."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.ledger.guard import LedgerRefused, open_checked
from syncd.ledger.store import Ledger
from syncd.model import SnapshotDraft, StockStatus

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PAGE = 4096


async def filled(path: Path, skus: int = 400) -> None:
    """A ledger with a few hundred balances, closed cleanly (its WAL checkpointed)."""
    async with await Ledger.open(path) as ledger:
        await ledger.record_snapshot(
            SnapshotDraft(
                source="activeants",
                key="s1",
                observed_at=T0,
                location="activeants",
                levels={(StockStatus.AVAILABLE, f"SKU-{i:04d}", ""): 10 + i for i in range(skus)},
            )
        )


def edit_balance(path: Path, sku: str, quantity: int) -> None:
    """What a hand edit (or a table restored from elsewhere) does: a balance off its postings."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            "UPDATE balances SET quantity = ? WHERE account_id ="
            " (SELECT id FROM accounts WHERE sku = ? AND status = 'available')",
            (quantity, sku),
        )
        conn.commit()


async def test_a_sound_ledger_opens(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await filled(path)
    async with await open_checked(path) as ledger:
        assert (await ledger.check_integrity()).ok


async def test_an_edited_balance_is_refused_and_rebuilt_from_the_postings(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await filled(path)
    edit_balance(path, "SKU-0007", 999)
    with pytest.raises(LedgerRefused) as refused:
        await open_checked(path, config="/etc/syncd/syncd.toml")
    message = str(refused.value)
    assert f"the ledger {path} is inconsistent:" in message
    assert "account activeants/available/SKU-0007/: postings sum to 17 but the balance is 999" in (
        message
    )
    assert "syncd ledger rebuild-balances --config /etc/syncd/syncd.toml" in message
    assert f"mv {path} {path}.damaged" in message

    async with await Ledger.open(path) as ledger:
        corrected = await ledger.rebuild_balances()
        assert corrected == [
            "account activeants/available/SKU-0007/: postings sum to 17 but the balance is 999"
        ]
        assert (await ledger.balances({"SKU-0007"})) != {}
        assert (
            sum(
                q
                for a, q in (await ledger.balances({"SKU-0007"})).items()
                if a.status is StockStatus.AVAILABLE
            )
            == 17
        )
    async with await open_checked(path) as ledger:
        assert (await ledger.check_integrity()).ok


async def test_a_damaged_page_is_refused_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    await filled(path, skus=2000)
    size = path.stat().st_size
    assert size > 8 * PAGE
    with path.open("r+b") as raw:  # garbage over pages in the middle of the file
        raw.seek(3 * PAGE)
        raw.write(os.urandom(3 * PAGE))
    with pytest.raises(LedgerRefused) as refused:
        await open_checked(path)
    message = str(refused.value)
    assert message.startswith(f"the ledger {path} is damaged")
    assert "rebuild-balances" not in message  # it cannot help a damaged file
    assert f"mv {path} {path}.damaged" in message


async def test_a_file_that_is_not_a_database_is_refused_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not SQLite" * 500)
    with pytest.raises(LedgerRefused, match="is damaged"):
        await open_checked(path)


async def test_a_removed_or_replaced_ledger_file_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    async with await Ledger.open(path) as ledger:
        assert ledger.file_problem() is None
        moved = tmp_path / "elsewhere.db"
        os.rename(path, moved)
        assert ledger.file_problem() == (
            f"the ledger file {path} was removed while syncd was running"
        )
        (tmp_path / "other.db").write_bytes(b"")
        os.rename(tmp_path / "other.db", path)
        assert ledger.file_problem() == (
            f"the ledger file {path} was replaced by another file while syncd was running"
        )
        os.replace(moved, path)  # the very file back at its path
        assert ledger.file_problem() is None
