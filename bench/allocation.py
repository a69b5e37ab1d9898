"""Time a full allocation recompute against a naive per-variant loop.

Run by hand (not in CI)::

    .venv/bin/python bench/allocation.py [--variants 100000 --bundles 10000]

It generates a seeded synthetic ledger (two warehouses, lots, non-sellable
statuses, reservations on singles and bundles, nested bundles) and two
channel rules, then times `syncd.allocation.compute` (the numbers and explanation
bases a recompute stores) and `syncd.allocation.allocate` (the same with every
explanation written out) over the whole catalog.

The naive loop does what a first attempt would: for every channel and SKU it
scans every balance and every reservation, and computes bundles recursively
without memoisation. It is quadratic, so it runs on a smaller catalog
(``--naive-variants``, default 2 000) when the full size would take too long;
`allocate` is then timed at that size too, both results are checked to agree,
and the ratio is printed for that size (plus a quadratic extrapolation of the
naive time to the full size, clearly labelled as such).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from syncd.allocation import affected_skus, allocate, catalog_index, compute
from syncd.model import (
    Account,
    Bundle,
    Catalog,
    ChannelRule,
    Reservation,
    StockStatus,
    Variant,
)

T = TypeVar("T")
_SINCE = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Workload:
    balances: dict[Account, int]
    reservations: list[Reservation]
    catalog: Catalog
    rules: list[ChannelRule]


def generate(variants: int, bundles: int, seed: int = 7) -> Workload:
    """A seeded ledger shaped like a brand's: most stock at Active Ants, some at ASTRAL."""
    rng = random.Random(seed)
    astral = [f"astral:{rng.getrandbits(64):016x}" for _ in range(2)]
    catalog_variants: dict[str, Variant] = {}
    balances: dict[Account, int] = {}
    reservations: list[Reservation] = []
    for i in range(variants):
        sku = f"V{i:06d}"
        pack = rng.choice((6, 12)) if rng.random() < 0.1 else 1
        catalog_variants[sku] = Variant(sku=sku, pack_size=pack)
        if rng.random() < 0.85:
            balances[Account("activeants", StockStatus.AVAILABLE, sku)] = rng.randint(0, 400)
            balances[Account("activeants", StockStatus.VOID, sku)] = -rng.randint(0, 400)
        if rng.random() < 0.3:
            location = rng.choice(astral)
            for lot in range(rng.randint(1, 2)):
                account = Account(location, StockStatus.AVAILABLE, sku, f"L{lot}")
                balances[account] = rng.randint(0, 120)
            balances[Account(location, StockStatus.INCOMING, sku)] = rng.randint(0, 50)
        if rng.random() < 0.05:
            reservations.append(
                Reservation("ankorstore", f"O{i}", sku, rng.randint(1, 5), "activeants", _SINCE)
            )
    singles = list(catalog_variants)
    catalog_bundles: dict[str, Bundle] = {}
    for i in range(bundles):
        sku = f"B{i:06d}"
        components = {c: rng.randint(1, 4) for c in rng.sample(singles, rng.randint(2, 4))}
        if catalog_bundles and rng.random() < 0.2:
            components[rng.choice(list(catalog_bundles))] = rng.randint(1, 2)
        catalog_bundles[sku] = Bundle(sku=sku, components=components)
        if rng.random() < 0.1:
            reservations.append(
                Reservation("fabric", f"F{i}", sku, rng.randint(1, 3), "activeants", _SINCE)
            )
    rules = [
        ChannelRule("ankorstore", ("activeants", "astral:*"), buffer=2),
        ChannelRule("fabric", ("activeants",), percentage=80.0, cap=500),
    ]
    return Workload(balances, reservations, Catalog(catalog_variants, catalog_bundles), rules)


def _matches(location: str, patterns: Sequence[str]) -> bool:
    return any(location.startswith(p[:-1]) if p.endswith("*") else location == p for p in patterns)


def naive(work: Workload) -> dict[tuple[str, str], int]:
    """The straightforward loop: full scans per SKU, bundles recursed without memo."""
    catalog = work.catalog

    def units_of(sku: str, target: str) -> int:
        bundle = catalog.bundles.get(sku)
        if bundle is None:
            return 1 if sku == target else 0
        return sum(m * units_of(c, target) for c, m in bundle.components.items())

    def net(sku: str, rule: ChannelRule, inputs: dict[str, int]) -> int:
        bundle = catalog.bundles.get(sku)
        if bundle is not None:
            return min(net(c, rule, inputs) // m for c, m in bundle.components.items())
        pool = 0
        for account, quantity in work.balances.items():
            if (
                account.sku == sku
                and account.status == StockStatus.AVAILABLE
                and _matches(account.location, rule.locations)
            ):
                pool += quantity
                inputs[f"{sku}:{account.location}/available/{account.lot}"] = quantity
        reserved = 0
        seen: set[tuple[str, str, str, str]] = set()
        for r in work.reservations:
            key = (r.channel, r.order_ref, r.sku, r.location)
            if key in seen or not _matches(r.location, rule.locations):
                continue
            seen.add(key)
            units = units_of(r.sku, sku) * r.quantity
            if units:
                reserved += units
                inputs[f"{sku}:reserved:{r.channel}:{r.order_ref}"] = units
        return max(0, pool - reserved)

    result: dict[tuple[str, str], int] = {}
    for rule in work.rules:
        for sku in sorted({*catalog.variants, *catalog.bundles}):
            inputs: dict[str, int] = {}
            quantity = max(0, net(sku, rule, inputs) - rule.buffer)
            quantity = int(quantity * rule.percentage / 100)
            if rule.cap is not None:
                quantity = min(quantity, rule.cap)
            variant = catalog.variants.get(sku)
            if rule.pack_rounding and variant is not None:
                quantity -= quantity % variant.pack_size
            result[rule.channel, sku] = quantity
    return result


def _timed(run: Callable[[], T], repeat: int = 1) -> tuple[float, T]:
    best = float("inf")
    value: T | None = None
    for _ in range(repeat):
        value = None  # free the previous result outside the timed region
        start = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - start)
    assert value is not None
    return best, value


def _fast(work: Workload) -> Mapping[tuple[str, str], int]:
    desired = allocate(work.balances, work.reservations, work.catalog, work.rules)
    return {(d.channel, d.sku): d.quantity for d in desired}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--bundles", type=int, default=10_000)
    parser.add_argument(
        "--naive-variants",
        type=int,
        default=2_000,
        help="catalog size for the naive loop (it is quadratic); bundles scale alongside",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--channels", type=int, choices=(1, 2), default=2, help="channel rules to allocate for"
    )
    args = parser.parse_args(argv)

    work = generate(args.variants, args.bundles)
    work = replace(work, rules=work.rules[: args.channels])
    print(
        f"full size: {args.variants} variants, {args.bundles} bundles, "
        f"{len(work.balances)} balances, {len(work.reservations)} reservations, "
        f"{len(work.rules)} channels"
    )
    index_time, _ = _timed(lambda: catalog_index(work.catalog))
    print(f"  catalog index (once per catalog): {index_time:.3f} s")
    stock: dict[str, dict[str, int]] = {}
    for account, units in work.balances.items():
        if account.status == StockStatus.AVAILABLE:
            at = stock.setdefault(account.sku, {})
            at[account.location] = at.get(account.location, 0) + units
    rows = {sku: list(at.items()) for sku, at in stock.items()}
    held = [(r.channel, r.order_ref, r.sku, r.quantity, r.location) for r in work.reservations]
    lean_time, lean = _timed(lambda: compute(rows, held, work.catalog, work.rules), args.repeat)
    print(f"  compute (numbers and bases, what a recompute runs): {lean_time:.3f} s ({len(lean)})")
    full_time, full = _timed(lambda: _fast(work), args.repeat)
    print(f"  allocate, full recompute, explanations written out: {full_time:.3f} s")
    if {(v[0], v[1]): v[2] for v in lean} != dict(full):
        raise SystemExit("compute and allocate disagree")
    changed = sorted(work.catalog.variants)[:: max(1, args.variants // 100)]
    affected = affected_skus(changed, work.catalog)
    part_time, _ = _timed(
        lambda: allocate(work.balances, work.reservations, work.catalog, work.rules, skus=affected),
        args.repeat,
    )
    print(
        f"  allocate, {len(changed)} changed SKUs "
        f"(+{len(affected) - len(changed)} bundles): {part_time:.3f} s"
    )

    small_variants = min(args.variants, args.naive_variants)
    small_bundles = args.bundles * small_variants // max(args.variants, 1)
    if small_variants < args.variants:
        print(
            f"naive loop is O(SKUs x balances): comparing at {small_variants} variants, "
            f"{small_bundles} bundles instead"
        )
    small = work
    if small_variants < args.variants:
        small = generate(small_variants, small_bundles)
        small = replace(small, rules=small.rules[: args.channels])
    fast_time, fast = _timed(lambda: _fast(small), args.repeat)
    naive_time, slow = _timed(lambda: naive(small))
    if dict(fast) != slow:
        differ = sorted(k for k in slow if fast.get(k) != slow[k])[:5]
        raise SystemExit(f"results differ, e.g. {differ}")
    print(f"  allocate: {fast_time:.3f} s   naive: {naive_time:.3f} s   (results agree)")
    print(f"  ratio naive / allocate: {naive_time / fast_time:.1f}x")
    if small_variants < args.variants:
        scale = (args.variants / small_variants) ** 2
        print(
            f"  naive extrapolated to full size (quadratic, not measured): "
            f"~{naive_time * scale:.0f} s, ~{naive_time * scale / full_time:.0f}x allocate"
        )


if __name__ == "__main__":
    main()
