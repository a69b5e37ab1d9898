"""Allocation, rule by rule, with the numbers a user would check by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest

from syncd.allocation import CatalogError, RuleError, allocate, validate_rules
from syncd.model import (
    Account,
    Bundle,
    Catalog,
    ChannelRule,
    Desired,
    ExplanationStep,
    Reservation,
    StockStatus,
    Variant,
)

AVAILABLE = StockStatus.AVAILABLE
SINCE = datetime(2024, 5, 1, tzinfo=UTC)


def _catalog(
    *singles: str, packs: Mapping[str, int] | None = None, **bundles: dict[str, int]
) -> Catalog:
    packs = packs or {}
    return Catalog(
        variants={sku: Variant(sku, pack_size=packs.get(sku, 1)) for sku in singles},
        bundles={sku: Bundle(sku, components) for sku, components in bundles.items()},
    )


def _stock(location: str = "activeants", lot: str = "", **levels: int) -> dict[Account, int]:
    return {Account(location, AVAILABLE, sku, lot): units for sku, units in levels.items()}


def _reserve(
    sku: str,
    quantity: int,
    order: str = "O-1",
    location: str = "activeants",
    channel: str = "ankorstore",
) -> Reservation:
    return Reservation(channel, order, sku, quantity, location, SINCE)


RULE = ChannelRule("ankorstore", ("activeants",))


def _by_sku(
    balances: Mapping[Account, int],
    catalog: Catalog,
    rule: ChannelRule = RULE,
    reservations: Sequence[Reservation] = (),
) -> dict[str, Desired]:
    return {d.sku: d for d in allocate(balances, reservations, catalog, [rule])}


def _rules(desired: Desired) -> list[str]:
    return [step.rule for step in desired.explanation.steps]


# --- bundles (seed 000 L13163-13171) --------------------------------------------


def test_seed_bundle_example_gives_two_limited_by_pz() -> None:
    # BX = 10 x PY + 5 x PZ with PY = 30 and PZ = 10: min(30 // 10, 10 // 5) = 2.
    catalog = _catalog("PY", "PZ", BX={"PY": 10, "PZ": 5})
    result = _by_sku(_stock(PY=30, PZ=10), catalog)
    bx = result["BX"]
    assert bx.quantity == 2
    assert bx.explanation.limiting_component == "PZ"
    assert bx.explanation.result == 2
    assert bx.explanation.steps == (
        ExplanationStep("bundle", 0, 2, "min(PY 30 // 10 = 3, PZ 10 // 5 = 2), limited by PZ"),
    )
    assert bx.explanation.inputs == {
        "PY:activeants/available/": 30,
        "PZ:activeants/available/": 10,
    }
    # The components themselves are published as they are.
    assert (result["PY"].quantity, result["PZ"].quantity) == (30, 10)


def test_the_limiting_component_changes_with_stock() -> None:
    catalog = _catalog("PY", "PZ", BX={"PY": 10, "PZ": 5})
    bx = _by_sku(_stock(PY=19, PZ=10), catalog)["BX"]
    assert bx.quantity == 1
    assert bx.explanation.limiting_component == "PY"


def test_a_tie_names_the_lowest_sku() -> None:
    catalog = _catalog("PY", "PZ", BX={"PZ": 5, "PY": 10})
    assert _by_sku(_stock(PY=20, PZ=10), catalog)["BX"].explanation.limiting_component == "PY"


def test_a_missing_component_makes_the_bundle_zero() -> None:
    catalog = _catalog("PY", "PZ", BX={"PY": 10, "PZ": 5})
    bx = _by_sku(_stock(PY=300), catalog)["BX"]
    assert bx.quantity == 0
    assert bx.explanation.limiting_component == "PZ"


def test_nested_bundles_use_the_inner_bundle_base_before_rules() -> None:
    # DUO's base is 2; at 50 % DUO itself shows 1, but GIFT (1 x DUO + 1 x CARD)
    # is built from DUO's stock, not from what DUO shows: base 2, shown 1.
    # Reading DUO's shown value would give GIFT a base of 1 and show 0.
    catalog = _catalog("PY", "PZ", "CARD", DUO={"PY": 10, "PZ": 5}, GIFT={"DUO": 1, "CARD": 1})
    rule = ChannelRule("ankorstore", ("activeants",), percentage=50)
    result = _by_sku(_stock(PY=30, PZ=10, CARD=100), catalog, rule)
    assert result["DUO"].quantity == 1
    assert result["GIFT"].quantity == 1
    gift = result["GIFT"].explanation
    assert gift.steps[0] == ExplanationStep(
        "bundle", 0, 2, "min(CARD 100 // 1 = 100, DUO 2 // 1 = 2), limited by DUO"
    )
    assert gift.limiting_component == "DUO"
    # Inputs reach through DUO down to the ledger rows of every single.
    assert set(gift.inputs) == {
        "CARD:activeants/available/",
        "PY:activeants/available/",
        "PZ:activeants/available/",
    }


def test_nested_bundle_multipliers_compound() -> None:
    catalog = _catalog("A", PAIR={"A": 2}, BOX={"PAIR": 3})
    result = _by_sku(_stock(A=25), catalog)
    assert result["PAIR"].quantity == 12
    assert result["BOX"].quantity == 4  # 12 pairs // 3


def test_balances_booked_on_a_bundle_are_ignored() -> None:
    catalog = _catalog("A", PAIR={"A": 2})
    assert _by_sku(_stock(A=4, PAIR=1000), catalog)["PAIR"].quantity == 2


# --- pool: statuses, locations, lots --------------------------------------------


def test_only_available_stock_is_sellable() -> None:
    balances = {Account("activeants", status, "A"): 7 for status in StockStatus}
    desired = _by_sku(balances, _catalog("A"))["A"]
    assert desired.quantity == 7
    assert desired.explanation.inputs == {"activeants/available/": 7}


def test_lots_are_summed_and_listed() -> None:
    balances = _stock(lot="L1", A=3) | _stock(lot="L2", A=4)
    desired = _by_sku(balances, _catalog("A"))["A"]
    assert desired.quantity == 7
    assert desired.explanation.inputs == {
        "activeants/available/L1": 3,
        "activeants/available/L2": 4,
    }


def test_astral_prefix_matches_every_astral_location_and_nothing_else() -> None:
    balances = (
        _stock("astral:w1", A=5)
        | _stock("astral:w2", A=6)
        | _stock("astral", A=100)  # no colon: not under the prefix
        | _stock("activeants", A=1000)
    )
    rule = ChannelRule("ankorstore", ("astral:*",))
    desired = _by_sku(balances, _catalog("A"), rule)["A"]
    assert desired.quantity == 11
    assert desired.explanation.inputs == {
        "astral:w1/available/": 5,
        "astral:w2/available/": 6,
    }
    assert desired.explanation.steps[0] == ExplanationStep("pool", 0, 11, "available at astral:*")


def test_exact_locations_do_not_match_as_prefixes() -> None:
    balances = _stock("activeants", A=5) | _stock("activeants-old", A=50)
    assert _by_sku(balances, _catalog("A"))["A"].quantity == 5


def test_overlapping_patterns_count_a_balance_once() -> None:
    rule = ChannelRule("ankorstore", ("astral:*", "astral:w1"))
    assert _by_sku(_stock("astral:w1", A=5), _catalog("A"), rule)["A"].quantity == 5


def test_a_negative_balance_lowers_the_pool() -> None:
    balances = _stock("astral:w1", A=-4) | _stock("astral:w2", A=10)
    rule = ChannelRule("ankorstore", ("astral:*",))
    assert _by_sku(balances, _catalog("A"), rule)["A"].quantity == 6


def test_a_negative_pool_is_clamped_and_says_so() -> None:
    desired = _by_sku(_stock(A=-3), _catalog("A"))["A"]
    assert desired.quantity == 0
    assert desired.explanation.steps == (
        ExplanationStep("pool", 0, -3, "available at activeants"),
        ExplanationStep("clamp", -3, 0, "net stock cannot go below zero"),
    )


# --- reservations (seed 000 L13159-13161) -----------------------------------------


def test_reservations_are_subtracted_and_named() -> None:
    reservations = [_reserve("A", 3, "O-1"), _reserve("A", 2, "O-2", channel="fabric")]
    desired = _by_sku(_stock(A=10), _catalog("A"), reservations=reservations)["A"]
    assert desired.quantity == 5
    assert desired.explanation.inputs == {
        "activeants/available/": 10,
        "reserved:ankorstore:O-1": 3,
        "reserved:fabric:O-2": 2,
    }
    assert _rules(desired) == ["pool", "reservations"]
    assert desired.explanation.steps[1].before == 10
    assert desired.explanation.steps[1].after == 5


def test_the_same_reservation_given_twice_counts_once() -> None:
    reservations = [_reserve("A", 3), _reserve("A", 3)]
    assert _by_sku(_stock(A=10), _catalog("A"), reservations=reservations)["A"].quantity == 7


def test_a_duplicated_reservation_with_two_quantities_keeps_the_larger() -> None:
    reservations = [_reserve("A", 3), _reserve("A", 4)]
    assert _by_sku(_stock(A=10), _catalog("A"), reservations=reservations)["A"].quantity == 6


def test_reservations_elsewhere_do_not_touch_this_pool() -> None:
    reservations = [_reserve("A", 3, location="astral:w1")]
    desired = _by_sku(_stock(A=10), _catalog("A"), reservations=reservations)["A"]
    assert desired.quantity == 10
    assert "reserved:ankorstore:O-1" not in desired.explanation.inputs


def test_reservations_beyond_the_pool_clamp_at_zero() -> None:
    desired = _by_sku(_stock(A=2), _catalog("A"), reservations=[_reserve("A", 5)])["A"]
    assert desired.quantity == 0
    assert desired.explanation.steps[-1] == ExplanationStep(
        "clamp", -3, 0, "net stock cannot go below zero"
    )


def test_non_positive_reservations_reserve_nothing() -> None:
    reservations = [_reserve("A", 0), _reserve("A", -5, "O-2")]
    assert _by_sku(_stock(A=10), _catalog("A"), reservations=reservations)["A"].quantity == 10


def test_a_reservation_on_a_bundle_reserves_its_components() -> None:
    # 1 x BX reserves 10 PY and 5 PZ (seed 000 L13115); every bundle sharing
    # a component feels it, and BX is not subtracted a second time.
    catalog = _catalog("PY", "PZ", BX={"PY": 10, "PZ": 5}, SOLO={"PZ": 1})
    result = _by_sku(_stock(PY=30, PZ=10), catalog, reservations=[_reserve("BX", 1)])
    assert result["PY"].quantity == 20
    assert result["PZ"].quantity == 5
    assert result["BX"].quantity == 1
    assert result["SOLO"].quantity == 5
    assert result["PZ"].explanation.inputs["reserved:ankorstore:O-1"] == 5
    assert result["BX"].explanation.inputs["PY:reserved:ankorstore:O-1"] == 10


def test_a_reservation_on_a_nested_bundle_reaches_the_singles() -> None:
    catalog = _catalog("PY", "PZ", "CARD", DUO={"PY": 10, "PZ": 5}, GIFT={"DUO": 2, "CARD": 1})
    reservations = [_reserve("GIFT", 1), _reserve("PY", 1, "O-2")]
    result = _by_sku(_stock(PY=100, PZ=100, CARD=10), catalog, reservations=reservations)
    assert result["PY"].quantity == 79  # 100 - 2 x 10 - 1
    assert result["PZ"].quantity == 90
    assert result["CARD"].quantity == 9
    assert result["GIFT"].quantity == 3  # DUO: min(79 // 10, 90 // 5) = 7 -> 7 // 2


# --- per-channel rules ---------------------------------------------------------------


def test_buffer_holds_back_units_and_stops_at_zero() -> None:
    rule = ChannelRule("ankorstore", ("activeants",), buffer=3)
    result = _by_sku(_stock(A=10, B=2), _catalog("A", "B"), rule)
    assert result["A"].quantity == 7
    assert result["B"].quantity == 0
    assert result["A"].explanation.steps[-1] == ExplanationStep(
        "buffer", 10, 7, "hold back 3 units"
    )


@pytest.mark.parametrize(
    ("percentage", "stock", "expected"),
    [
        (50, 7, 3),
        (29, 100, 29),  # 100 * 0.29 is 28.999999999999996 in floats
        (0.57, 10_000, 57),  # 10 000 * 0.57 / 100 is 56.99999999999999 in floats
        (33.3, 1000, 333),
        (57.99, 10_000, 5799),
        (0, 500, 0),
        (100, 10**15 + 1, 10**15 + 1),
    ],
)
def test_percentage_rounds_down_exactly(percentage: float, stock: int, expected: int) -> None:
    rule = ChannelRule("ankorstore", ("activeants",), percentage=percentage)
    assert _by_sku(_stock(A=stock), _catalog("A"), rule)["A"].quantity == expected


def test_a_full_percentage_adds_no_step() -> None:
    assert _rules(_by_sku(_stock(A=5), _catalog("A"))["A"]) == ["pool"]


def test_cap_limits_what_is_shown() -> None:
    rule = ChannelRule("ankorstore", ("activeants",), cap=20)
    result = _by_sku(_stock(A=50, B=5), _catalog("A", "B"), rule)
    assert (result["A"].quantity, result["B"].quantity) == (20, 5)


def test_whole_packs_round_down() -> None:
    catalog = _catalog("A", "B", packs={"A": 6})
    result = _by_sku(_stock(A=17, B=17), catalog)
    assert result["A"].quantity == 12
    assert result["A"].explanation.steps[-1] == ExplanationStep(
        "pack", 17, 12, "whole packs of 6 units"
    )
    assert result["B"].quantity == 17


def test_pack_rounding_can_be_turned_off() -> None:
    rule = ChannelRule("fabric", ("activeants",), pack_rounding=False)
    assert _by_sku(_stock(A=17), _catalog("A", packs={"A": 6}), rule)["A"].quantity == 17


def test_rules_apply_in_order_buffer_percentage_cap_packs() -> None:
    rule = ChannelRule("ankorstore", ("activeants",), buffer=10, percentage=50, cap=40)
    desired = _by_sku(_stock(A=100), _catalog("A", packs={"A": 6}), rule)["A"]
    assert desired.quantity == 36
    assert [(s.rule, s.before, s.after) for s in desired.explanation.steps] == [
        ("pool", 0, 100),
        ("buffer", 100, 90),
        ("percentage", 90, 45),
        ("cap", 45, 40),
        ("pack", 40, 36),
    ]
    assert desired.explanation.result == 36


def test_the_cap_applies_after_the_percentage() -> None:
    # 50 % of 100 is 50, capped to 40; capping first would give 20.
    rule = ChannelRule("ankorstore", ("activeants",), percentage=50, cap=40)
    assert _by_sku(_stock(A=100), _catalog("A"), rule)["A"].quantity == 40


def test_bundles_get_the_rules_but_are_sold_singly() -> None:
    catalog = _catalog("A", packs={"A": 6}, PAIR={"A": 2})
    rule = ChannelRule("ankorstore", ("activeants",), buffer=1)
    desired = _by_sku(_stock(A=30), catalog, rule)["PAIR"]
    assert desired.quantity == 14
    assert _rules(desired) == ["bundle", "buffer"]


# --- what is published ---------------------------------------------------------------


def test_only_catalog_skus_listed_by_the_rule_are_published() -> None:
    rule = ChannelRule("fabric", ("activeants",), skus=frozenset({"A", "PAIR", "GHOST"}))
    catalog = _catalog("A", "B", PAIR={"B": 2})
    result = _by_sku(_stock(A=1, B=4, STRAY=9), catalog, rule)
    assert set(result) == {"A", "PAIR"}
    assert result["PAIR"].quantity == 2  # built from B, which fabric does not publish


def test_every_catalog_sku_is_published_when_the_rule_lists_none() -> None:
    result = allocate({}, [], _catalog("B", "A", P={"A": 1}), [RULE])
    assert [(d.sku, d.quantity) for d in result] == [("A", 0), ("B", 0), ("P", 0)]


def test_results_are_sorted_by_channel_then_sku() -> None:
    rules = [ChannelRule("fabric", ("activeants",)), ChannelRule("ankorstore", ("activeants",))]
    result = allocate(_stock(B=1, A=2), [], _catalog("B", "A"), rules)
    assert [(d.channel, d.sku) for d in result] == [
        ("ankorstore", "A"),
        ("ankorstore", "B"),
        ("fabric", "A"),
        ("fabric", "B"),
    ]


def test_channels_on_the_same_locations_keep_their_own_rules() -> None:
    rules = [
        ChannelRule("ankorstore", ("activeants",), buffer=2),
        ChannelRule("fabric", ("activeants",), cap=5),
    ]
    result = allocate(_stock(A=10), [], _catalog("A"), rules)
    assert [(d.channel, d.quantity) for d in result] == [("ankorstore", 8), ("fabric", 5)]


def test_channels_on_different_locations_see_their_own_pool() -> None:
    rules = [ChannelRule("ankorstore", ("astral:*",)), ChannelRule("fabric", ("activeants",))]
    balances = _stock("astral:w1", A=3) | _stock("activeants", A=9)
    result = allocate(balances, [], _catalog("A"), rules)
    assert [(d.channel, d.quantity) for d in result] == [("ankorstore", 3), ("fabric", 9)]


def test_a_subset_of_skus_still_reads_bundle_components() -> None:
    catalog = _catalog("PY", "PZ", BX={"PY": 10, "PZ": 5}, GIFT={"BX": 1, "PY": 1})
    result = allocate(_stock(PY=30, PZ=10), [], catalog, [RULE], skus={"GIFT", "GHOST"})
    assert [(d.sku, d.quantity) for d in result] == [("GIFT", 2)]


# --- input that cannot be allocated over ------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (ChannelRule("a", ()), "no locations"),
        (ChannelRule("a", ("astral:*x",)), "prefix ending in '*'"),
        (ChannelRule("a", ("",)), "prefix ending in '*'"),
        (ChannelRule("a", ("x",), buffer=-1), "buffer -1 is negative"),
        (ChannelRule("a", ("x",), percentage=100.5), "not within 0-100"),
        (ChannelRule("a", ("x",), percentage=float("nan")), "not within 0-100"),
        (ChannelRule("a", ("x",), cap=-1), "cap -1 is negative"),
        (ChannelRule("", ("x",)), "empty channel name"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(rule: ChannelRule, problem: str) -> None:
    assert any(problem in p for p in validate_rules([rule]))
    with pytest.raises(RuleError, match="invalid channel rules"):
        allocate(_stock(A=1), [], _catalog("A"), [rule])


def test_two_rules_for_one_channel_are_refused() -> None:
    with pytest.raises(RuleError, match="more than one rule"):
        allocate({}, [], _catalog("A"), [RULE, RULE])


def test_good_rules_have_no_problems() -> None:
    assert validate_rules([RULE, ChannelRule("fabric", ("astral:*", "*"), 2, 12.5, 3)]) == []


def test_a_bad_catalog_is_refused_before_anything_is_computed() -> None:
    with pytest.raises(CatalogError, match="unknown SKU 'GHOST'"):
        allocate(_stock(A=1), [], _catalog("A", B={"GHOST": 1}), [RULE])
