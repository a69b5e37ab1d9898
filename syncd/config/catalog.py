"""`[catalog]`: the variants, bundles and prepacks syncd knows, and their checks.

Variants come from an optional CSV (`syncd.config.catalog_csv`) and from
``[[catalog.variants]]`` tables; bundles and prepacks from their tables.
`assemble_catalog` merges them into a `syncd.model.Catalog` and reports what
would make allocation wrong: duplicate SKUs or system ids, bundles naming
unknown SKUs or forming a cycle, prepacks naming unknown variants.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from syncd.config.fields import NonEmpty, OptionalConfigPath, Section
from syncd.config.problems import CsvCell, Finding, TomlKey, Where, describe
from syncd.model import Bundle, Catalog, Prepack, Sku, Variant

if TYPE_CHECKING:
    from syncd.config.root import Config

ChannelName = Literal["ankorstore", "fabric"]

MAX_MULTIPLIER = 1_000_000
"""Largest pack size, bundle component count or prepack line. Orders multiply
these by an ordered quantity; the bound keeps every product far inside the
64-bit integers the ledger stores, and no real pack comes near it."""

Quantity = Annotated[int, Field(ge=1, le=MAX_MULTIPLIER)]

IDENTITY_FIELDS = (
    "activeants_sku",
    "astral_variant_id",
    "ankorstore_variant_id",
    "ankorstore_sku",
    "fabric_sku",
    "barcode",
)
"""Per-system ids: two SKUs sharing one would both drive the same remote item."""


class VariantEntry(Section):
    """``[[catalog.variants]]``: one variant; the same columns as the CSV."""

    sku: NonEmpty
    activeants_sku: NonEmpty | None = None
    astral_variant_id: NonEmpty | None = None
    ankorstore_variant_id: NonEmpty | None = None
    ankorstore_sku: NonEmpty | None = None
    fabric_sku: NonEmpty | None = None
    barcode: NonEmpty | None = None
    pack_size: Quantity = 1
    channels: list[ChannelName] = Field(default_factory=list)
    """Channels this variant is published on; empty means every channel."""


class BundleEntry(Section):
    """``[[catalog.bundles]]``: a virtual bundle; components may be bundles themselves."""

    sku: NonEmpty
    components: Annotated[dict[str, Quantity], Field(min_length=1)]
    channels: list[ChannelName] = Field(default_factory=list)
    # A bundle is sold as a variant of its own on the channels, so it has its
    # own identities there (but never a warehouse SKU: it is never stocked).
    ankorstore_variant_id: NonEmpty | None = None
    ankorstore_sku: NonEmpty | None = None
    fabric_sku: NonEmpty | None = None
    barcode: NonEmpty | None = None
    pack_size: Quantity = 1


class PrepackEntry(Section):
    """``[[catalog.prepacks]]``: what one FashionTrade PREPACK expands to (seed 002 L481-486)."""

    code: NonEmpty
    lines: Annotated[dict[str, Quantity], Field(min_length=1)]


class CatalogSection(Section):
    csv: OptionalConfigPath = None
    """Optional CSV of variants, relative to the config file."""
    variants: list[VariantEntry] = Field(default_factory=list)
    bundles: list[BundleEntry] = Field(default_factory=list)
    prepacks: list[PrepackEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SourcedVariant:
    """A variant with the channels it is published on and where its ``sku`` was defined."""

    variant: Variant
    channels: frozenset[str]
    where: Where

    def where_of(self, field_name: str) -> Where:
        """The place of another field of the same row or table."""
        if isinstance(self.where, CsvCell):
            return CsvCell(self.where.file, self.where.line, field_name)
        return TomlKey((*self.where.path[:-1], field_name))


@dataclass(frozen=True, slots=True)
class CatalogBuild:
    catalog: Catalog
    sku_channels: dict[Sku, frozenset[str]]
    """Channels per variant and bundle SKU; an empty set means every channel."""
    findings: list[Finding]


def make_variant(sku: Sku, pack_size: int, ids: Mapping[str, str | None]) -> Variant:
    """A `Variant` from its SKU, pack size and identity fields (by `IDENTITY_FIELDS` name).

    An identity equal to the SKU (a channel SKU that is the brand's own, the
    usual case) shares the SKU's string: one string per variant fewer.
    """

    def same(name: str) -> str | None:
        value = ids.get(name)
        return sku if value == sku else value

    return Variant(
        sku=sku,
        activeants_sku=same("activeants_sku"),
        astral_variant_id=same("astral_variant_id"),
        ankorstore_variant_id=same("ankorstore_variant_id"),
        ankorstore_sku=same("ankorstore_sku"),
        fabric_sku=same("fabric_sku"),
        barcode=same("barcode"),
        pack_size=pack_size,
    )


def inline_variants(section: CatalogSection) -> list[SourcedVariant]:
    """``[[catalog.variants]]`` entries as sourced variants."""
    out = []
    for index, entry in enumerate(section.variants):
        base = ("catalog", "variants", index)
        ids = {name: getattr(entry, name) for name in IDENTITY_FIELDS}
        variant = make_variant(entry.sku, entry.pack_size, ids)
        out.append(SourcedVariant(variant, frozenset(entry.channels), TomlKey((*base, "sku"))))
    return out


def assemble_catalog(variants: Iterable[SourcedVariant], section: CatalogSection) -> CatalogBuild:
    """Merge CSV and inline variants with the bundles and prepacks, and check them all."""
    findings: list[Finding] = []
    by_sku: dict[Sku, Variant] = {}
    defined_at: dict[Sku, Where] = {}
    sku_channels: dict[Sku, frozenset[str]] = {}
    # One dict per identity field, keyed by the value itself: no (field, value)
    # tuple per identity (600 000 of them for 100 000 variants).
    seen_ids: dict[str, dict[str, Sku]] = {name: {} for name in IDENTITY_FIELDS}

    for item in variants:  # consumed as it comes: a CSV is streamed, never listed
        sku = item.variant.sku
        if sku in defined_at:
            findings.append(_duplicate(item.where, sku, defined_at[sku]))
            continue
        defined_at[sku] = item.where
        by_sku[sku] = item.variant
        sku_channels[sku] = item.channels
        for name in IDENTITY_FIELDS:
            value = getattr(item.variant, name)
            if value is None:
                continue
            other = seen_ids[name].setdefault(value, sku)
            if other != sku:
                findings.append(
                    Finding(item.where_of(name), f"{value!r} is already used by SKU {other!r}")
                )

    bundles: dict[Sku, Bundle] = {}
    bundle_index: dict[Sku, int] = {}
    bundle_identities: dict[Sku, Variant] = {}
    for index, entry in enumerate(section.bundles):
        where = TomlKey(("catalog", "bundles", index, "sku"))
        if entry.sku in defined_at:
            findings.append(_duplicate(where, entry.sku, defined_at[entry.sku]))
            continue
        defined_at[entry.sku] = where
        bundles[entry.sku] = Bundle(entry.sku, dict(entry.components))
        bundle_index[entry.sku] = index
        sku_channels[entry.sku] = frozenset(entry.channels)
        bundle_variant = Variant(
            sku=entry.sku,
            ankorstore_variant_id=entry.ankorstore_variant_id,
            ankorstore_sku=entry.ankorstore_sku,
            fabric_sku=entry.fabric_sku,
            barcode=entry.barcode,
            pack_size=entry.pack_size,
        )
        bundle_identities[entry.sku] = bundle_variant
        for name in IDENTITY_FIELDS:
            value = getattr(bundle_variant, name)
            if value is None:
                continue
            other = seen_ids[name].setdefault(value, entry.sku)
            if other != entry.sku:
                findings.append(
                    Finding(
                        TomlKey(("catalog", "bundles", index, name)),
                        f"{value!r} is already used by SKU {other!r}",
                    )
                )

    for sku, bundle in bundles.items():
        for component in bundle.components:
            if component not in by_sku and component not in bundles:
                path = ("catalog", "bundles", bundle_index[sku], "components", component)
                findings.append(Finding(TomlKey(path), f"unknown SKU {component!r}"))
    findings.extend(_cycles(bundles, bundle_index))

    prepacks: dict[str, Prepack] = {}
    for index, prepack in enumerate(section.prepacks):
        base = ("catalog", "prepacks", index)
        if prepack.code in prepacks:
            findings.append(Finding(TomlKey((*base, "code")), f"duplicate code {prepack.code!r}"))
            continue
        for sku in prepack.lines:
            if sku not in by_sku:
                hint = " (prepack lines must be variants)" if sku in bundles else ""
                findings.append(
                    Finding(TomlKey((*base, "lines", sku)), f"unknown variant {sku!r}{hint}")
                )
        prepacks[prepack.code] = Prepack(prepack.code, dict(prepack.lines))

    # Bundles appear in ``Catalog.variants`` too, for their channel identities;
    # ``Catalog.bundles`` says which SKUs are bundles (allocation computes them).
    by_sku.update(bundle_identities)  # in place: no second 100 000-entry dict
    return CatalogBuild(Catalog(by_sku, bundles, prepacks), sku_channels, findings)


def drop_catalog_entries(config: Config) -> Config:
    """``config`` without its ``[[catalog.variants]]`` and ``[[catalog.bundles]]`` models.

    Once validated and assembled into the `Catalog`, the per-entry pydantic
    models are never read again; a catalog of 10 000 bundles kept 90 000
    objects (13 MB) alive for the daemon's lifetime. The copy shares every
    other section.
    """
    slim = config.catalog.model_copy(update={"variants": [], "bundles": []})
    return config.model_copy(update={"catalog": slim})


def skus_for_channel(
    sku_channels: dict[Sku, frozenset[str]], channel: str
) -> frozenset[Sku] | None:
    """SKUs published on ``channel``; ``None`` when no item restricts its channels (all SKUs)."""
    if not any(sku_channels.values()):
        return None
    return frozenset(sku for sku, chans in sku_channels.items() if not chans or channel in chans)


def _duplicate(where: Where, sku: Sku, first: Where) -> Finding:
    return Finding(where, f"duplicate SKU {sku!r} (already defined by {describe(first)})")


def _cycles(bundles: dict[Sku, Bundle], index: dict[Sku, int]) -> list[Finding]:
    """One finding per bundle cycle, on the cycle's first-declared bundle."""
    findings: list[Finding] = []
    done: set[Sku] = set()
    reported: set[frozenset[Sku]] = set()

    def visit(start: Sku) -> None:
        # Iterative DFS: catalogs can nest deeply enough to matter for recursion.
        stack: list[tuple[Sku, Sequence[Sku]]] = [(start, list(bundles[start].components))]
        on_path: list[Sku] = [start]
        while stack:
            sku, pending = stack[-1]
            if not pending:
                stack.pop()
                on_path.pop()
                done.add(sku)
                continue
            child, rest = pending[0], pending[1:]
            stack[-1] = (sku, rest)
            if child not in bundles or child in done:
                continue
            if child in on_path:
                cycle = on_path[on_path.index(child) :]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    first = min(cycle, key=index.__getitem__)
                    turn = cycle.index(first)
                    ordered = [*cycle[turn:], *cycle[:turn], first]
                    where = TomlKey(("catalog", "bundles", index[first], "components"))
                    findings.append(Finding(where, "bundle cycle: " + " -> ".join(ordered)))
                continue
            on_path.append(child)
            stack.append((child, list(bundles[child].components)))

    for sku in bundles:
        if sku not in done:
            visit(sku)
    return findings
