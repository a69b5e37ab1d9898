"""The bundle structure of a catalog, checked and indexed once.

A bundle is a virtual variant made of other variants, each with a multiplier
(seed 000 L13111-13115); a component may itself be a bundle. Allocation needs
the bundles in an order where every component comes before the bundles built
from it, the single variants each bundle finally consumes (to expand a
reservation on a bundle into its components, seed 000 L13115), and the
reverse edges (to know which bundles a stock change touches). Computing that
for every allocation would cost more than the allocation itself on a large
catalog, so `CatalogIndex` computes it once and `catalog_index` keeps the
last few indexes by catalog identity.

`Catalog` is a frozen dataclass; syncd treats its mappings as frozen too.
Mutating a catalog's dicts after it has been indexed is not supported: build
a new `Catalog` instead (the config loader does so on every reload).

A catalog with problems (`validate_catalog`) cannot be indexed: allocating
over a cycle or an unknown component has no meaning, and guessing would
publish numbers nobody can explain. `CatalogError` lists every problem.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from syncd.model import Catalog, Sku

_CACHE_SIZE = 4


class CatalogError(ValueError):
    """The catalog cannot be allocated over; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid catalog: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class CatalogIndex:
    """Precomputed bundle structure of one valid catalog (see module docstring)."""

    catalog: Catalog
    skus: tuple[Sku, ...]
    """Every catalog SKU (variants and bundles), sorted."""
    singles: frozenset[Sku]
    """Variants that are not bundles: the only SKUs that hold stock."""
    order: tuple[Sku, ...]
    """Bundles in topological order: a bundle's components come before it."""
    components: Mapping[Sku, tuple[tuple[Sku, int], ...]]
    """Bundle -> (component SKU, multiplier) pairs, sorted by component SKU."""
    leaves: Mapping[Sku, Mapping[Sku, int]]
    """Bundle -> single variant -> units of that variant in one bundle (transitive)."""
    closure: Mapping[Sku, frozenset[Sku]]
    """Bundle -> every SKU (singles and bundles) it is transitively built from."""
    parents: Mapping[Sku, tuple[Sku, ...]]
    """SKU -> bundles that contain it directly, sorted."""
    position: Mapping[Sku, int]
    """Bundle -> its index in `order`."""
    packs: Mapping[Sku, int]
    """Variant -> pack size, for variants sold in packs of more than one unit."""

    @classmethod
    def build(cls, catalog: Catalog) -> CatalogIndex:
        """Index ``catalog``; raise `CatalogError` if `validate_catalog` finds problems."""
        order = _topological_order(catalog)
        problems = _problems(catalog, order)
        if problems:
            raise CatalogError(problems)
        components = {sku: tuple(sorted(catalog.bundles[sku].components.items())) for sku in order}
        leaves: dict[Sku, dict[Sku, int]] = {}
        closure: dict[Sku, frozenset[Sku]] = {}
        parents: dict[Sku, list[Sku]] = {}
        for sku in order:
            units: dict[Sku, int] = {}
            below: set[Sku] = set()
            for component, multiplier in components[sku]:
                parents.setdefault(component, []).append(sku)
                below.add(component)
                if component in leaves:
                    below |= closure[component]
                    for leaf, per_component in leaves[component].items():
                        units[leaf] = units.get(leaf, 0) + per_component * multiplier
                else:
                    units[component] = units.get(component, 0) + multiplier
            leaves[sku] = dict(sorted(units.items()))
            closure[sku] = frozenset(below)
        return cls(
            catalog=catalog,
            skus=tuple(sorted({*catalog.variants, *catalog.bundles})),
            singles=frozenset(catalog.variants.keys() - catalog.bundles.keys()),
            order=order,
            components=components,
            leaves=leaves,
            closure=closure,
            parents={sku: tuple(sorted(bundles)) for sku, bundles in parents.items()},
            position={sku: i for i, sku in enumerate(order)},
            packs={s: v.pack_size for s, v in catalog.variants.items() if v.pack_size > 1},
        )


_cache: list[tuple[Catalog, CatalogIndex]] = []


def catalog_index(catalog: Catalog | CatalogIndex) -> CatalogIndex:
    """The index of ``catalog``, built on first use and kept by identity.

    The cache holds strong references, so an identity match is never a
    recycled ``id()``. It is tiny: the daemon has one live catalog (two
    around a reload).
    """
    if isinstance(catalog, CatalogIndex):
        return catalog
    for cached, index in _cache:
        if cached is catalog:
            return index
    index = CatalogIndex.build(catalog)
    _cache.insert(0, (catalog, index))
    del _cache[_CACHE_SIZE:]
    return index


def validate_catalog(catalog: Catalog) -> list[str]:
    """Every reason ``catalog`` cannot be allocated over; empty when it is fine.

    Checks: mapping keys match the SKUs they hold, pack sizes >= 1, no bundle
    has a warehouse identity (bundles are never stocked), bundles have components, multipliers >= 1,
    components exist, and no bundle contains itself (directly or nested).
    """
    return _problems(catalog, _topological_order(catalog))


def _problems(catalog: Catalog, order: tuple[Sku, ...]) -> list[str]:
    problems: list[str] = []
    for key, variant in catalog.variants.items():
        if key != variant.sku:
            problems.append(f"variant key {key!r} holds SKU {variant.sku!r}")
        if variant.pack_size < 1:
            problems.append(f"variant {key!r} has pack size {variant.pack_size} (must be >= 1)")
    for key, bundle in catalog.bundles.items():
        if key != bundle.sku:
            problems.append(f"bundle key {key!r} holds SKU {bundle.sku!r}")
        # A bundle may appear among the variants for its channel identities
        # (Ankorstore variant id, fabric SKU), but it is never stocked itself.
        identity = catalog.variants.get(key)
        if identity is not None and (identity.activeants_sku or identity.astral_variant_id):
            problems.append(f"bundle {key!r} has a warehouse identity; bundles are never stocked")
        if not bundle.components:
            problems.append(f"bundle {key!r} has no components")
        for component, multiplier in bundle.components.items():
            if multiplier < 1:
                problems.append(
                    f"bundle {key!r} has multiplier {multiplier} for {component!r} (must be >= 1)"
                )
            if component not in catalog.variants and component not in catalog.bundles:
                problems.append(f"bundle {key!r} contains unknown SKU {component!r}")
    problems.sort()  # checked in mapping order, reported in a stable one
    # Bundles Kahn's algorithm could not order are on a cycle or built from one.
    ordered = set(order)
    cyclic = sorted(sku for sku in catalog.bundles if sku not in ordered)
    if cyclic:
        problems.append("bundles in a cycle or built from one: " + ", ".join(cyclic))
    return problems


def affected_skus(changed: Iterable[Sku], catalog: Catalog | CatalogIndex) -> set[Sku]:
    """The SKUs whose allocation may change when ``changed`` SKUs change.

    That is ``changed`` plus every bundle containing one of them, however
    deeply nested. A changed *bundle* SKU (a reservation on it moved) also
    changes its single components (seed 000 L13115), so those and every
    bundle containing them are included too. SKUs the catalog does not know
    are returned as given.
    """
    index = catalog_index(catalog)
    result = set(changed)
    for sku in list(result):
        if sku in index.leaves:
            result.update(index.leaves[sku])
    pending = list(result)
    while pending:
        for parent in index.parents.get(pending.pop(), ()):
            if parent not in result:
                result.add(parent)
                pending.append(parent)
    return result


def _bundle_edges(catalog: Catalog) -> dict[Sku, list[Sku]]:
    """Bundle -> the known bundles among its components (sorted)."""
    return {
        sku: sorted(c for c in bundle.components if c in catalog.bundles)
        for sku, bundle in catalog.bundles.items()
    }


def _topological_order(catalog: Catalog) -> tuple[Sku, ...]:
    """Kahn's algorithm, smallest SKU first among the ready ones (deterministic).

    Bundles left over are on a cycle or built from one; they are omitted.
    """
    edges = _bundle_edges(catalog)
    waiting = {sku: len(set(inner)) for sku, inner in edges.items()}
    users: dict[Sku, list[Sku]] = {}
    for sku, inner in edges.items():
        for component in set(inner):
            users.setdefault(component, []).append(sku)
    ready = [sku for sku, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[Sku] = []
    while ready:
        sku = heapq.heappop(ready)
        order.append(sku)
        for user in users.get(sku, ()):
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    return tuple(order)
