"""The bundle structure of a catalog: validation, ordering, expansion, impact."""

from __future__ import annotations

import pytest

from syncd.bundles import (
    CatalogError,
    CatalogIndex,
    affected_skus,
    catalog_index,
    validate_catalog,
)
from syncd.model import Bundle, Catalog, Variant


def _catalog(singles: str, **bundles: dict[str, int]) -> Catalog:
    return Catalog(
        variants={sku: Variant(sku) for sku in singles.split()},
        bundles={sku: Bundle(sku, components) for sku, components in bundles.items()},
    )


# A nested catalog used throughout: GIFT holds two DUOs and a CARD.
NESTED = _catalog(
    "PY PZ CARD LONE",
    DUO={"PY": 10, "PZ": 5},
    GIFT={"DUO": 2, "CARD": 1},
    TRIO={"PZ": 1, "CARD": 3},
)


def test_a_valid_catalog_has_no_problems() -> None:
    assert validate_catalog(NESTED) == []


@pytest.mark.parametrize(
    ("catalog", "problem"),
    [
        (_catalog("A", B={"A": 0}), "multiplier 0 for 'A'"),
        (_catalog("A", B={"A": -2}), "multiplier -2 for 'A'"),
        (_catalog("A", B={"A": 1, "GHOST": 1}), "unknown SKU 'GHOST'"),
        (_catalog("A", B={}), "bundle 'B' has no components"),
        (
            Catalog(
                variants={"A": Variant("A"), "B": Variant("B", activeants_sku="AA-B")},
                bundles={"B": Bundle("B", {"A": 1})},
            ),
            "bundle 'B' has a warehouse identity",
        ),
        (_catalog("A", B={"C": 1}, C={"B": 1}), "cycle or built from one: B, C"),
        (_catalog("A", B={"B": 1, "A": 1}), "cycle or built from one: B"),
        (
            Catalog(variants={"A": Variant("A", pack_size=0)}),
            "pack size 0",
        ),
        (Catalog(variants={"A": Variant("Z")}), "variant key 'A' holds SKU 'Z'"),
        (
            Catalog(variants={"A": Variant("A")}, bundles={"B": Bundle("X", {"A": 1})}),
            "bundle key 'B' holds SKU 'X'",
        ),
    ],
)
def test_each_catalog_problem_is_reported(catalog: Catalog, problem: str) -> None:
    problems = validate_catalog(catalog)
    assert any(problem in p for p in problems), problems
    with pytest.raises(CatalogError, match="invalid catalog") as raised:
        CatalogIndex.build(catalog)
    assert raised.value.problems == problems


def test_a_bundle_built_on_a_cycle_is_reported_with_it() -> None:
    problems = validate_catalog(_catalog("A", B={"C": 1}, C={"B": 1}, D={"B": 1, "A": 1}))
    assert problems == ["bundles in a cycle or built from one: B, C, D"]


def test_components_come_before_the_bundles_built_from_them() -> None:
    index = CatalogIndex.build(NESTED)
    assert set(index.order) == {"DUO", "GIFT", "TRIO"}
    assert index.order.index("DUO") < index.order.index("GIFT")
    assert index.skus == ("CARD", "DUO", "GIFT", "LONE", "PY", "PZ", "TRIO")


def test_nested_bundles_expand_to_single_units() -> None:
    index = CatalogIndex.build(NESTED)
    assert index.leaves["GIFT"] == {"CARD": 1, "PY": 20, "PZ": 10}
    assert index.closure["GIFT"] == {"DUO", "CARD", "PY", "PZ"}
    assert index.components["DUO"] == (("PY", 10), ("PZ", 5))


def test_a_component_reached_twice_adds_up() -> None:
    index = CatalogIndex.build(_catalog("A", B={"A": 2}, C={"B": 3, "A": 1}))
    assert index.leaves["C"] == {"A": 7}


def test_parents_list_the_bundles_containing_a_sku_directly() -> None:
    index = CatalogIndex.build(NESTED)
    assert index.parents["PZ"] == ("DUO", "TRIO")
    assert index.parents["DUO"] == ("GIFT",)
    assert "LONE" not in index.parents


def test_a_changed_single_affects_every_bundle_above_it() -> None:
    assert affected_skus(["PY"], NESTED) == {"PY", "DUO", "GIFT"}
    assert affected_skus(["LONE"], NESTED) == {"LONE"}


def test_a_changed_bundle_affects_its_components_and_their_bundles() -> None:
    # A reservation on DUO lowers PY and PZ, hence TRIO too (seed 000 L13115).
    assert affected_skus(["DUO"], NESTED) == {"DUO", "PY", "PZ", "GIFT", "TRIO"}


def test_unknown_skus_are_returned_as_given() -> None:
    assert affected_skus(["NOT-IN-CATALOG"], NESTED) == {"NOT-IN-CATALOG"}


def test_the_index_is_built_once_per_catalog_object() -> None:
    catalog = _catalog("A", B={"A": 2})
    first = catalog_index(catalog)
    assert catalog_index(catalog) is first
    assert catalog_index(first) is first
    assert catalog_index(_catalog("A", B={"A": 2})) is not first


def test_an_invalid_catalog_is_refused_by_the_cached_lookup_too() -> None:
    with pytest.raises(CatalogError, match="unknown SKU"):
        catalog_index(_catalog("A", B={"GHOST": 1}))
