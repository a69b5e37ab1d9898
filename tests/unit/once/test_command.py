"""`syncd once`: the dry run's ledger copy and the exit status with its reasons."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.channels.ankorstore import ALWAYS_IN_STOCK_REASON
from syncd.engine import ChannelCycle
from syncd.model import OutboxRow
from syncd.once.command import Outstanding, copy_ledger, report
from syncd.once.run import ChannelTotals

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def make_db(path: Path, rows: int) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (n INTEGER)")
        db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(rows)])
        db.commit()


def count(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM t").fetchone()[0])


def test_a_cleanly_closed_ledger_is_copied_without_files_appearing_beside_it(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live" / "ledger.db"
    live.parent.mkdir()
    make_db(live, 5)
    before = {p.name: p.read_bytes() for p in live.parent.iterdir()}

    copy_ledger(live, tmp_path / "copy.db")

    assert count(tmp_path / "copy.db") == 5
    assert {p.name: p.read_bytes() for p in live.parent.iterdir()} == before


def test_a_ledger_open_in_another_process_is_copied_with_its_wal(tmp_path: Path) -> None:
    live = tmp_path / "ledger.db"
    make_db(live, 5)
    with closing(sqlite3.connect(live)) as daemon:  # a running daemon keeps its WAL
        daemon.execute("PRAGMA wal_autocheckpoint=0")
        daemon.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(7)])
        daemon.commit()
        assert (tmp_path / "ledger.db-wal").stat().st_size > 0

        copy_ledger(live, tmp_path / "copy.db")

    assert count(tmp_path / "copy.db") == 12


def test_a_missing_ledger_is_not_created(tmp_path: Path) -> None:
    copy_ledger(tmp_path / "ledger.db", tmp_path / "copy.db")
    assert not (tmp_path / "ledger.db").exists()


def row(sku: str, status: str, reason: str | None) -> OutboxRow:
    return OutboxRow("ankorstore", sku, 4, None, 1, status, T0, reason)


def test_every_parked_variant_is_named_with_its_reason_and_fails_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outstanding = Outstanding(parked=[row("A", "parked", "Ankorstore refused: 422 bad")])

    code = report(
        {"ankorstore": ChannelTotals.of(ChannelCycle("ankorstore"))},
        {"ankorstore": outstanding},
        as_json=False,
    )

    assert code == 1
    err = capsys.readouterr().err
    assert "syncd once: ankorstore: 1 variant(s) parked" in err
    assert "syncd once: ankorstore: A parked: Ankorstore refused: 422 bad" in err


def test_variants_left_alone_by_the_config_are_listed_but_do_not_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reason = f"{ALWAYS_IN_STOCK_REASON}: Ankorstore shows the variant as always in stock"
    outstanding = Outstanding(parked=[row("A", "parked", reason)])

    code = report(
        {"ankorstore": ChannelTotals.of(ChannelCycle("ankorstore"))},
        {"ankorstore": outstanding},
        as_json=False,
    )

    assert code == 0
    assert f"ankorstore: A left alone: {reason}" in capsys.readouterr().out


def test_increases_waiting_for_an_order_feed_fail_the_run_with_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cycle = ChannelCycle("fabric", waiting=2, waiting_reasons=["2 increase(s) wait: fabric_orders"])

    code = report({"fabric": ChannelTotals.of(cycle)}, {"fabric": Outstanding()}, as_json=False)

    assert code == 1
    assert "syncd once: fabric: 2 increase(s) wait: fabric_orders" in capsys.readouterr().err
