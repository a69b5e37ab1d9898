"""The pure rules of the order feeds: SKU matching and never lowering an unreadable line."""

from __future__ import annotations

from syncd.model import Catalog, Prepack, Variant
from syncd.sources.orders_catalog import OrderCatalog
from syncd.sources.orders_model import ParsedOrder, add_lines, count, finish_lines, larger_of


def test_an_identity_shared_by_two_variants_matches_neither() -> None:
    catalog = OrderCatalog(
        Catalog(
            variants={
                "A": Variant("A", barcode="111", fabric_sku="F-A", ankorstore_variant_id="v1"),
                "B": Variant("B", barcode="111", fabric_sku="F-B", ankorstore_variant_id="v2"),
                "C": Variant("C", barcode="333", ankorstore_sku="AK-C", pack_size=6),
            }
        )
    )
    assert catalog.barcode("111") is None
    assert catalog.barcode("333") == "C"
    assert catalog.fabric("F-B", None) == "B"
    assert catalog.fabric("F-unknown", "333") == "C"  # upc only when brand_identifier misses
    assert catalog.fabric(None, "111") is None
    assert catalog.ankorstore("v2", "AK-C") == "B"  # the variant id wins over the SKU
    assert catalog.ankorstore("gone", "AK-C") == "C"
    assert catalog.pack_size("C") == 6


def test_a_prepack_is_found_by_barcode_first_then_by_product_id() -> None:
    by_code = Prepack("PP-1", {"A": 2})
    by_ean = Prepack("8712345999990", {"A": 1})
    catalog = OrderCatalog(
        Catalog(variants={"A": Variant("A")}, prepacks={"PP-1": by_code, by_ean.code: by_ean})
    )
    assert catalog.prepack("8712345999990", "PP-1") is by_ean
    assert catalog.prepack("0000", "PP-1") is by_code
    assert catalog.prepack("0000", None) is None


def test_unreadable_lines_keep_the_larger_previous_quantity() -> None:
    order = ParsedOrder("1", "open", {"A": 2, "B": 5})
    order.keep_skus.add("A")
    assert finish_lines(order, {"A": 4, "B": 9, "C": 1}) == {"A": 4, "B": 5}
    order.keep_all = True
    assert finish_lines(order, {"A": 1, "B": 9, "C": 1}) == {"A": 2, "B": 9, "C": 1}
    assert finish_lines(ParsedOrder("2", "open", {"A": 0}), {}) == {}


def test_quantities_are_non_negative_integers_only() -> None:
    assert [count(v) for v in (0, 3, -1, True, 2.0, "4", None)] == [
        0,
        3,
        None,
        None,
        None,
        None,
        None,
    ]


def test_two_copies_of_one_order_reserve_the_larger_of_each_sku() -> None:
    first = ParsedOrder("7", "open", open_lines={"A": 5, "B": 1}, keep_skus={"C"})
    second = ParsedOrder("7", "closed", open_lines={"A": 2, "D": 4}, keep_all=True)
    for one, other in ((first, second), (second, first)):
        merged = larger_of(one, other)
        assert merged.open_lines == {"A": 5, "B": 1, "D": 4}
        assert merged.keep_skus == {"C"}
        assert merged.keep_all
        assert merged.status == other.status  # the later copy's view of the status


def test_lines_with_different_ids_for_one_sku_add_up() -> None:
    order = ParsedOrder("7", "open")
    add_lines(order, ParsedOrder("7", "open", open_lines={"A": 2}))
    add_lines(order, ParsedOrder("7", "open", open_lines={"A": 2}, keep_skus={"B"}))
    assert order.open_lines == {"A": 4}  # two legitimate lines of 2, never collapsed
    assert order.keep_skus == {"B"}
