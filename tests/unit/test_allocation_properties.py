"""Allocation properties over random catalogs, ledgers, reservations and rules.

`_reference` recomputes every quantity the slow, obvious way (full scans,
recursion without memo) so the optimised `allocate` is checked against an
independent reading of the rules, not against itself.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.allocation import allocate
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

LOCATIONS = ("activeants", "astral:w1", "astral:w2", "astral", "other")
PATTERNS = ("activeants", "astral:*", "astral:w1", "astral", "*", "activeants", "nowhere")
SINCE = datetime(2024, 5, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    catalog: Catalog
    balances: dict[Account, int]
    reservations: list[Reservation]
    rules: list[ChannelRule]

    def run(self, skus: Collection[str] | None = None) -> list[Desired]:
        return allocate(self.balances, self.reservations, self.catalog, self.rules, skus=skus)


SINGLES = tuple(f"S{i}" for i in range(5))
BUNDLES = tuple(f"B{i}" for i in range(4))
NAMES = (*SINGLES, *BUNDLES, "STRAY")
"""SKUs a ledger row may name: those the drawn catalog lacks are strays."""

# Strategies are built once: building them inside the composite dominated the run time.
_accounts = st.builds(
    Account,
    st.sampled_from(LOCATIONS),
    st.sampled_from(list(StockStatus)),
    st.sampled_from(NAMES),
    st.sampled_from(["", "L1", "L2"]),
)
_stocked = st.builds(
    Account,
    st.sampled_from(LOCATIONS),
    st.just(StockStatus.AVAILABLE),
    st.sampled_from(SINGLES),
    st.sampled_from(["", "L1", "L2"]),
)
# Mostly sellable stock of catalog singles, so outputs are rarely all zero;
# the rest is noise of every status, stray SKUs and negative balances.
_balances = st.dictionaries(
    st.one_of(_stocked, _stocked, _accounts),
    st.one_of(st.integers(0, 200), st.integers(-20, 200)),
    max_size=30,
)
_reservations = st.lists(
    st.builds(
        Reservation,
        st.sampled_from(["ankorstore", "fabric"]),
        st.sampled_from(["O-1", "O-2", "O-3"]),
        st.sampled_from(NAMES),
        st.integers(-2, 15),
        st.sampled_from(LOCATIONS),
        st.just(SINCE),
    ),
    max_size=8,
)
_percentages = st.one_of(
    st.just(100.0),
    st.integers(0, 100).map(float),
    st.sampled_from([12.5, 29.0, 33.3, 57.99, 99.9]),
    st.floats(0, 100, allow_nan=False),
)
_rules = st.lists(
    st.builds(
        ChannelRule,
        st.just(""),
        st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3, unique=True).map(tuple),
        st.integers(0, 20),
        _percentages,
        st.none() | st.integers(0, 300),
        st.booleans(),
        st.none() | st.frozensets(st.sampled_from([*NAMES, "GHOST"])),
    ),
    min_size=1,
    max_size=3,
).map(lambda rules: [replace(r, channel=f"ch{i}") for i, r in enumerate(rules)])
_packs = st.sampled_from([1, 1, 2, 3, 6])
_levels = st.integers(0, 300)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    singles = SINGLES[: draw(st.sampled_from(range(1, len(SINGLES) + 1)))]
    variants = {s: Variant(s, pack_size=draw(_packs)) for s in singles}
    bundles: dict[str, Bundle] = {}
    for sku in BUNDLES[: draw(st.sampled_from(range(len(BUNDLES) + 1)))]:
        # Components drawn from singles and earlier bundles: nested, never cyclic.
        pool = [*singles, *bundles]
        components = draw(
            st.dictionaries(st.sampled_from(pool), st.integers(1, 5), min_size=1, max_size=3)
        )
        bundles[sku] = Bundle(sku, components)
    # Every single starts with some stock at a location most rules read.
    balances = {Account("activeants", StockStatus.AVAILABLE, sku): draw(_levels) for sku in singles}
    balances |= draw(_balances)
    return Scenario(Catalog(variants, bundles), balances, draw(_reservations), draw(_rules))


# --- the obvious implementation ------------------------------------------------------


def _matches(location: str, patterns: Sequence[str]) -> bool:
    return any(location.startswith(p[:-1]) if p.endswith("*") else location == p for p in patterns)


def _units(catalog: Catalog, sku: str, single: str) -> int:
    """Units of ``single`` in one ``sku`` (1 or 0 for a single)."""
    bundle = catalog.bundles.get(sku)
    if bundle is None:
        return int(sku == single)
    return sum(m * _units(catalog, c, single) for c, m in bundle.components.items())


def _base(s: Scenario, rule: ChannelRule, sku: str) -> int:
    bundle = s.catalog.bundles.get(sku)
    if bundle is not None:
        return min(_base(s, rule, c) // m for c, m in bundle.components.items())
    pool = sum(
        q
        for a, q in s.balances.items()
        if a.sku == sku and a.status == "available" and _matches(a.location, rule.locations)
    )
    orders: dict[tuple[str, str, str, str], int] = {}
    for r in s.reservations:
        if r.quantity > 0 and _matches(r.location, rule.locations):
            key = (r.channel, r.order_ref, r.sku, r.location)
            orders[key] = max(orders.get(key, 0), r.quantity)
    reserved = sum(
        q * _units(s.catalog, key[2], sku)
        for key, q in orders.items()
        if key[2] in s.catalog.variants or key[2] in s.catalog.bundles
    )
    return max(0, pool - reserved)


def _reference(s: Scenario) -> dict[tuple[str, str], int]:
    result = {}
    for rule in s.rules:
        for sku in {*s.catalog.variants, *s.catalog.bundles}:
            if rule.skus is not None and sku not in rule.skus:
                continue
            q = max(0, _base(s, rule, sku) - rule.buffer)
            q = int(q * Decimal(repr(rule.percentage)) / 100)
            if rule.cap is not None:
                q = min(q, rule.cap)
            variant = s.catalog.variants.get(sku)
            if rule.pack_rounding and variant is not None:
                q -= q % variant.pack_size
            result[rule.channel, sku] = q
    return result


def _quantities(desired: Sequence[Desired]) -> dict[tuple[str, str], int]:
    return {(d.channel, d.sku): d.quantity for d in desired}


def _neutral(s: Scenario) -> Scenario:
    """The same scenario with rules that publish the base of every SKU."""
    rules = [ChannelRule(r.channel, r.locations, pack_rounding=False) for r in s.rules]
    return replace(s, rules=rules)


# --- properties ----------------------------------------------------------------------------


@given(scenarios())
def test_matches_the_obvious_implementation(s: Scenario) -> None:
    assert _quantities(s.run()) == _reference(s)


@given(scenarios())
def test_never_negative_and_explained_step_by_step(s: Scenario) -> None:
    for d in s.run():
        assert d.quantity >= 0
        steps = d.explanation.steps
        assert steps[0].before == 0
        assert all(a.after == b.before for a, b in itertools.pairwise(steps))
        assert steps[-1].after == d.quantity == d.explanation.result
        assert (d.explanation.channel, d.explanation.sku) == (d.channel, d.sku)


@given(scenarios())
def test_never_above_the_confirmed_stock_the_rule_allows(s: Scenario) -> None:
    rules = {r.channel: r for r in s.rules}
    for d in s.run():
        rule = rules[d.channel]
        # Upper bound from available stock alone, ignoring reservations.
        assert d.quantity <= max(0, _confirmed(s, rule, d.sku) - rule.buffer)
        if rule.cap is not None:
            assert d.quantity <= rule.cap
        if rule.percentage < 100:
            assert d.quantity <= _confirmed(s, rule, d.sku) * rule.percentage / 100 + 1e-9


def _confirmed(s: Scenario, rule: ChannelRule, sku: str) -> int:
    bundle = s.catalog.bundles.get(sku)
    if bundle is not None:
        return min(_confirmed(s, rule, c) // m for c, m in bundle.components.items())
    return max(
        0,
        sum(
            q
            for a, q in s.balances.items()
            if a.sku == sku and a.status == "available" and _matches(a.location, rule.locations)
        ),
    )


@given(scenarios(), st.data())
def test_adding_stock_never_lowers_any_output(s: Scenario, data: st.DataObject) -> None:
    before = _quantities(s.run())
    account = Account(
        data.draw(st.sampled_from(LOCATIONS)),
        StockStatus.AVAILABLE,
        data.draw(st.sampled_from(sorted(s.catalog.variants))),
        data.draw(st.sampled_from(["", "L1", "L9"])),
    )
    more = dict(s.balances)
    more[account] = more.get(account, 0) + data.draw(st.integers(1, 100))
    after = _quantities(replace(s, balances=more).run())
    assert all(after[key] >= before[key] for key in before)


@given(scenarios(), st.data())
def test_releasing_a_reservation_never_lowers_any_output(s: Scenario, data: st.DataObject) -> None:
    if not s.reservations:
        return
    gone = data.draw(st.sampled_from(s.reservations))
    fewer = [r for r in s.reservations if r != gone]
    before = _quantities(s.run())
    after = _quantities(replace(s, reservations=fewer).run())
    assert all(after[key] >= before[key] for key in before)


@given(scenarios())
def test_a_bundle_never_exceeds_any_component_limit(s: Scenario) -> None:
    bases = _quantities(_neutral(s).run())
    for d in s.run():
        bundle = s.catalog.bundles.get(d.sku)
        if bundle is None:
            continue
        limits = {c: bases[d.channel, c] // m for c, m in bundle.components.items()}
        assert all(d.quantity <= limit for limit in limits.values())
        # With neutral rules the bundle is exactly its tightest component.
        assert bases[d.channel, d.sku] == min(limits.values())
        limiting = d.explanation.limiting_component
        assert limiting == min(c for c, limit in limits.items() if limit == min(limits.values()))


@given(scenarios(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(s: Scenario, rng: random.Random) -> None:
    first = s.run()
    assert s.run() == first
    balances = list(s.balances.items())
    rng.shuffle(balances)
    reservations = list(s.reservations)
    rng.shuffle(reservations)
    rules = list(s.rules)
    rng.shuffle(rules)
    shuffled = Scenario(s.catalog, dict(balances), reservations, rules)
    assert shuffled.run() == first
    assert [(d.channel, d.sku) for d in first] == sorted((d.channel, d.sku) for d in first)


@given(scenarios(), st.data())
def test_a_subset_equals_the_full_result_restricted(s: Scenario, data: st.DataObject) -> None:
    everything = sorted({*s.catalog.variants, *s.catalog.bundles, "GHOST"})
    subset = data.draw(st.frozensets(st.sampled_from(everything)))
    full = s.run()
    assert s.run(skus=subset) == [d for d in full if d.sku in subset]


@settings(max_examples=50)
@given(scenarios())
def test_inputs_add_up_to_the_pool_and_reservations(s: Scenario) -> None:
    for d in s.run():
        if d.sku in s.catalog.bundles:
            continue
        steps = {step.rule: step for step in d.explanation.steps}
        inputs: Mapping[str, int] = d.explanation.inputs
        stock = sum(q for k, q in inputs.items() if not k.startswith("reserved:"))
        held = sum(q for k, q in inputs.items() if k.startswith("reserved:"))
        assert steps["pool"].after == stock
        if held:
            assert steps["reservations"].before - steps["reservations"].after == held
