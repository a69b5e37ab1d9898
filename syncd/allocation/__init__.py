"""Allocation: the quantity each channel may show for each SKU, and why. Pure.

Two entry points over the same computation (`syncd.allocation.core`):

- `compute` -- plain rows in (available units per SKU and location,
  reservation tuples), one `Value` tuple per published (channel, SKU) out,
  carrying the compact basis of its explanation (numbers and references);
  `compute_channel` is the same for one rule whose pools are already summed
  (the engine's recompute sums them in SQL);
- `allocate` -- the same numbers as `syncd.model.Desired` objects, each with
  its full `Explanation` written out (`syncd.allocation.explanation`): for
  tests, the simulation's oracle and tools that want every step at once.

No I/O, no clock; the same inputs in any order give the same list, sorted by
channel then SKU.

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

Explanation content (`allocate`): ``inputs`` maps each balance that fed the
pool as ``location/status/lot`` and each reservation as
``reserved:<channel>:<order_ref>`` (units of this SKU, bundle reservations
expanded) to its quantity; for a bundle these keys are prefixed with the
single SKU they belong to (``PY:activeants/available/``). ``steps`` holds one
`ExplanationStep` per rule that applied (see `syncd.allocation.explanation`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from syncd.allocation.core import (
    BundleBasis,
    Held,
    Pools,
    Stock,
    Value,
    collector_paused,
    compute,
    compute_channel,
)
from syncd.allocation.explanation import balance_inputs, explain
from syncd.allocation.rules import RuleChain, RuleError, matches, validate_rules
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
    Reservation,
    Sku,
    StockStatus,
)

# The bundle helpers live in syncd.bundles; the engine imports them from here.
__all__ = [
    "BundleBasis",
    "CatalogError",
    "CatalogIndex",
    "Held",
    "Pools",
    "RuleError",
    "Stock",
    "Value",
    "affected_skus",
    "allocate",
    "catalog_index",
    "collector_paused",
    "compute",
    "compute_channel",
    "explain",
    "validate_catalog",
    "validate_rules",
]


def allocate(
    balances: Mapping[Account, int],
    reservations: Sequence[Reservation],
    catalog: Catalog | CatalogIndex,
    rules: Sequence[ChannelRule],
    *,
    skus: Collection[Sku] | None = None,
    packs: Mapping[str, Mapping[Sku, int]] | None = None,
) -> list[Desired]:
    """Desired quantity per published (channel, SKU), sorted, each with its explanation.

    The numbers are `compute`'s; see the module docstring. ``skus`` and
    ``packs`` as there. Raises `syncd.bundles.CatalogError` or `RuleError`
    on input that cannot be allocated over, before computing anything.
    """
    index = catalog_index(catalog)
    variants = index.catalog.variants
    lots: dict[Sku, list[tuple[str, str, int]]] = {}
    for account, quantity in balances.items():
        if account.status == StockStatus.AVAILABLE and account.sku in variants:
            key = f"{account.location}/available/{account.lot}"
            lots.setdefault(account.sku, []).append((account.location, key, quantity))
    stock: Stock = {sku: [(loc, q) for loc, _, q in rows] for sku, rows in lots.items()}
    held: list[Held] = [
        (r.channel, r.order_ref, r.sku, r.quantity, r.location) for r in reservations
    ]
    values = compute(stock, held, index, rules, skus=skus, packs=packs)
    by_channel = {rule.channel: rule for rule in rules}
    chains = {rule.channel: RuleChain(rule) for rule in rules}
    fed: dict[tuple[str, str], bool] = {}

    def shown(rule: ChannelRule, sku: Sku) -> list[tuple[str, int]]:
        """The balances of ``sku`` that fed ``rule``'s pool, by key."""
        found = []
        for location, key, units in lots.get(sku, ()):
            matched = fed.get((rule.channel, location))
            if matched is None:
                matched = fed[rule.channel, location] = matches(location, rule.locations)
            if matched:
                found.append((key, units))
        return sorted(found)

    result: list[Desired] = []
    for value in values:
        rule = by_channel[value[0]]
        basis = value[7]
        singles = basis.leaves if isinstance(basis, BundleBasis) else (value[1],)
        inputs = balance_inputs(value, {sku: shown(rule, sku) for sku in singles})
        explanation = explain(rule, value, inputs, chains[rule.channel])
        result.append(Desired(value[0], value[1], value[2], explanation, value[3]))
    return result
