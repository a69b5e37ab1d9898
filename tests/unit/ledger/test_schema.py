"""Schema, pragmas and migrations of the ledger file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import aiosqlite
import pytest
from structlog.testing import capture_logs

from syncd.allocation import compute_channel
from syncd.ledger.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SchemaTooNewError,
    configure,
    migrate,
)
from syncd.ledger.store import Ledger
from syncd.ledger.tokens import StoredToken, TokenKey
from syncd.model import Catalog, ChannelRule, Variant

from .builders import AV, T0, VOID, acc, movement, snapshot, transfer


@pytest.mark.anyio
async def test_durability_pragmas_are_in_force(ledger: Ledger) -> None:
    pragmas = await ledger.pragmas()
    assert pragmas["journal_mode"] == "wal"
    assert pragmas["synchronous"] == 2  # FULL
    assert pragmas["foreign_keys"] == 1
    assert pragmas["user_version"] == SCHEMA_VERSION


@pytest.mark.anyio
async def test_reopening_keeps_data_and_does_not_migrate_again(ledger_path: Path) -> None:
    with capture_logs() as first:
        async with await Ledger.open(ledger_path) as ledger:
            await ledger.record_snapshot(snapshot("s1", "wh", {"A": 4}))
    with capture_logs() as second:
        async with await Ledger.open(ledger_path) as ledger:
            assert await ledger.balances() == {acc("wh", AV, "A"): 4, acc("wh", VOID, "A"): -4}
            assert (await ledger.pragmas())["user_version"] == SCHEMA_VERSION
    assert [e["event"] for e in first if e["event"] == "ledger.migrated"] == ["ledger.migrated"]
    assert not [e for e in second if e["event"] == "ledger.migrated"]


@pytest.mark.anyio
async def test_migrations_apply_in_one_transaction(tmp_path: Path) -> None:
    """A migration that fails half-way leaves the file exactly as it was."""
    path = tmp_path / "broken.sqlite"
    broken = (("CREATE TABLE first_step (x INTEGER)",), ("CREATE TABLE oops (", "never"))
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await configure(conn)
        with pytest.raises(sqlite3.OperationalError):
            await migrate(conn, broken)
        async with conn.execute("PRAGMA user_version") as cursor:
            assert await cursor.fetchone() == (0,)
        async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cursor:
            assert await cursor.fetchall() == []


@pytest.mark.anyio
async def test_migrate_on_current_file_is_a_noop(ledger_path: Path) -> None:
    async with await Ledger.open(ledger_path):
        pass
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        assert await migrate(conn) == SCHEMA_VERSION
        assert await migrate(conn) == SCHEMA_VERSION


@pytest.mark.anyio
async def test_file_from_a_newer_syncd_is_refused(ledger_path: Path) -> None:
    async with await Ledger.open(ledger_path):
        pass
    with sqlite3.connect(ledger_path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError):
        await Ledger.open(ledger_path)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET quantity = quantity + 1",
        "DELETE FROM postings",
        "UPDATE transactions SET key = 'other'",
        "DELETE FROM transactions",
    ],
)
async def test_postings_and_transactions_are_append_only(
    ledger: Ledger, ledger_path: Path, statement: str
) -> None:
    await ledger.record(movement("t1", *transfer(acc("wh", AV, "A"), acc("wh", VOID, "A"), 3)))
    with (
        sqlite3.connect(ledger_path) as raw,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        raw.execute(statement)
    assert await ledger.balances() == {acc("wh", AV, "A"): -3, acc("wh", VOID, "A"): 3}


@pytest.mark.anyio
async def test_foreign_keys_are_enforced(ledger_path: Path) -> None:
    async with await Ledger.open(ledger_path):
        pass
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await configure(conn)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await conn.execute(
                "INSERT INTO postings (txn_id, account_id, quantity, movement) VALUES (99, 99, 1, 'x')"
            )


@pytest.mark.anyio
async def test_version_1_file_keeps_its_push_log_and_learns_unparked(ledger_path: Path) -> None:
    """Migration 2 rebuilds the push log (new ``unparked`` status); ids and rows survive."""
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await configure(conn)
        assert await migrate(conn, MIGRATIONS[:1]) == 1
        await conn.execute(
            "INSERT INTO push_log (id, channel, sku, seq, quantity, status, request_id, reply, at)"
            " VALUES (7, 'ankorstore', 'A', 1, 5, 'parked', NULL, '422', '2026-01-01T00:00:00Z')"
        )
        with pytest.raises(sqlite3.IntegrityError):
            await conn.execute(
                "INSERT INTO push_log (channel, sku, seq, quantity, status, at)"
                " VALUES ('ankorstore', 'A', 1, 5, 'unparked', '2026-01-01T00:00:01Z')"
            )
    async with await Ledger.open(ledger_path) as ledger:
        assert (await ledger.pragmas())["user_version"] == SCHEMA_VERSION
        [kept] = await ledger.push_log("ankorstore", "A")
        assert (kept.id, kept.status, kept.reply) == (7, "parked", "422")
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await conn.execute(
            "INSERT INTO push_log (channel, sku, seq, quantity, status, at)"
            " VALUES ('ankorstore', 'A', 1, 5, 'unparked', '2026-01-01T00:00:01Z')"
        )
        async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'") as cursor:
            assert "push_log_item" in [row[0] for row in await cursor.fetchall()]


@pytest.mark.anyio
async def test_version_2_file_gains_the_token_cache_and_keeps_its_rows(ledger_path: Path) -> None:
    """Migration 3 adds ``oauth_tokens``; everything a version 2 file holds stays as it was."""
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await configure(conn)
        assert await migrate(conn, MIGRATIONS[:2]) == 2
        await conn.execute(
            "INSERT INTO push_log (id, channel, sku, seq, quantity, status, at)"
            " VALUES (3, 'fabric', 'B', 2, 4, 'unparked', '2026-01-01T00:00:00Z')"
        )
    with capture_logs() as logs:
        async with await Ledger.open(ledger_path) as ledger:
            assert (await ledger.pragmas())["user_version"] == SCHEMA_VERSION
            [kept] = await ledger.push_log("fabric", "B")
            assert (kept.id, kept.status) == (3, "unparked")
            key = TokenKey("ankorstore", "https://a.test/oauth/token", "client")
            await ledger.save_token(key, StoredToken("tok", 10.0, 3610.0))
            assert await ledger.load_token(key) == StoredToken("tok", 10.0, 3610.0)
    assert {
        "event": "ledger.migrated",
        "from_version": 2,
        "to_version": SCHEMA_VERSION,
        "log_level": "info",
    } in [
        {k: v for k, v in e.items() if k in ("event", "from_version", "to_version", "log_level")}
        for e in logs
    ]
    with sqlite3.connect(ledger_path) as raw, pytest.raises(sqlite3.IntegrityError):
        raw.execute(
            "INSERT INTO oauth_tokens VALUES ('a', 'u', 'c', 'tok', 10.0, 5.0)"
        )  # an expiry before the token was obtained is refused


@pytest.mark.anyio
async def test_version_3_file_learns_own_reserved_and_keeps_its_outbox(ledger_path: Path) -> None:
    """Migration 4 adds the units of a channel's own orders to each outbox row (0 before)."""
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await configure(conn)
        assert await migrate(conn, MIGRATIONS[:3]) == 3
        await conn.execute(
            "INSERT INTO outbox (channel, sku, desired, acknowledged, seq, status, updated_at)"
            " VALUES ('ankorstore', 'A', 5, 5, 1, 'acknowledged', '2026-01-01T00:00:00Z')"
        )
    async with await Ledger.open(ledger_path) as ledger:
        assert (await ledger.pragmas())["user_version"] == SCHEMA_VERSION
        [row] = await ledger.outbox_rows("ankorstore")
        assert (row.desired, row.acknowledged, row.own_reserved, row.status) == (
            5,
            5,
            0,
            "acknowledged",
        )
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        with pytest.raises(sqlite3.IntegrityError):  # never more own units than the value
            await conn.execute("UPDATE outbox SET own_reserved = 6 WHERE sku = 'A'")


@pytest.mark.anyio
async def test_version_4_file_gets_the_push_queue_index_and_keeps_its_outbox(
    ledger_path: Path,
) -> None:
    """Migration 5 adds the planner class column and ``outbox_queue``; rows stay as they were."""
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await configure(conn)
        assert await migrate(conn, MIGRATIONS[:4]) == 4
        await conn.executemany(
            "INSERT INTO outbox (channel, sku, desired, acknowledged, seq, status, updated_at,"
            " own_reserved) VALUES ('ankorstore', ?, ?, ?, 1, ?, ?, 0)",
            [
                ("UP", 6, 2, "pending", "2026-01-01T00:00:00.000000+00:00"),
                ("NEW", 3, None, "pending", "2026-01-01T00:00:01.000000+00:00"),
                ("ZERO", 0, 4, "failed", "2026-01-01T00:00:02.000000+00:00"),
                ("DOWN", 1, 4, "sent", "2026-01-01T00:00:03.000000+00:00"),
                ("SAME", 5, 5, "acknowledged", "2026-01-01T00:00:04.000000+00:00"),
                ("HELD", 0, 4, "parked", "2026-01-01T00:00:05.000000+00:00"),
            ],
        )
    async with await Ledger.open(ledger_path) as ledger:
        assert (await ledger.pragmas())["user_version"] == SCHEMA_VERSION
        queue = await ledger.next_pending("ankorstore", 10)
        assert [row.sku for row in queue] == ["ZERO", "DOWN", "NEW", "UP"]
        assert [
            row.sku for row in await ledger.next_pending("ankorstore", 10, increases=False)
        ] == [
            "ZERO",
            "DOWN",
            "NEW",
        ]
        assert (await ledger.outbox_counts("ankorstore")) == (4, 1)
        assert len(await ledger.outbox_rows("ankorstore")) == 6
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        async with conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'") as cursor:
            indexes = {row[0] for row in await cursor.fetchall()}
        assert "outbox_queue" in indexes
        assert "outbox_pending" not in indexes  # replaced: one index less to write
        async with conn.execute("SELECT sku, push_class FROM outbox ORDER BY sku") as cursor:
            assert {row[0]: row[1] for row in await cursor.fetchall()} == {
                "DOWN": 1,
                "HELD": 0,
                "NEW": 2,
                "SAME": 3,
                "UP": 3,
                "ZERO": 0,
            }
        # The class follows every write: it is computed from the row, never stored stale.
        await conn.execute("UPDATE outbox SET acknowledged = 9 WHERE sku = 'UP'")
        async with conn.execute("SELECT push_class FROM outbox WHERE sku = 'UP'") as cursor:
            assert await cursor.fetchone() == (1,)


@pytest.mark.anyio
async def test_version_4_file_keeps_its_explanations_and_learns_compact_bases(
    ledger_path: Path,
) -> None:
    """The lean-recompute migration: ``basis_key``, ``allocation_rules``, ``accounts_available``.

    An outbox row written before it keeps its explanation as written out (shown
    as stored); the first recompute after it replaces that with a compact basis
    without touching the value's seq.
    """
    legacy = (
        '{"channel":"fabric","inputs":{"activeants/available/":5},"limiting_component":null,'
        '"result":5,"sku":"A","steps":[{"after":5,"before":0,"detail":"available at '
        'activeants","rule":"pool"}]}'
    )
    async with aiosqlite.connect(ledger_path, isolation_level=None) as conn:
        await configure(conn)
        assert await migrate(conn, MIGRATIONS[:4]) == 4
        await conn.execute(
            "INSERT INTO outbox (channel, sku, desired, acknowledged, seq, status, updated_at,"
            " explanation) VALUES ('fabric', 'A', 5, 5, 3, 'acknowledged',"
            " '2026-01-01T00:00:00Z', ?)",
            (legacy,),
        )
    async with await Ledger.open(ledger_path) as ledger:
        assert (await ledger.pragmas())["user_version"] == SCHEMA_VERSION
        stored = await ledger.explanation("fabric", "A")
        assert stored is not None
        assert stored["steps"][0]["detail"] == "available at activeants"
        await ledger.record_snapshot(snapshot("s1", "activeants", {"A": 5}))
        rule = ChannelRule("fabric", ("activeants",))
        txn, pools, held = await ledger.allocation_inputs(rule.locations)
        values = compute_channel(pools, held, Catalog({"A": Variant("A")}), rule)
        assert await ledger.write_desired(values, [rule], txn, T0, complete=True) == 0
        [row] = await ledger.outbox_rows("fabric")
        assert (row.desired, row.seq, row.status) == (5, 3, "acknowledged")
        assert await ledger.explanation("fabric", "A") == json.loads(legacy)
    with sqlite3.connect(ledger_path) as raw:
        (stored_text,) = raw.execute("SELECT explanation FROM outbox").fetchone()
        plan = raw.execute(
            "EXPLAIN QUERY PLAN SELECT a.sku FROM accounts a INDEXED BY accounts_available"
            " WHERE a.status = 'available'"
        ).fetchall()
    assert stored_text != legacy  # now a compact basis
    assert len(stored_text) < len(legacy) / 2
    assert plan  # the partial index exists (INDEXED BY fails otherwise)
