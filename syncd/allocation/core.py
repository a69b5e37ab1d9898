"""The numbers of allocation, on plain rows: no object per balance or per value (pure).

`compute` takes available stock per (SKU, location) and open reservations as
tuples, and returns one `Value` tuple per published (channel, SKU), sorted by
channel then SKU; `compute_channel` does the same for one rule whose pools
are already summed (what a recompute runs, the pools summed in SQL). A
`Value` carries the quantity and the compact *basis* of its explanation --
the numbers and references `syncd.allocation.explanation` needs to write the
explanation out again, on demand, for the one value someone asks about. See
the package docstring for the rules themselves.

Cost: the catalog's bundle structure is indexed once per catalog
(`syncd.bundles.catalog_index`); each call then makes one pass over the
pools and reservations, one per published SKU, and one per bundle
component; only singles that bundles or own orders read are kept per SKU.
``skus=`` (with `affected_skus`) limits the per-SKU work to what changed.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from syncd.allocation.rules import RuleChain, RuleError, matches, validate_rules
from syncd.bundles import CatalogIndex, catalog_index
from syncd.model import Catalog, ChannelRule, LocationId, Sku

Stock = Mapping[Sku, Sequence[tuple[LocationId, int]]]
"""Available units per single SKU and location (lots summed; other statuses left out)."""

Pools = Mapping[Sku, int]
"""Available units per single SKU at one rule's locations (its pools, step 1)."""

Held = tuple[str, str, Sku, int, LocationId]
"""An open reservation line: (channel, order_ref, SKU as ordered, units, location)."""

HeldRef = tuple[str, int]
"""A reservation in an explanation: (``reserved:<channel>:<order_ref>``, units of this SKU)."""


@dataclass(frozen=True, slots=True)
class BundleBasis:
    """What a bundle's explanation needs besides its base: its components and orders."""

    components: tuple[tuple[Sku, int, int], ...]
    """(component, units per bundle, the component's base), sorted by component."""
    limiting: Sku
    """The component giving the minimum (the lowest SKU on a tie)."""
    leaves: tuple[Sku, ...]
    """The single variants the bundle is finally made of, sorted."""
    held: tuple[tuple[Sku, str, int], ...]
    """(single, reservation label, units) of the reservations that lowered those singles."""


Basis = tuple[HeldRef, ...] | BundleBasis
"""A single's reservations, or a bundle's structure."""

Value = tuple[str, Sku, int, int, int, int, int, Basis]
"""One published value: (channel, SKU, quantity, own, pool, reserved, pack, basis).

``quantity`` is what the channel is sent; ``own`` the part of it that is the
channel's own open orders (`ChannelRule.adds_own_orders`). For a single,
``pool`` and ``reserved`` are its available and reserved units at the rule's
locations; for a bundle ``pool`` is its base (complete bundles) and
``reserved`` is 0. ``pack`` is the pack size the value was rounded to.
"""

_NO_HELD: tuple[HeldRef, ...] = ()


def compute(
    stock: Stock,
    reservations: Iterable[Held],
    catalog: Catalog | CatalogIndex,
    rules: Sequence[ChannelRule],
    *,
    skus: Collection[Sku] | None = None,
    packs: Mapping[str, Mapping[Sku, int]] | None = None,
) -> list[Value]:
    """One `Value` per published (channel, SKU), sorted; see the package docstring.

    ``skus`` limits the result to those SKUs (bundles still read their
    components); the numbers are the same as in a full run. ``packs`` gives
    a channel's own pack sizes (channel -> SKU -> units per pack), which win
    over the catalog's. Raises `syncd.bundles.CatalogError` or `RuleError`
    on input that cannot be allocated over, before computing anything.
    Each rule's pools are summed here and handed to `compute_channel`.
    """
    index = catalog_index(catalog)
    _check(rules, packs or {})
    held = list(reservations)
    result: list[Value] = []
    with collector_paused():
        for rule in sorted(rules, key=lambda r: r.channel):
            fed: dict[LocationId, bool] = {}
            pools: dict[Sku, int] = {}
            for sku, rows in stock.items():
                pool = 0
                for location, quantity in rows:
                    found = fed.get(location)
                    if found is None:
                        found = fed[location] = matches(location, rule.locations)
                    if found:
                        pool += quantity
                pools[sku] = pool
            result += _compute_channel(pools, held, index, rule, skus=skus, packs=packs or {})
    return result


def compute_channel(
    pools: Pools,
    reservations: Iterable[Held],
    catalog: Catalog | CatalogIndex,
    rule: ChannelRule,
    *,
    skus: Collection[Sku] | None = None,
    packs: Mapping[str, Mapping[Sku, int]] | None = None,
) -> list[Value]:
    """`compute` for one rule whose pools are already summed (the engine sums them in SQL).

    ``pools`` maps each single SKU to its available units at ``rule``'s
    locations; a SKU it lacks has none.
    """
    index = catalog_index(catalog)
    _check([rule], packs or {})
    with collector_paused():
        return _compute_channel(pools, reservations, index, rule, skus=skus, packs=packs or {})


def _check(rules: Sequence[ChannelRule], packs: Mapping[str, Mapping[Sku, int]]) -> None:
    problems = validate_rules(rules)
    if problems:
        raise RuleError(problems)
    for channel, sizes in packs.items():
        for sku, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise RuleError([f"channel {channel!r} pack size {size!r} for {sku} is not >= 1"])


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while allocating (and, in the
    engine, while a recompute reads its inputs and writes its values).

    A full recompute creates a few hundred thousand small tuples, none in a
    reference cycle; the collector would rescan the growing heap (the
    catalog's own objects included) again and again and find nothing: a
    third of a restart's time. Reference counting still frees everything;
    the previous state is restored.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def known(index: CatalogIndex, sku: Sku) -> bool:
    """A SKU allocation publishes: a catalog variant or bundle."""
    return sku in index.catalog.variants or sku in index.components


def _compute_channel(
    pools: Pools,
    reservations: Iterable[Held],
    index: CatalogIndex,
    rule: ChannelRule,
    *,
    skus: Collection[Sku] | None,
    packs: Mapping[str, Mapping[Sku, int]],
) -> list[Value]:
    wanted: set[Sku] | None = None
    needed: set[Sku] | None = None
    if skus is not None:
        wanted = {sku for sku in skus if known(index, sku)}
        needed = set(wanted)
        for sku in wanted:
            needed |= index.closure.get(sku, frozenset())
    held, own = _index_reservations(reservations, index, needed)
    locations = {loc for rows in held.values() for loc, _, _ in rows}
    channel = _Channel(
        rule,
        index,
        pools=pools,
        held=held,
        matching=frozenset(loc for loc in locations if matches(loc, rule.locations)),
        own=own.get(rule.channel, {}) if rule.adds_own_orders else {},
        packs=packs.get(rule.channel, {}),
    )
    channel.compute(needed)
    return channel.publish(wanted)


_HeldRows = dict[Sku, list[tuple[LocationId, str, int]]]
"""Single SKU -> (location, reservation label, units), sorted."""

_Own = dict[str, dict[Sku, list[tuple[LocationId, int]]]]
"""channel -> SKU as ordered (not expanded) -> (location, units) of that channel's orders."""


def _index_reservations(
    reservations: Iterable[Held], index: CatalogIndex, needed: set[Sku] | None
) -> tuple[_HeldRows, _Own]:
    """Open reservations per single SKU, deduplicated, bundles expanded (seed 000 L13115).

    Also returns each channel's own orders per SKU *as ordered* (a bundle's
    order counts for the bundle): what that channel subtracts itself.
    """
    unique: dict[tuple[str, str, Sku, LocationId], int] = {}
    for channel, order_ref, sku, quantity, location in reservations:
        if quantity <= 0 or not known(index, sku):
            continue
        key = (channel, order_ref, sku, location)
        unique[key] = max(unique.get(key, 0), quantity)
    units: dict[tuple[Sku, LocationId, str], int] = {}
    for (channel, order_ref, sku, location), quantity in unique.items():
        label = f"reserved:{channel}:{order_ref}"
        expanded = index.leaves.get(sku, {sku: 1})
        for single, per_unit in expanded.items():
            if needed is None or single in needed:
                row = (single, location, label)
                units[row] = units.get(row, 0) + per_unit * quantity
    rows: _HeldRows = {}
    for (single, location, label), quantity in sorted(units.items()):
        rows.setdefault(single, []).append((location, label, quantity))
    own: _Own = {}
    for (channel, _, sku, location), quantity in sorted(unique.items()):
        if needed is None or sku in needed:
            own.setdefault(channel, {}).setdefault(sku, []).append((location, quantity))
    return rows, own


class _Channel:
    """One channel rule applied to the stock (one `compute` call); loops kept flat."""

    def __init__(
        self,
        rule: ChannelRule,
        index: CatalogIndex,
        *,
        pools: Pools,
        held: _HeldRows,
        matching: frozenset[LocationId],
        own: Mapping[Sku, list[tuple[LocationId, int]]],
        packs: Mapping[Sku, int],
    ) -> None:
        self.rule = rule
        self.chain = RuleChain(rule)
        self.own = own
        self.channel_packs = packs
        self.index = index
        self.pools = pools
        self.held = held
        self.matching = matching
        self.base: dict[Sku, int] = {}
        self.nets: dict[Sku, tuple[int, int, tuple[HeldRef, ...]]] = {}
        self.limiting: dict[Sku, Sku] = {}

    def compute(self, needed: set[Sku] | None) -> None:
        """Net stock of every needed SKU that something else reads (steps 1-3)."""
        index = self.index
        # Only singles something else reads are netted ahead (bundle components,
        # and singles with reservations, whose own-order effect needs them); every
        # other single is computed where it is published, so a full recompute
        # keeps no per-SKU record for the 90 % of the catalog that is plain stock.
        ahead = index.singles & (index.parents.keys() | self.held.keys())
        self._nets(ahead if needed is None else needed & ahead)
        bundles: Iterable[Sku] = index.order
        if needed is not None:
            bundles = sorted(needed & index.components.keys(), key=index.position.__getitem__)
        self._bundles(bundles)

    def publish(self, wanted: set[Sku] | None) -> list[Value]:
        """One `Value` per SKU published on this channel (and wanted), sorted (step 4)."""
        published = self.rule.skus
        candidates: Iterable[Sku]
        if wanted is not None:
            candidates = sorted(wanted if published is None else wanted & published)
        elif published is not None:
            # The catalog's own sorted list, filtered: no sort over 100 000 SKUs.
            candidates = [sku for sku in self.index.skus if sku in published]
        else:
            candidates = self.index.skus
        return self._publish(candidates)

    def _nets(self, singles: Iterable[Sku]) -> None:
        """Pool minus reservations for every single SKU (steps 1-2)."""
        matching = self.matching
        pools = self.pools
        held = self.held
        base = self.base
        nets = self.nets
        for sku in singles:
            pool = pools.get(sku, 0)
            reserved = 0
            refs = _NO_HELD
            found = held.get(sku)
            if found is not None:
                labels: dict[str, int] = {}
                for location, label, quantity in found:
                    if location in matching:
                        reserved += quantity
                        labels[label] = labels.get(label, 0) + quantity
                refs = tuple(labels.items())
            base[sku] = pool - reserved if pool > reserved else 0
            nets[sku] = (pool, reserved, refs)

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

    def _publish(self, skus: Iterable[Sku]) -> list[Value]:
        channel = self.rule.channel
        nets = self.nets
        value = self.chain.value
        packs = self.index.packs if self.rule.pack_rounding else {}
        channel_packs = self.channel_packs
        own = self.own
        result: list[Value] = []
        append = result.append
        # Neutral rules (no buffer, 100 %, no cap: the common case) only round to
        # packs, inline; anything else goes through the rule chain's cache.
        neutral = self.chain.neutral
        pools = self.pools
        bundles = self.index.components
        for sku in skus:
            net = nets.get(sku)
            if net is not None:
                pool, reserved, refs = net
            elif sku in bundles:
                append(self._publish_bundle(sku))
                continue
            else:  # a single nothing else reads (see `compute`)
                pool, reserved, refs = pools.get(sku, 0), 0, _NO_HELD
            pack = (
                (channel_packs.get(sku) or packs.get(sku, 1))
                if channel_packs
                else packs.get(sku, 1)
            )
            # ``pool`` itself when nothing is reserved: one int object per value fewer.
            base = (pool - reserved if reserved else pool) if pool > reserved else 0
            if not neutral:
                quantity = value(base, pack)
            elif pack > 1:
                quantity = base - base % pack
            else:
                quantity = base
            if own:
                added = self._own_effect(sku)
                append((channel, sku, quantity + added, added, pool, reserved, pack, refs))
            else:
                append((channel, sku, quantity, 0, pool, reserved, pack, refs))
        return result

    def _publish_bundle(self, sku: Sku) -> Value:
        base = self.base
        index = self.index
        pack = self.channel_packs.get(sku, 1)
        quantity = self.chain.value(base[sku], pack)
        added = self._own_effect(sku) if self.own else 0
        leaves = tuple(index.leaves[sku])
        nets = self.nets
        held: tuple[tuple[Sku, str, int], ...] = ()
        if self.held:
            held = tuple(
                (single, label, units) for single in leaves for label, units in nets[single][2]
            )
        basis = BundleBasis(
            components=tuple((c, m, base[c]) for c, m in index.components[sku]),
            limiting=self.limiting[sku],
            leaves=leaves,
            held=held,
        )
        return (self.rule.channel, sku, quantity + added, added, base[sku], 0, pack, basis)

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
