"""Allocation: the quantity each channel may show for each SKU, and why. Pure.

`allocate` turns ledger balances, open reservations, the catalog and the
channel rules into one `Desired` per published (channel, SKU), each with an
`Explanation` that `syncd explain` shows. No I/O, no clock; the same inputs in
any order give the same list, sorted by channel then SKU.

Quantities are units. Sources that count batches (ASTRAL, seed 000
L13105-13109) convert batches x unitMultiplier at ingest, so "units vs
batches" here means publishing whole packs of the variant's ``pack_size``
(Ankorstore sells in ``unit_multiplier`` packs, seed 000 L2786-2789).

For each channel rule, in this order:

1. **Pool** of a single SKU = sum of its balances with status ``available``
   on the rule's locations (exact id, or prefix when the pattern ends in
   ``*``: ``astral:*``), across lots. Every other status (reserved,
   incoming, damaged, blocked, void...) is never sellable (seed 000
   L13143-13157). Negative balances count: a location that owes stock
   lowers the pool rather than being ignored. Balances booked on a bundle
   SKU are ignored; bundles are virtual.
2. **Reservations** whose ``location`` matches the rule's locations are
   subtracted once, whichever channel took the order: the units are
   committed, whoever sells them next. They must be reservations the
   balances do not reflect yet. A reservation on a bundle reserves its
   components (seed 000 L13115), recursively, times the multipliers. The
   same (channel, order ref, SKU, location) given twice is one reservation
   (the larger quantity wins, so a duplicate can never oversell);
   non-positive quantities reserve nothing. Net = max(0, pool - reserved).
3. **Bundles**: base = min over components c of floor(base(c) / multiplier),
   nested bundles using their own base (before the rules below), e.g.
   10 x PY + 5 x PZ with PY = 30, PZ = 10 gives min(3, 2) = 2 (seed 000
   L13163-13171). The limiting component is the one giving the minimum,
   the lowest SKU on a tie.
4. Per published SKU: **buffer** units held back (clamped at 0),
   **percentage** of the rest rounded down (exact decimal arithmetic, so
   100 % is the identity and 33.3 % of 1000 is 333), **cap**, **whole
   packs**, **clamp** at 0. The pack is the channel's own when it has one
   (``packs=``: Ankorstore's ``unitMultiplier``, seed 000 L795-798,
   L2786-2789, wins over the catalog's), else the catalog's ``pack_size``
   when ``pack_rounding`` (bundles are sold singly unless the channel says
   otherwise). Rounding happens here and only here, so the explanation
   shows the number the channel receives.
5. **Own orders** (``ChannelRule.adds_own_orders``, Ankorstore): the channel
   subtracts its own open orders itself (``availableQuantity =
   stockQuantity - reservedQuantity``, seed 000 L1180-1190, L1806-1810), so
   the value written is the sellable quantity plus what the channel's own
   open orders *for that SKU* (its reservations at the rule's locations)
   took off the net stock in steps 2-3: their units, less what the clamp at
   zero never subtracted. An order the ledger has not seen
   yet is then subtracted by the channel alone, and one cancelled before
   syncd saw it gives back only its own units: never anything twice. The
   sum is `Desired.quantity`; ``Desired.own_reserved`` keeps the addend so
   the interlocks judge the sellable part.

A SKU is published on a channel when the catalog knows it (variant or
bundle) and the rule's ``skus`` includes it (``None`` means all).

Explanation content: ``inputs`` maps each balance that fed the pool as
``location/status/lot`` and each reservation as
``reserved:<channel>:<order_ref>`` (units of this SKU, bundle reservations
expanded) to its quantity; for a bundle these keys are prefixed with the
single SKU they belong to (``PY:activeants/available/``). ``steps`` holds one
`ExplanationStep` per rule that applied: ``pool``, ``reservations``,
``clamp`` (net below zero), ``bundle``, ``buffer``, ``percentage``, ``cap``,
``pack``, ``clamp``, ``own_orders``. Rules left at their neutral value (buffer 0, 100 %, no
cap, pack size 1) add no step. Explanations are read-only: channels fed by
the same locations share their ``inputs`` mappings, and equal steps are one
object.

Cost: the catalog's bundle structure is indexed once per catalog
(`syncd.bundles.catalog_index`); each call then makes one pass over the
balances and reservations, one per SKU and channel, and one per bundle
component. ``skus=`` (with `affected_skus`) limits the per-SKU work to what
changed.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from fractions import Fraction

from syncd.bundles import (
    CatalogError,
    CatalogIndex,
    affected_skus,
    catalog_index,
    validate_catalog,
)
from syncd.model import (
    Account,
    Catalog,
    ChannelRule,
    Desired,
    Explanation,
    ExplanationStep,
    LocationId,
    Reservation,
    Sku,
    StockStatus,
)

# The bundle helpers live in syncd.bundles; the engine imports them from here.
__all__ = [
    "CatalogError",
    "CatalogIndex",
    "RuleError",
    "affected_skus",
    "allocate",
    "catalog_index",
    "validate_catalog",
    "validate_rules",
]

_Rows = dict[Sku, list[tuple[LocationId, str, int]]]
"""SKU -> (location, explanation input key, quantity), sorted by key."""


class RuleError(ValueError):
    """Channel rules that cannot be applied; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid channel rules: " + "; ".join(problems))
        self.problems = problems


def validate_rules(rules: Iterable[ChannelRule]) -> list[str]:
    """Every reason ``rules`` cannot be applied; empty when they are fine.

    A rule without locations would publish zero for the whole catalog, so it
    is refused rather than obeyed.
    """
    problems: list[str] = []
    seen: set[str] = set()
    for rule in rules:
        name = rule.channel
        if not name:
            problems.append("a channel rule has an empty channel name")
        if name in seen:
            problems.append(f"channel {name!r} has more than one rule")
        seen.add(name)
        if not rule.locations:
            problems.append(f"channel {name!r} has no locations")
        for pattern in rule.locations:
            if not pattern or "*" in pattern[:-1]:
                problems.append(
                    f"channel {name!r} location {pattern!r}: use an id or a prefix ending in '*'"
                )
        if rule.buffer < 0:
            problems.append(f"channel {name!r} buffer {rule.buffer} is negative")
        if not (math.isfinite(rule.percentage) and 0 <= rule.percentage <= 100):
            problems.append(f"channel {name!r} percentage {rule.percentage} is not within 0-100")
        if rule.cap is not None and rule.cap < 0:
            problems.append(f"channel {name!r} cap {rule.cap} is negative")
    return problems


def allocate(
    balances: Mapping[Account, int],
    reservations: Sequence[Reservation],
    catalog: Catalog | CatalogIndex,
    rules: Sequence[ChannelRule],
    *,
    skus: Collection[Sku] | None = None,
    packs: Mapping[str, Mapping[Sku, int]] | None = None,
) -> list[Desired]:
    """Desired quantity per published (channel, SKU), sorted; see the module docstring.

    ``skus`` limits the result to those SKUs (bundles still read their
    components); the numbers are the same as in a full run. ``packs`` gives
    a channel's own pack sizes (channel -> SKU -> units per pack), which win
    over the catalog's. Raises
    `syncd.bundles.CatalogError` or `RuleError` on input that cannot be
    allocated over, before computing anything.
    """
    index = catalog_index(catalog)
    problems = validate_rules(rules)
    if problems:
        raise RuleError(problems)
    for channel, sizes in (packs or {}).items():
        for sku, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise RuleError([f"channel {channel!r} pack size {size!r} for {sku} is not >= 1"])
    with _collector_paused():
        return _allocate(balances, reservations, index, rules, skus, packs=packs or {})


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while allocating.

    A full recompute creates a few hundred thousand small objects, none in a
    reference cycle; the collector would rescan the growing heap again and
    again and find nothing, which costs about a third of the run time.
    Reference counting still frees everything; the previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _allocate(
    balances: Mapping[Account, int],
    reservations: Sequence[Reservation],
    index: CatalogIndex,
    rules: Sequence[ChannelRule],
    skus: Collection[Sku] | None,
    *,
    packs: Mapping[str, Mapping[Sku, int]],
) -> list[Desired]:
    wanted: set[Sku] | None = None
    needed: set[Sku] | None = None
    if skus is not None:
        wanted = {sku for sku in skus if _known(index, sku)}
        needed = set(wanted)
        for sku in wanted:
            needed |= index.closure.get(sku, frozenset())
    stock = _index_stock(balances, index, needed)
    held, own = _index_reservations(reservations, index, needed)
    locations = {loc for rows in (*stock.values(), *held.values()) for loc, _, _ in rows}
    result: list[Desired] = []
    by_stock: dict[frozenset[LocationId], _Channel] = {}
    for rule in sorted(rules, key=lambda r: r.channel):
        channel = _Channel(
            rule,
            index,
            stock=stock,
            held=held,
            locations=locations,
            own=own.get(rule.channel, {}) if rule.adds_own_orders else {},
            packs=packs.get(rule.channel, {}),
        )
        channel.compute(needed, by_stock.get(channel.matching))
        by_stock.setdefault(channel.matching, channel)
        result.extend(channel.publish(wanted))
    return result


def _known(index: CatalogIndex, sku: Sku) -> bool:
    return sku in index.catalog.variants or sku in index.components


def _matches(location: LocationId, patterns: tuple[LocationId, ...]) -> bool:
    for pattern in patterns:
        if pattern.endswith("*"):
            if location.startswith(pattern[:-1]):
                return True
        elif location == pattern:
            return True
    return False


def _index_stock(
    balances: Mapping[Account, int], index: CatalogIndex, needed: set[Sku] | None
) -> _Rows:
    """Available balances of single variants, grouped by SKU once for all channels."""
    variants = index.catalog.variants
    available = StockStatus.AVAILABLE
    rows: _Rows = {}
    for account, quantity in balances.items():
        sku = account.sku
        if account.status != available or sku not in variants:
            continue
        if needed is not None and sku not in needed:
            continue
        location = account.location
        entry = (location, location + "/available/" + account.lot, quantity)
        found = rows.get(sku)
        if found is None:
            rows[sku] = [entry]
        else:
            found.append(entry)
    for found in rows.values():
        if len(found) > 1:
            found.sort(key=lambda row: row[1])
    return rows


_Own = dict[str, dict[Sku, list[tuple[LocationId, int]]]]
"""channel -> SKU as ordered (not expanded) -> (location, units) of that channel's orders."""


def _index_reservations(
    reservations: Iterable[Reservation], index: CatalogIndex, needed: set[Sku] | None
) -> tuple[_Rows, _Own]:
    """Open reservations per single SKU, deduplicated, bundles expanded (seed 000 L13115).

    Also returns each channel's own orders per SKU *as ordered* (a bundle's
    order counts for the bundle): what that channel subtracts itself.
    """
    unique: dict[tuple[str, str, Sku, LocationId], int] = {}
    for reservation in reservations:
        if reservation.quantity <= 0 or not _known(index, reservation.sku):
            continue
        key = (reservation.channel, reservation.order_ref, reservation.sku, reservation.location)
        unique[key] = max(unique.get(key, 0), reservation.quantity)
    units: dict[tuple[Sku, LocationId, str], int] = {}
    for (channel, order_ref, sku, location), quantity in unique.items():
        label = f"reserved:{channel}:{order_ref}"
        expanded = index.leaves.get(sku, {sku: 1})
        for single, per_unit in expanded.items():
            if needed is None or single in needed:
                row = (single, location, label)
                units[row] = units.get(row, 0) + per_unit * quantity
    rows: _Rows = {}
    for (single, location, label), quantity in sorted(units.items()):
        rows.setdefault(single, []).append((location, label, quantity))
    own: _Own = {}
    for (channel, _, sku, location), quantity in sorted(unique.items()):
        if needed is None or sku in needed:
            own.setdefault(channel, {}).setdefault(sku, []).append((location, quantity))
    return rows, own


_Net = tuple[int, int, dict[str, int]]
"""A single SKU on one channel: (pool, reserved, explanation inputs)."""

_Explained = tuple[int, tuple[ExplanationStep, ...]]
"""A published quantity and the steps that led to it."""


class _Channel:
    """One channel rule applied to the indexed stock (one `allocate` call).

    A full recompute builds a `Desired` for every SKU of a large catalog, so
    the loops here are kept flat. Explanation steps for a single SKU depend
    only on (pool, reserved, pack size), and the rule steps only on (value,
    pack size): both are cached, since stock levels repeat a lot across a
    catalog and the steps are immutable.
    """

    def __init__(
        self,
        rule: ChannelRule,
        index: CatalogIndex,
        *,
        stock: _Rows,
        held: _Rows,
        locations: set[LocationId],
        own: Mapping[Sku, list[tuple[LocationId, int]]],
        packs: Mapping[Sku, int],
    ) -> None:
        self.rule = rule
        self.own = own
        self.own_detail = (
            f"plus {rule.channel}'s own open orders, which {rule.channel} subtracts itself"
        )
        self.channel_packs = packs
        self.index = index
        self.stock = stock
        self.held = held
        self.matching = frozenset(loc for loc in locations if _matches(loc, rule.locations))
        self.pool_detail = "available at " + ", ".join(rule.locations)
        share = Fraction(str(rule.percentage))
        self.share = None if share == 100 else (share.numerator, share.denominator * 100)
        self.base: dict[Sku, int] = {}
        self.nets: dict[Sku, _Net] = {}
        self.limiting: dict[Sku, Sku] = {}
        self.explained: dict[tuple[int, int, int], _Explained] = {}
        self.chains: dict[tuple[int, int], _Explained] = {}

    def compute(self, needed: set[Sku] | None, twin: _Channel | None) -> None:
        """Net stock of every needed SKU (steps 1-3), or a twin's when it drew the same stock.

        Two channels fed by the same locations see the same pool,
        reservations and bundle bases; only their rules differ. The twin's
        inputs mappings are shared, read-only like every explanation.
        """
        if twin is not None:
            self.base, self.nets, self.limiting = twin.base, twin.nets, twin.limiting
            return
        index = self.index
        singles = index.singles
        self._nets(singles if needed is None else needed & singles)
        bundles: Iterable[Sku] = index.order
        if needed is not None:
            bundles = sorted(needed & index.components.keys(), key=index.position.__getitem__)
        self._bundles(bundles)

    def publish(self, wanted: set[Sku] | None) -> list[Desired]:
        """One `Desired` per SKU published on this channel (and wanted), sorted (step 4)."""
        published = self.rule.skus
        candidates: Iterable[Sku]
        if wanted is not None:
            candidates = sorted(wanted if published is None else wanted & published)
        elif published is not None:
            candidates = sorted(sku for sku in published if _known(self.index, sku))
        else:
            candidates = self.index.skus
        return self._publish(candidates)

    def _nets(self, singles: Iterable[Sku]) -> None:
        """Pool minus reservations for every single SKU (steps 1-2)."""
        matching = self.matching
        stock = self.stock
        held = self.held
        base = self.base
        nets = self.nets
        for sku in singles:
            pool = 0
            inputs: dict[str, int] = {}
            rows = stock.get(sku)
            if rows is not None:
                for location, key, quantity in rows:
                    if location in matching:
                        pool += quantity
                        inputs[key] = quantity
            reserved = 0
            rows = held.get(sku)
            if rows is not None:
                for location, key, quantity in rows:
                    if location in matching:
                        reserved += quantity
                        inputs[key] = inputs.get(key, 0) + quantity
            base[sku] = pool - reserved if pool > reserved else 0
            nets[sku] = (pool, reserved, inputs)

    def _bundles(self, bundles: Iterable[Sku]) -> None:
        """min over components of floor(base / multiplier), in topological order (step 3)."""
        base = self.base
        components = self.index.components
        limiting = self.limiting
        for sku in bundles:
            best = -1
            limit = ""
            for component, multiplier in components[sku]:
                complete = base[component] // multiplier
                if best < 0 or complete < best:
                    best, limit = complete, component
            base[sku] = best
            limiting[sku] = limit

    def _publish(self, skus: Iterable[Sku]) -> list[Desired]:
        channel = self.rule.channel
        nets = self.nets
        explained = self.explained
        packs = self.index.packs if self.rule.pack_rounding else {}
        channel_packs = self.channel_packs
        own = self.own
        result: list[Desired] = []
        append = result.append
        for sku in skus:
            net = nets.get(sku)
            if net is None:
                append(self._publish_bundle(sku))
                continue
            pool, reserved, inputs = net
            key = (pool, reserved, channel_packs.get(sku) or packs.get(sku, 1))
            found = explained.get(key)
            if found is None:
                found = explained[key] = self._explain_single(*key)
            quantity, steps = found
            added = self._own_effect(sku) if own else 0
            if added:
                steps = (
                    *steps,
                    ExplanationStep("own_orders", quantity, quantity + added, self.own_detail),
                )
                quantity += added
            explanation = Explanation(channel, sku, inputs, steps, None, quantity)
            append(Desired(channel, sku, quantity, explanation, added))
        return result

    def _own_effect(self, sku: Sku) -> int:
        """How much this channel's own open orders for ``sku`` lowered its net stock.

        Their units, unless the net was clamped at zero: an order the pool
        could not cover lowered nothing, and adding it back would offer
        units that are not there once the channel cancels it.
        """
        rows = self.own.get(sku)
        if rows is None:
            return 0
        matching = self.matching
        ordered = sum(quantity for location, quantity in rows if location in matching)
        if not ordered:
            return 0
        removed = {
            single: ordered * per_unit
            for single, per_unit in self.index.leaves.get(sku, {sku: 1}).items()
        }
        # Never more than the orders themselves: Ankorstore subtracts exactly their
        # units. (A bundle sharing a single between two of its components counts
        # that single once per component, so "without these orders" can rise by
        # more than they hold; adding that back would offer units that are not there.)
        return min(ordered, self._base_without(sku, removed, {}) - self.base[sku])

    def _base_without(self, sku: Sku, removed: Mapping[Sku, int], memo: dict[Sku, int]) -> int:
        """Step 1-3's base of ``sku`` had the ``removed`` reserved units never been ordered."""
        found = memo.get(sku)
        if found is not None:
            return found
        net = self.nets.get(sku)
        if net is not None:
            pool, reserved, _ = net
            reserved -= removed.get(sku, 0)
            value = pool - reserved if pool > reserved else 0
        else:
            value = min(
                self._base_without(component, removed, memo) // multiplier
                for component, multiplier in self.index.components[sku]
            )
        memo[sku] = value
        return value

    def _explain_single(self, pool: int, reserved: int, pack: int) -> _Explained:
        steps = [ExplanationStep("pool", 0, pool, self.pool_detail)]
        value = pool
        if reserved:
            steps.append(
                ExplanationStep(
                    "reservations", value, value - reserved, "open orders on these locations"
                )
            )
            value -= reserved
        if value < 0:
            steps.append(ExplanationStep("clamp", value, 0, "net stock cannot go below zero"))
            value = 0
        quantity, rules = self._chain(value, pack)
        return quantity, (*steps, *rules)

    def _publish_bundle(self, sku: Sku) -> Desired:
        base = self.base
        index = self.index
        limiting = self.limiting[sku]
        parts = ", ".join(
            f"{component} {base[component]} // {multiplier} = {base[component] // multiplier}"
            for component, multiplier in index.components[sku]
        )
        first = ExplanationStep("bundle", 0, base[sku], f"min({parts}), limited by {limiting}")
        quantity, rules = self._chain(base[sku], self.channel_packs.get(sku, 1))
        steps = (first, *rules)
        added = self._own_effect(sku) if self.own else 0
        if added:
            steps = (
                *steps,
                ExplanationStep("own_orders", quantity, quantity + added, self.own_detail),
            )
            quantity += added
        inputs = {
            f"{single}:{key}": value
            for single in index.leaves[sku]
            for key, value in self.nets[single][2].items()
        }
        channel = self.rule.channel
        explanation = Explanation(channel, sku, inputs, steps, limiting, quantity)
        return Desired(channel, sku, quantity, explanation, added)

    def _chain(self, value: int, pack: int) -> _Explained:
        """Buffer, percentage, cap, whole packs, clamp (step 4), cached per input."""
        found = self.chains.get((value, pack))
        if found is not None:
            return found
        start = value
        rule = self.rule
        steps: list[ExplanationStep] = []
        if rule.buffer:
            after = max(0, value - rule.buffer)
            steps.append(ExplanationStep("buffer", value, after, f"hold back {rule.buffer} units"))
            value = after
        if self.share is not None:
            numerator, denominator = self.share
            after = value * numerator // denominator
            detail = f"{rule.percentage}% rounded down"
            steps.append(ExplanationStep("percentage", value, after, detail))
            value = after
        if rule.cap is not None:
            after = min(value, rule.cap)
            steps.append(ExplanationStep("cap", value, after, f"at most {rule.cap} units"))
            value = after
        if pack > 1:
            after = value - value % pack
            steps.append(ExplanationStep("pack", value, after, f"whole packs of {pack} units"))
            value = after
        if value < 0:  # unreachable with validated rules; kept so nothing negative escapes
            steps.append(ExplanationStep("clamp", value, 0, "never below zero"))
            value = 0
        found = self.chains[start, pack] = (value, tuple(steps))
        return found
