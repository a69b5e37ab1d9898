"""Catalog assembly: what would make allocation wrong is reported, the rest becomes a Catalog."""

from __future__ import annotations

from typing import Any

from syncd.config.catalog import (
    CatalogSection,
    assemble_catalog,
    inline_variants,
    skus_for_channel,
)
from syncd.config.problems import TomlKey, describe
from syncd.model import Bundle, Prepack


def _build(**section: Any) -> Any:
    catalog = CatalogSection.model_validate(section)
    return assemble_catalog(inline_variants(catalog), catalog)


def _messages(build: Any) -> list[tuple[str, str]]:
    return [(describe(f.where), f.message) for f in build.findings]


def test_valid_catalog_with_nested_bundles_and_prepacks() -> None:
    build = _build(
        variants=[{"sku": "A", "pack_size": 6}, {"sku": "B"}],
        bundles=[
            {"sku": "AB", "components": {"A": 1, "B": 2}},
            {"sku": "AB2", "components": {"AB": 2}},
        ],
        prepacks=[{"code": "P1", "lines": {"A": 2, "B": 1}}],
    )
    assert build.findings == []
    assert build.catalog.variants["A"].pack_size == 6
    assert build.catalog.bundles["AB2"] == Bundle("AB2", {"AB": 2})
    assert build.catalog.prepacks["P1"] == Prepack("P1", {"A": 2, "B": 1})


def test_duplicate_sku_across_variants_and_bundles() -> None:
    build = _build(
        variants=[{"sku": "A"}, {"sku": "A"}],
        bundles=[{"sku": "A", "components": {"A": 1}}],
    )
    assert _messages(build) == [
        (
            "catalog.variants[1].sku",
            "duplicate SKU 'A' (already defined by catalog.variants[0].sku)",
        ),
        (
            "catalog.bundles[0].sku",
            "duplicate SKU 'A' (already defined by catalog.variants[0].sku)",
        ),
    ]
    assert len(build.catalog.variants) == 1


def test_two_skus_cannot_share_a_remote_id() -> None:
    build = _build(
        variants=[
            {"sku": "A", "ankorstore_variant_id": "v-1", "barcode": "871"},
            {"sku": "B", "ankorstore_variant_id": "v-1", "barcode": "872"},
        ]
    )
    assert _messages(build) == [
        ("catalog.variants[1].ankorstore_variant_id", "'v-1' is already used by SKU 'A'")
    ]


def test_bundle_components_must_exist() -> None:
    build = _build(variants=[{"sku": "A"}], bundles=[{"sku": "X", "components": {"A": 1, "Q": 1}}])
    assert _messages(build) == [("catalog.bundles[0].components.Q", "unknown SKU 'Q'")]


def test_each_bundle_cycle_is_reported_once_on_its_first_bundle() -> None:
    build = _build(
        variants=[{"sku": "A"}],
        bundles=[
            {"sku": "OK", "components": {"A": 1}},
            {"sku": "C2", "components": {"C3": 1, "OK": 1}},
            {"sku": "C3", "components": {"C4": 1}},
            {"sku": "C4", "components": {"C2": 1}},
            {"sku": "SELF", "components": {"SELF": 1}},
            {"sku": "TOP", "components": {"C2": 1}},  # leads into the cycle, is not in it
        ],
    )
    assert _messages(build) == [
        ("catalog.bundles[1].components", "bundle cycle: C2 -> C3 -> C4 -> C2"),
        ("catalog.bundles[4].components", "bundle cycle: SELF -> SELF"),
    ]


def test_prepacks_name_variants_and_have_unique_codes() -> None:
    build = _build(
        variants=[{"sku": "A"}],
        bundles=[{"sku": "AA", "components": {"A": 2}}],
        prepacks=[
            {"code": "P", "lines": {"A": 1, "AA": 1, "Z": 1}},
            {"code": "P", "lines": {"A": 1}},
        ],
    )
    assert _messages(build) == [
        ("catalog.prepacks[0].lines.AA", "unknown variant 'AA' (prepack lines must be variants)"),
        ("catalog.prepacks[0].lines.Z", "unknown variant 'Z'"),
        ("catalog.prepacks[1].code", "duplicate code 'P'"),
    ]


def test_channel_columns_select_skus_per_channel() -> None:
    build = _build(
        variants=[{"sku": "A"}, {"sku": "B", "channels": ["fabric"]}],
        bundles=[{"sku": "AB", "components": {"A": 1, "B": 1}, "channels": ["ankorstore"]}],
    )
    assert skus_for_channel(build.sku_channels, "ankorstore") == frozenset({"A", "AB"})
    assert skus_for_channel(build.sku_channels, "fabric") == frozenset({"A", "B"})


def test_no_channel_columns_means_every_sku() -> None:
    build = _build(variants=[{"sku": "A"}, {"sku": "B"}])
    assert skus_for_channel(build.sku_channels, "fabric") is None


def test_where_points_at_the_sku_key() -> None:
    (variant,) = inline_variants(CatalogSection.model_validate({"variants": [{"sku": "A"}]}))
    assert variant.where == TomlKey(("catalog", "variants", 0, "sku"))
