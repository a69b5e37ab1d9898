"""`ledger_write_problem`: the cases file modes do not decide (those run as a real daemon in
tests/integration/daemon/test_daemon_ledger_writable.py, where root is made to obey modes)."""

from __future__ import annotations

from pathlib import Path

import anyio

from syncd.ledger.store import Ledger
from syncd.ledger.writable import ledger_write_problem


async def _create(path: Path) -> None:
    async with await Ledger.open(path):
        pass


def test_an_existing_ledger_in_a_writable_directory_is_fine(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    anyio.run(_create, database)
    assert ledger_write_problem(database) is None
    # The check leaves nothing behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.db"]


def test_a_ledger_still_to_be_created_is_fine_when_its_directory_can_be(tmp_path: Path) -> None:
    assert ledger_write_problem(tmp_path / "var" / "lib" / "syncd" / "ledger.db") is None
    assert list(tmp_path.iterdir()) == []


def test_a_directory_where_the_ledger_should_be_is_named(tmp_path: Path) -> None:
    database = tmp_path / "ledger.db"
    database.mkdir()
    assert ledger_write_problem(database) == (
        f"the ledger {database} cannot be written: {database} is a directory"
    )


def test_a_file_where_its_directory_should_be_is_named(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    problem = ledger_write_problem(tmp_path / "state" / "ledger.db")
    assert problem == (
        f"the ledger {tmp_path / 'state' / 'ledger.db'} cannot be written: "
        f"{tmp_path / 'state'} is not a directory"
    )
