"""Desired values written from a recompute, and explanations rendered from their basis."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import pytest

from syncd.allocation import Value, allocate, compute_channel
from syncd.ledger.codec import explanation_to_json
from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.store import Ledger
from syncd.model import Bundle, Catalog, ChannelRule, StockStatus, Variant

from .builders import AV, at, order, snapshot

pytestmark = pytest.mark.anyio

CATALOG = Catalog(
    {s: Variant(s) for s in ("PY", "PZ", "Q", "BX")},
    {"BX": Bundle("BX", {"PY": 10, "PZ": 5})},
)
ANKORSTORE = ChannelRule(
    "ankorstore", ("activeants", "astral:*"), buffer=2, cap=25, adds_own_orders=True
)
FABRIC = ChannelRule("fabric", ("activeants",), percentage=50.0)


async def _stock(ledger: Ledger) -> None:
    await ledger.record_snapshot(
        snapshot("aa-1", "activeants", {(AV, "PY", ""): 30, (AV, "PZ", ""): 10, (AV, "Q", ""): 7})
    )
    await ledger.record_snapshot(
        snapshot(
            "as-1",
            "astral:w1",
            {(AV, "PY", "L1"): 4, (AV, "PY", "L2"): 6, (StockStatus.DAMAGED, "Q", ""): 9},
            source="astral",
        )
    )
    await ledger.record_orders(
        "orders",
        "o-1",
        at(1),
        [order("A-1", {"PZ": 2}), order("F-1", {"BX": 1}, channel="fabric")],
        complete=False,
    )


async def _recompute(ledger: Ledger, rule: ChannelRule, minutes: int = 2) -> int:
    txn, pools, held = await ledger.allocation_inputs(rule.locations)
    values = compute_channel(pools, held, CATALOG, rule)
    return await ledger.write_desired(values, [rule], txn, at(minutes), complete=True)


async def _oracle(ledger: Ledger, rules: Sequence[ChannelRule]) -> dict[tuple[str, str], object]:
    """Every explanation as allocation writes it out from the ledger's current rows."""
    desired = allocate(await ledger.balances(), await ledger.open_reservations(), CATALOG, rules)
    return {(d.channel, d.sku): explanation_to_json(d.explanation) for d in desired}


async def test_rendered_explanations_equal_allocations_own(ledger: Ledger) -> None:
    await _stock(ledger)
    assert await _recompute(ledger, ANKORSTORE) == 4
    assert await _recompute(ledger, FABRIC) == 4
    expected = await _oracle(ledger, [ANKORSTORE, FABRIC])
    for channel, sku in expected:
        assert await ledger.explanation(channel, sku) == expected[channel, sku], (channel, sku)
    bundle = await ledger.explanation("ankorstore", "BX")
    assert bundle is not None
    assert bundle["limiting_component"] == "PZ"
    assert bundle["inputs"]["PY:astral:w1/available/L2"] == 6
    assert bundle["inputs"]["PY:reserved:fabric:F-1"] == 10
    assert await ledger.explanation("fabric", "NOPE") is None


async def test_an_explanation_shows_the_balances_its_value_was_computed_from(
    ledger: Ledger,
) -> None:
    """Later postings do not change an explanation: the ledger is read as of its transaction."""
    await _stock(ledger)
    await _recompute(ledger, FABRIC)
    before = await ledger.explanation("fabric", "Q")
    await ledger.record_snapshot(snapshot("aa-2", "activeants", {"Q": 99}))
    assert await ledger.explanation("fabric", "Q") == before
    assert before is not None
    assert before["inputs"] == {"activeants/available/": 7}
    await _recompute(ledger, FABRIC, minutes=3)
    after = await ledger.explanation("fabric", "Q")
    assert after is not None
    assert (after["inputs"], after["result"]) == ({"activeants/available/": 99}, 49)


async def test_a_restart_with_unchanged_values_writes_nothing_and_reads_no_explanation(
    ledger: Ledger,
) -> None:
    await _stock(ledger)
    await _recompute(ledger, ANKORSTORE)
    conn = ledger._db._conn
    read: list[tuple[str | None, str | None]] = []

    def watch(action: int, table: str | None, column: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ:
            read.append((table, column))
        return sqlite3.SQLITE_OK

    await conn.set_authorizer(watch)
    changes = conn.total_changes
    try:
        assert await _recompute(ledger, ANKORSTORE, minutes=5) == 0
    finally:
        await conn.set_authorizer(None)
    assert ("outbox", "explanation") not in read
    assert ("outbox", "desired") in read  # the comparison did run
    assert conn.total_changes == changes  # no row written (rule ids included)


async def test_only_a_changed_value_gets_a_new_seq_and_a_moved_basis_is_rewritten(
    ledger: Ledger,
) -> None:
    await _stock(ledger)
    await _recompute(ledger, ANKORSTORE)
    rows = {r.sku: r for r in await ledger.outbox_rows("ankorstore")}
    # More PY behind the cap: PY's value stays 25, its basis (the pool) moves.
    await ledger.record_snapshot(snapshot("aa-2", "activeants", {"PY": 50, "Q": 1}))
    assert await _recompute(ledger, ANKORSTORE, minutes=3) == 1  # only Q's value changed
    after = {r.sku: r for r in await ledger.outbox_rows("ankorstore")}
    assert (after["PY"].desired, after["PY"].seq) == (25, rows["PY"].seq)
    assert (after["Q"].desired, after["Q"].seq) == (0, rows["Q"].seq + 1)
    assert after["Q"].status == "pending"
    explained = await ledger.explanation("ankorstore", "PY")
    assert explained is not None
    assert explained["steps"][0]["after"] == 60  # 50 at activeants + 10 at astral:w1
    assert explained == (await _oracle(ledger, [ANKORSTORE]))["ankorstore", "PY"]


@pytest.mark.parametrize(
    ("quantity", "own", "sku", "message"),
    [
        (-1, 0, "B", "never pushed"),
        (3, 4, "B", "own orders 4 outside 0..3"),
        (3, 0, "A", "appears twice"),
    ],
)
async def test_refused_values_write_nothing(
    ledger: Ledger, quantity: int, own: int, sku: str, message: str
) -> None:
    rule = ChannelRule("fabric", ("activeants",))
    good: Value = ("fabric", "A", 1, 0, 1, 0, 1, ())
    bad: Value = ("fabric", sku, quantity, own, 1, 0, 1, ())
    with pytest.raises(InvalidObservationError, match=message):
        await ledger.write_desired([good, bad], [rule], 0, at(0))
    assert await ledger.outbox_rows() == []


async def test_pools_match_ids_and_prefixes_exactly(ledger: Ledger) -> None:
    for location, units in (("astral:w1", 1), ("astral:w2", 2), ("astralX", 4), ("ASTRAL:w3", 8)):
        await ledger.record_snapshot(snapshot(f"s-{location}", location, {"S": units}))
    await ledger.record_snapshot(snapshot("s-pct", "a%b", {"S": 16, "T": 5}))
    await ledger.record_snapshot(
        snapshot("s-void", "activeants", {(StockStatus.RESERVED, "S", ""): 32})
    )
    _, pools, _ = await ledger.allocation_inputs(("astral:*",))
    assert pools == {"S": 3}
    _, pools, _ = await ledger.allocation_inputs(("a%b", "astralX"), ["S"])
    assert pools == {"S": 20}
    _, pools, _ = await ledger.allocation_inputs(("a_b", "a%*"))
    assert pools == {"S": 16, "T": 5}
