"""Allocation for a channel that subtracts its own orders (Ankorstore), and channel packs.

Ankorstore shows ``availableQuantity = stockQuantity - reservedQuantity``
(seed 000 L1180-1190, L1806-1810). syncd writes the sellable quantity plus
the units of Ankorstore's own open orders it subtracted, so what retailers see
is syncd's number whether or not syncd has seen an order yet.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.allocation import RuleError, allocate
from syncd.model import (
    Account,
    Bundle,
    Catalog,
    ChannelRule,
    Desired,
    Reservation,
    StockStatus,
    Variant,
)

SINCE = datetime(2024, 5, 1, tzinfo=UTC)
ANKORSTORE = ChannelRule("ankorstore", ("activeants",), adds_own_orders=True)
FABRIC = ChannelRule("fabric", ("activeants",))


def stock(**levels: int) -> dict[Account, int]:
    return {Account("activeants", StockStatus.AVAILABLE, s, ""): q for s, q in levels.items()}


def order(
    channel: str, sku: str, quantity: int, ref: str = "O-1", location: str = "activeants"
) -> Reservation:
    return Reservation(channel, ref, sku, quantity, location, SINCE)


def by_key(result: list[Desired]) -> dict[tuple[str, str], Desired]:
    return {(d.channel, d.sku): d for d in result}


CATALOG = Catalog(variants={"A": Variant("A"), "B": Variant("B")})


def shown_by_ankorstore(desired: Desired, reserved_on_ankorstore: int) -> int:
    """What Ankorstore offers for a written stockQuantity (never below zero)."""
    return max(0, desired.quantity - reserved_on_ankorstore)


def test_worked_example_ankorstore_is_written_sellable_plus_its_own_orders() -> None:
    # 40 at the warehouse; Ankorstore order of 5, fabric order of 3.
    # Sellable 32 everywhere; Ankorstore gets 32 + 5 = 37 and shows 37 - 5 = 32.
    result = by_key(
        allocate(
            stock(A=40),
            [order("ankorstore", "A", 5), order("fabric", "A", 3, "F-1")],
            CATALOG,
            [ANKORSTORE, FABRIC],
        )
    )
    ankorstore, fabric = result[("ankorstore", "A")], result[("fabric", "A")]
    assert (fabric.quantity, fabric.own_reserved) == (32, 0)
    assert (ankorstore.quantity, ankorstore.own_reserved, ankorstore.sellable) == (37, 5, 32)
    assert shown_by_ankorstore(ankorstore, reserved_on_ankorstore=5) == 32
    last = ankorstore.explanation.steps[-1]
    assert (last.rule, last.before, last.after) == ("own_orders", 32, 37)
    assert ankorstore.explanation.result == 37  # the explanation ends at the number sent


def test_orders_syncd_has_not_seen_are_subtracted_by_ankorstore_alone() -> None:
    before = by_key(allocate(stock(A=40), [], CATALOG, [ANKORSTORE]))[("ankorstore", "A")]
    # An order of 4 placed on Ankorstore, not yet polled: Ankorstore shows 36.
    assert shown_by_ankorstore(before, reserved_on_ankorstore=4) == 36
    # Cancelled before syncd saw it: 40 again, nothing given back twice.
    assert shown_by_ankorstore(before, reserved_on_ankorstore=0) == 40
    # Seen by syncd: the value written does not move, Ankorstore still shows 36.
    seen = by_key(allocate(stock(A=40), [order("ankorstore", "A", 4)], CATALOG, [ANKORSTORE]))
    assert seen[("ankorstore", "A")].quantity == 40
    assert shown_by_ankorstore(seen[("ankorstore", "A")], reserved_on_ankorstore=4) == 36


def test_an_order_the_pool_could_not_cover_is_not_added_back() -> None:
    # 3 units, fabric holds 5: nothing is left, so the Ankorstore order of 2
    # lowered nothing. Adding it back would offer 2 units that are not there
    # the moment Ankorstore cancels it.
    result = by_key(
        allocate(
            stock(A=3),
            [order("ankorstore", "A", 2), order("fabric", "A", 5, "F-1")],
            CATALOG,
            [ANKORSTORE],
        )
    )[("ankorstore", "A")]
    assert (result.sellable, result.own_reserved, result.quantity) == (0, 0, 0)
    assert shown_by_ankorstore(result, reserved_on_ankorstore=2) == 0
    assert shown_by_ankorstore(result, reserved_on_ankorstore=0) == 0
    # With 6 units, 1 is left after fabric: the order took that 1, and only it comes back.
    partly = by_key(
        allocate(
            stock(A=6),
            [order("ankorstore", "A", 2), order("fabric", "A", 5, "F-1")],
            CATALOG,
            [ANKORSTORE],
        )
    )[("ankorstore", "A")]
    assert (partly.sellable, partly.own_reserved, partly.quantity) == (0, 1, 1)
    assert shown_by_ankorstore(partly, reserved_on_ankorstore=0) == 1


def test_only_orders_on_the_channel_s_own_locations_and_sku_are_added() -> None:
    result = by_key(
        allocate(
            stock(A=40, B=10),
            [
                order("ankorstore", "A", 5),
                order("ankorstore", "A", 7, "O-2", location="astral:paris"),  # other pool
                order("ankorstore", "B", 2, "O-3"),
            ],
            CATALOG,
            [ANKORSTORE],
        )
    )
    assert (result[("ankorstore", "A")].quantity, result[("ankorstore", "A")].own_reserved) == (
        40,
        5,
    )
    assert (result[("ankorstore", "B")].quantity, result[("ankorstore", "B")].own_reserved) == (
        10,
        2,
    )


def test_a_bundle_adds_back_the_orders_for_the_bundle_itself() -> None:
    catalog = Catalog(
        variants={"PY": Variant("PY"), "PZ": Variant("PZ")},
        bundles={"BX": Bundle("BX", {"PY": 10, "PZ": 5})},
    )
    # One BX ordered on Ankorstore reserves 10 PY + 5 PZ: PY 30-10=20, PZ 15-5=10 -> BX 2.
    result = by_key(
        allocate(stock(PY=30, PZ=15), [order("ankorstore", "BX", 1)], catalog, [ANKORSTORE])
    )
    bx = result[("ankorstore", "BX")]
    assert (bx.sellable, bx.own_reserved, bx.quantity) == (2, 1, 3)
    # The components' own number counts no Ankorstore order of theirs.
    assert result[("ankorstore", "PY")].own_reserved == 0


def test_a_channel_that_does_not_subtract_its_orders_gets_the_sellable_number() -> None:
    result = by_key(allocate(stock(A=40), [order("fabric", "A", 3)], CATALOG, [FABRIC]))
    assert (result[("fabric", "A")].quantity, result[("fabric", "A")].own_reserved) == (37, 0)


def test_the_channel_s_own_pack_wins_over_the_catalog_and_rounds_once() -> None:
    catalog = Catalog(variants={"WINE": Variant("WINE", pack_size=1)})
    result = by_key(
        allocate(
            stock(WINE=20),
            [order("ankorstore", "WINE", 6)],
            catalog,
            [ANKORSTORE],
            packs={"ankorstore": {"WINE": 6}},
        )
    )[("ankorstore", "WINE")]
    # 20 - 6 reserved = 14 -> 12 in whole cases of 6, + the 6 of the order = 18.
    assert (result.sellable, result.quantity) == (12, 18)
    rules = [(s.rule, s.before, s.after) for s in result.explanation.steps]
    assert ("pack", 14, 12) in rules
    assert rules[-1] == ("own_orders", 12, 18)


def test_a_channel_pack_applies_even_without_catalog_pack_rounding() -> None:
    rule = ChannelRule("ankorstore", ("activeants",), pack_rounding=False, adds_own_orders=True)
    catalog = Catalog(variants={"WINE": Variant("WINE", pack_size=12)})
    plain = by_key(allocate(stock(WINE=20), [], catalog, [rule]))[("ankorstore", "WINE")]
    assert plain.quantity == 20  # the catalog's pack is not applied
    packed = by_key(
        allocate(stock(WINE=20), [], catalog, [rule], packs={"ankorstore": {"WINE": 6}})
    )
    assert packed[("ankorstore", "WINE")].quantity == 18


@pytest.mark.parametrize("size", [0, -6])
def test_an_impossible_channel_pack_is_refused(size: int) -> None:
    with pytest.raises(RuleError, match="pack size"):
        allocate(stock(A=1), [], CATALOG, [ANKORSTORE], packs={"ankorstore": {"A": size}})


# --- the promise, for any stock, rules and orders -------------------------------------

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ChannelRule, int, int, list[int], list[int], int]:
    pack = draw(st.sampled_from([1, 1, 2, 6]))
    rule = ChannelRule(
        "ankorstore",
        ("activeants",),
        buffer=draw(st.integers(0, 10)),
        percentage=draw(st.sampled_from([100.0, 90.0, 50.0, 33.3])),
        cap=draw(st.none() | st.integers(0, 60)),
        adds_own_orders=True,
    )
    pool = draw(st.integers(0, 200))
    others = draw(st.integers(0, 50))  # other channels' orders on the same stock
    seen = draw(st.lists(st.integers(1, 5).map(lambda n: n * pack), max_size=4))
    unseen = draw(st.lists(st.integers(1, 5).map(lambda n: n * pack), max_size=3))
    return rule, pool, others, seen, unseen, pack


def _written(rule: ChannelRule, pool: int, others: int, orders: list[int], pack: int) -> Desired:
    catalog = Catalog(variants={"A": Variant("A", pack_size=pack)})
    reservations = [order("fabric", "A", others, "F")] if others else []
    reservations += [order("ankorstore", "A", q, f"O-{i}") for i, q in enumerate(orders)]
    [desired] = allocate(
        stock(A=pool), reservations, catalog, [rule], packs={"ankorstore": {"A": pack}}
    )
    return desired


@given(scenarios())
def test_an_ankorstore_order_seen_or_not_never_raises_available_above_the_truth(
    scenario: tuple[ChannelRule, int, int, list[int], list[int], int],
) -> None:
    rule, pool, others, seen, unseen, pack = scenario
    written = _written(rule, pool, others, seen, pack)
    # Placed on Ankorstore but not yet polled: Ankorstore subtracts them itself.
    truth = _written(rule, pool, others, seen + unseen, pack).sellable
    assert shown_by_ankorstore(written, sum(seen) + sum(unseen)) <= truth
    # Every order seen: Ankorstore shows exactly syncd's number.
    assert shown_by_ankorstore(written, sum(seen)) == written.sellable
    # Seen, then cancelled before the next poll: never more than is physically there.
    physical = max(0, pool - others)
    assert shown_by_ankorstore(written, 0) <= physical


def test_a_bundle_sharing_a_single_between_components_adds_back_no_more_than_its_orders() -> None:
    # BND = 1 x B0 + 2 x L, and B0 = 1 x L: one BND holds 3 L. One BND ordered on
    # Ankorstore reserves 3 L; Ankorstore subtracts exactly 1 BND from what syncd writes.
    catalog = Catalog(
        variants={"L": Variant("L")},
        bundles={"B0": Bundle("B0", {"L": 1}), "BND": Bundle("BND", {"B0": 1, "L": 2})},
    )
    result = by_key(allocate(stock(L=10), [order("ankorstore", "BND", 1)], catalog, [ANKORSTORE]))
    bnd = result[("ankorstore", "BND")]
    assert bnd.own_reserved <= 1
    assert shown_by_ankorstore(bnd, reserved_on_ankorstore=1) <= bnd.sellable
