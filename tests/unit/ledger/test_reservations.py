"""Reservations: open order lines mirrored as postings on reserved:<channel>."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.reservations import OpenLine, plan_reservations, reservation_pool
from syncd.ledger.store import Ledger
from syncd.model import Account, CursorUpdate, StockStatus

from .builders import VOID, acc, at, order

RES = StockStatus.RESERVED
POOL = reservation_pool("ankorstore")


def _reserved(balances: Mapping[Account, int], sku: str, pool: str = POOL) -> int:
    return balances.get(acc(pool, RES, sku), 0)


async def _open(ledger: Ledger) -> dict[tuple[str, str, str], int]:
    return {(r.channel, r.order_ref, r.sku): r.quantity for r in await ledger.open_reservations()}


@pytest.mark.anyio
async def test_reserve_then_release_on_a_later_observation(ledger: Ledger) -> None:
    await ledger.record_orders("ank", "p1", at(0), [order("o1", {"A": 3, "B": 1})], complete=False)
    balances = await ledger.balances()
    assert _reserved(balances, "A") == 3
    assert balances[acc(POOL, VOID, "A")] == -3
    assert await _open(ledger) == {("ankorstore", "o1", "A"): 3, ("ankorstore", "o1", "B"): 1}

    # Partly shipped: A down to 1, B gone.
    await ledger.record_orders(
        "ank", "p2", at(5), [order("o1", {"A": 1}, minutes=5)], complete=False
    )
    assert await _open(ledger) == {("ankorstore", "o1", "A"): 1}
    assert _reserved(await ledger.balances(), "B") == 0
    moves = {(r.movement, r.quantity, r.ref) for r in await ledger.explain_rows("B")}
    assert ("release", -1, "o1") in moves
    assert await ledger.check_invariants() == []


@pytest.mark.anyio
async def test_replay_is_a_noop(ledger: Ledger) -> None:
    args = ("ank", "p1", at(0), [order("o1", {"A": 3})])
    assert await ledger.record_orders(*args, complete=False)
    assert not await ledger.record_orders(*args, complete=False)
    assert _reserved(await ledger.balances(), "A") == 3


@pytest.mark.anyio
async def test_order_taken_over_by_the_warehouse_reserves_nothing(ledger: Ledger) -> None:
    await ledger.record_orders("ank", "p1", at(0), [order("o1", {"A": 3})], complete=False)
    held = order("o1", {"A": 3}, minutes=1, held=True, status="fulfillment_requested")
    await ledger.record_orders("ank", "p2", at(1), [held], complete=False)
    assert await _open(ledger) == {}
    assert {r.movement for r in await ledger.explain_rows("A")} >= {"release_warehouse"}


@pytest.mark.anyio
async def test_complete_observation_releases_absent_orders_of_that_channel(ledger: Ledger) -> None:
    await ledger.record_orders(
        "mixed",
        "p1",
        at(0),
        [order("o1", {"A": 2}), order("o2", {"A": 1}), order("f1", {"A": 5}, channel="fabric")],
        complete=False,
    )
    await ledger.record_orders(
        "ank", "p2", at(5), [order("o2", {"A": 1}, minutes=5)], complete=True
    )
    assert await _open(ledger) == {("ankorstore", "o2", "A"): 1, ("fabric", "f1", "A"): 5}
    balances = await ledger.balances()
    assert _reserved(balances, "A") == 1
    assert _reserved(balances, "A", reservation_pool("fabric")) == 5


@pytest.mark.anyio
async def test_empty_complete_observation_must_name_its_channel(ledger: Ledger) -> None:
    await ledger.record_orders("ank", "p1", at(0), [order("o1", {"A": 2})], complete=False)
    with pytest.raises(InvalidObservationError, match="channel"):
        await ledger.record_orders("ank", "p2", at(1), [], complete=True)
    assert await _open(ledger) == {("ankorstore", "o1", "A"): 2}
    await ledger.record_orders("ank", "p3", at(1), [], complete=True, channels=["ankorstore"])
    assert await _open(ledger) == {}


@pytest.mark.anyio
async def test_older_observation_of_an_order_is_ignored(ledger: Ledger) -> None:
    await ledger.record_orders(
        "ank", "p2", at(10), [order("o1", {"A": 1}, minutes=10)], complete=False
    )
    late = order("o1", {"A": 4}, minutes=3)
    await ledger.record_orders("ank", "p1", at(3), [late], complete=False)
    assert await _open(ledger) == {("ankorstore", "o1", "A"): 1}
    # A complete but older list does not release an order seen since.
    await ledger.record_orders("ank", "p0", at(5), [], complete=True, channels=["ankorstore"])
    assert await _open(ledger) == {("ankorstore", "o1", "A"): 1}


@pytest.mark.anyio
async def test_reservation_keeps_its_since_and_location(ledger: Ledger) -> None:
    await ledger.record_orders("ank", "p1", at(0), [order("o1", {"A": 3})], complete=False)
    moved = order("o1", {"A": 2}, minutes=7, location="astral:fc")
    await ledger.record_orders("ank", "p2", at(7), [moved], complete=False)
    (reservation,) = await ledger.open_reservations(skus=["A"])
    assert (reservation.quantity, reservation.location, reservation.since) == (
        2,
        "astral:fc",
        at(0),
    )
    assert await ledger.open_reservations(skus=["B"]) == []


@pytest.mark.anyio
async def test_cursor_is_committed_with_the_orders(ledger: Ledger) -> None:
    cursor = CursorUpdate("fashiontrade:orders", "page-9")
    await ledger.record_orders(
        "ft", "p9", at(0), [order("o1", {"A": 1})], complete=False, cursor=cursor
    )
    assert await ledger.cursor("fashiontrade:orders") == "page-9"


def test_plan_refuses_an_order_counted_twice() -> None:
    with pytest.raises(InvalidObservationError, match="twice"):
        plan_reservations(
            [order("o1", {"A": 1}), order("o1", {"A": 2})],
            open_lines={},
            last_seen={},
            complete_channels=(),
            observed_at=at(0),
        )


def test_plan_refuses_negative_quantities() -> None:
    with pytest.raises(InvalidObservationError, match="non-negative"):
        plan_reservations(
            [order("o1", {"A": -1})],
            open_lines={},
            last_seen={},
            complete_channels=(),
            observed_at=at(0),
        )


def test_plan_only_changes_what_moved() -> None:
    plan = plan_reservations(
        [order("o1", {"A": 2, "B": 1}, minutes=1)],
        open_lines={("ankorstore", "o1", "A"): OpenLine("activeants", 2, at(0))},
        last_seen={("ankorstore", "o1"): at(0)},
        complete_channels=(),
        observed_at=at(1),
    )
    assert [(c.sku, c.old, c.new, c.movement) for c in plan.changes] == [("B", 0, 1, "reserve")]
