"""A deterministic catalog generator for the sandbox simulators.

One seeded generator produces the brand's catalog and each simulated
system's view of it, so every simulator (and the syncd config written for
them) agrees on identities: the brand SKU, the Active Ants SKU, the ASTRAL
and Ankorstore product-variant ids, the fabric SKU and inventory id, the
barcode FashionTrade orders carry, pack sizes, lots and the starting stock.

Shape of a generated catalog (all shares configurable):

- singles: the physical variants. Most are stocked at Active Ants, a share
  at Ankorstore's logistics (ASTRAL), some at both.
- bundles: virtual variants made of singles; a share are nested (a bundle
  containing a bundle). Bundles are never stocked themselves.
- a share of variants is published on each channel.
- some singles are sold on Ankorstore in packs (``unitMultiplier`` > 1) and
  some are tracked by ASTRAL in batches of several units.
- a few FashionTrade prepacks (size runs) made of singles.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from syncd.model import Bundle, Catalog, Prepack, Variant

CHANNELS = ("ankorstore", "fabric")


@dataclass(slots=True)
class SimLot:
    number: str
    expiry: str | None
    """ISO date, or None for stock without a best-before date."""


@dataclass(slots=True)
class SimVariant:
    sku: str
    activeants_sku: str
    astral_variant_id: str
    ankorstore_variant_id: str
    ankorstore_sku: str
    fabric_sku: str
    fabric_inventory_id: int
    barcode: str
    pack_size: int
    """Ankorstore ``unitMultiplier``: units per pack sold on Ankorstore."""
    astral_unit_multiplier: int
    """Units per ASTRAL batch (seed 000 L13105-13109)."""
    at_activeants: bool
    at_astral: bool
    channels: frozenset[str]
    activeants_stock: int
    """Starting ``availableStock`` at Active Ants (units)."""
    astral_batches: int
    """Starting ``available`` batches at the ASTRAL warehouse."""
    lots: list[SimLot] = field(default_factory=list)


@dataclass(slots=True)
class SimBundle:
    sku: str
    components: dict[str, int]
    ankorstore_variant_id: str
    fabric_sku: str
    fabric_inventory_id: int
    barcode: str
    channels: frozenset[str]


@dataclass(slots=True)
class SimPrepack:
    code: str
    barcode: str
    lines: dict[str, int]


@dataclass(slots=True)
class SandboxCatalog:
    seed: int
    variants: list[SimVariant]
    bundles: list[SimBundle]
    prepacks: list[SimPrepack]
    astral_location_id: str

    @property
    def by_sku(self) -> dict[str, SimVariant]:
        return {v.sku: v for v in self.variants}

    def published(self, channel: str) -> list[str]:
        """Brand SKUs (singles and bundles) published on ``channel``."""
        skus = [v.sku for v in self.variants if channel in v.channels]
        skus += [b.sku for b in self.bundles if channel in b.channels]
        return skus

    def to_model(self) -> Catalog:
        """The catalog as syncd itself models it (what the written config describes)."""
        variants: dict[str, Variant] = {}
        for v in self.variants:
            variants[v.sku] = Variant(
                sku=v.sku,
                activeants_sku=v.activeants_sku if v.at_activeants else None,
                astral_variant_id=v.astral_variant_id if v.at_astral else None,
                ankorstore_variant_id=v.ankorstore_variant_id,
                ankorstore_sku=v.ankorstore_sku,
                fabric_sku=v.fabric_sku,
                barcode=v.barcode,
                pack_size=v.pack_size,
            )
        for b in self.bundles:
            variants[b.sku] = Variant(
                sku=b.sku,
                ankorstore_variant_id=b.ankorstore_variant_id,
                ankorstore_sku=b.sku,
                fabric_sku=b.fabric_sku,
                barcode=b.barcode,
            )
        bundles = {b.sku: Bundle(sku=b.sku, components=dict(b.components)) for b in self.bundles}
        prepacks = {p.code: Prepack(code=p.code, lines=dict(p.lines)) for p in self.prepacks}
        return Catalog(variants=variants, bundles=bundles, prepacks=prepacks)

    def write_csv(self, path: Path) -> None:
        """Write the variant mapping as the CSV that `[catalog] csv =` reads.

        Columns: sku, activeants_sku, astral_variant_id, ankorstore_variant_id,
        ankorstore_sku, fabric_sku, barcode, pack_size, channels.
        Bundles and prepacks go into the TOML (they are few).
        """
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for v in self.variants:
                writer.writerow(
                    [
                        v.sku,
                        v.activeants_sku if v.at_activeants else "",
                        v.astral_variant_id if v.at_astral else "",
                        v.ankorstore_variant_id,
                        v.ankorstore_sku,
                        v.fabric_sku,
                        v.barcode,
                        v.pack_size,
                        ";".join(sorted(v.channels)),
                    ]
                )


CSV_COLUMNS = (
    "sku",
    "activeants_sku",
    "astral_variant_id",
    "ankorstore_variant_id",
    "ankorstore_sku",
    "fabric_sku",
    "barcode",
    "pack_size",
    "channels",
)


def _ean13(rng: random.Random) -> str:
    digits = [rng.randrange(10) for _ in range(12)]
    checksum = (10 - sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10) % 10
    return "".join(map(str, digits)) + str(checksum)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _channels(rng: random.Random, share: float) -> frozenset[str]:
    return frozenset(c for c in CHANNELS if rng.random() < share)


def generate_catalog(
    n_variants: int,
    *,
    seed: int = 7,
    bundle_share: float = 0.1,
    nested_share: float = 0.2,
    astral_share: float = 0.3,
    channel_share: float = 0.8,
    pack_share: float = 0.15,
    batch_share: float = 0.3,
    lot_share: float = 0.2,
    prepacks: int = 5,
) -> SandboxCatalog:
    """Generate ``n_variants`` singles plus ``bundle_share * n_variants`` bundles."""
    if n_variants < 1:
        raise ValueError("a catalog needs at least one variant")
    # Not for security: a seeded generator makes every sandbox reproducible.
    rng = random.Random(seed)  # noqa: S311
    variants: list[SimVariant] = []
    for index in range(n_variants):
        sku = f"SKU-{index:06d}"
        at_astral = rng.random() < astral_share
        # Most stock is at the brand's fulfilment warehouse; a share of the
        # ASTRAL-stocked variants is also held there.
        at_activeants = (not at_astral) or rng.random() < 0.3
        lots: list[SimLot] = []
        if rng.random() < lot_share:
            for lot_index in range(rng.randint(1, 3)):
                month = rng.randint(1, 12)
                lots.append(
                    SimLot(number=f"L{index:06d}-{lot_index}", expiry=f"2027-{month:02d}-28")
                )
        variants.append(
            SimVariant(
                sku=sku,
                activeants_sku=f"AA-{index:06d}",
                astral_variant_id=_uuid(rng),
                ankorstore_variant_id=_uuid(rng),
                ankorstore_sku=sku,
                fabric_sku=f"FB-{index:06d}",
                fabric_inventory_id=100_000 + index,
                barcode=_ean13(rng),
                pack_size=rng.choice((2, 3, 6, 12)) if rng.random() < pack_share else 1,
                astral_unit_multiplier=rng.choice((2, 4, 6)) if rng.random() < batch_share else 1,
                at_activeants=at_activeants,
                at_astral=at_astral,
                channels=_channels(rng, channel_share) or frozenset({"ankorstore"}),
                activeants_stock=rng.choice((0, rng.randint(1, 20), rng.randint(20, 500)))
                if at_activeants
                else 0,
                astral_batches=rng.randint(0, 80) if at_astral else 0,
                lots=lots,
            )
        )

    bundles: list[SimBundle] = []
    singles = [v.sku for v in variants]
    for index in range(int(n_variants * bundle_share)):
        n_components = rng.randint(2, min(4, len(singles))) if len(singles) > 1 else 1
        components = {sku: rng.randint(1, 5) for sku in rng.sample(singles, n_components)}
        if bundles and rng.random() < nested_share:
            inner = rng.choice(bundles)
            components[inner.sku] = rng.randint(1, 2)
        bundles.append(
            SimBundle(
                sku=f"BND-{index:05d}",
                components=components,
                ankorstore_variant_id=_uuid(rng),
                fabric_sku=f"FB-B{index:05d}",
                fabric_inventory_id=900_000 + index,
                barcode=_ean13(rng),
                channels=_channels(rng, channel_share) or frozenset({"fabric"}),
            )
        )

    prepack_list: list[SimPrepack] = []
    for index in range(min(prepacks, n_variants)):
        size_run = rng.sample(singles, min(len(singles), rng.randint(2, 4)))
        prepack_list.append(
            SimPrepack(
                code=f"PP-{index:03d}",
                barcode=_ean13(rng),
                lines={sku: rng.randint(1, 3) for sku in size_run},
            )
        )
    return SandboxCatalog(
        seed=seed,
        variants=variants,
        bundles=bundles,
        prepacks=prepack_list,
        astral_location_id=_uuid(rng),
    )


def bundle_components_closure(catalog: SandboxCatalog, sku: str) -> Iterable[tuple[str, int]]:
    """Expand a bundle into (single SKU, units) pairs, following nested bundles."""
    by_bundle = {b.sku: b for b in catalog.bundles}
    stack: list[tuple[str, int]] = [(sku, 1)]
    while stack:
        current, factor = stack.pop()
        bundle = by_bundle.get(current)
        if bundle is None:
            yield current, factor
            continue
        for component, multiplier in bundle.components.items():
            stack.append((component, factor * multiplier))
