"""Parsing ``v2/stock/bulk`` (seed 001 L2852-2952): what is usable, what is skipped, what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.sources.activeants_parse import Lot, ProductStock, parse_bulk
from syncd.sources.jsonvalues import coerce_int
from syncd.sources.problems import MalformedPage, Skipped


def product(sku: Any = "AA-1", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sku": sku,
        "name": "Tee",
        "stock": 40,
        "thts": [],
        "freeStock": 12,
        "economicStock": 40,
        "availableStock": 10,
        "physicalStock": 14,
    }
    base.update(fields)
    return base


def body(products: list[Any], *, period: Any = None, **result: Any) -> dict[str, Any]:
    period = period or {"from": "2025-01-01T00:00:00+01:00", "to": "2025-01-01T11:22:52.123+01:00"}
    return {
        "messageCode": "OK",
        "message": f"Found {len(products)} products suitable for stock synchronization.",
        "result": result or {"period": period, "products": products},
    }


def test_the_chosen_stock_field_is_read_and_the_period_kept_verbatim() -> None:
    read = parse_bulk(body([product()]), "availableStock")
    assert read.to == "2025-01-01T11:22:52.123+01:00"
    assert read.period_from == "2025-01-01T00:00:00+01:00"
    assert read.products == (ProductStock("AA-1", 10),)
    assert parse_bulk(body([product()]), "freeStock").products[0].quantity == 12
    assert parse_bulk(body([product()]), "economicStock").products[0].quantity == 40


def test_unnamed_keys_are_found_by_shape() -> None:
    # The seed's rendering dropped both names (L2884, L2895; brief A13).
    document = body(
        [],
        window={"from": None, "to": "2025-01-02T00:00:00Z"},
        items=[product("AA-7", availableStock=3)],
    )
    read = parse_bulk(document, "availableStock")
    assert read.to == "2025-01-02T00:00:00Z"
    assert read.products == (ProductStock("AA-7", 3),)


def test_lots_are_kept_as_given() -> None:
    lots = [
        {"quantity": 9, "tht": "2027-06-30T00:00:00", "lotNumber": "L123"},
        {"quantity": 5, "tht": None, "lotNumber": None},
        {"quantity": "x", "tht": None, "lotNumber": "junk"},
    ]
    [parsed] = parse_bulk(body([product(thts=lots)]), "availableStock").products
    assert parsed.lots == (Lot("L123", "2027-06-30T00:00:00", 9), Lot("", None, 5))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("not an object", Skipped("#0", "product is not an object")),
        (product(sku=""), Skipped("#0", "missing sku")),
        (product(sku=None), Skipped("#0", "missing sku")),
        (
            {k: v for k, v in product().items() if k != "availableStock"},
            Skipped("AA-1", "missing availableStock"),
        ),
        (product(availableStock=None), Skipped("AA-1", "missing availableStock")),
        (
            product(availableStock="lots"),
            Skipped("AA-1", "availableStock is not an integer: 'lots'"),
        ),
        (product(availableStock=True), Skipped("AA-1", "availableStock is not an integer: True")),
    ],
)
def test_an_unusable_product_is_skipped_with_its_reason(item: Any, expected: Skipped) -> None:
    read = parse_bulk(body([item, product("AA-2")]), "availableStock")
    assert read.skipped == (expected,)
    assert read.products == (ProductStock("AA-2", 10),)
    assert read.listed == 2


def test_a_numeric_sku_and_a_numeric_string_quantity_are_accepted() -> None:
    # Same concept, different JSON types across endpoints (brief G14).
    read = parse_bulk(body([product(sku=12345, availableStock="7")]), "availableStock")
    assert read.products == (ProductStock("12345", 7),)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "not a JSON object"),
        ({"messageCode": "NOK", "message": "Invalid token", "result": None}, "Invalid token"),
        ({"messageCode": "OK", "message": "", "result": []}, "'result' is not an object"),
        (body([], period={"from": "x"}), "no 'to'"),
        (body([], period={"from": "x", "to": ""}), "no 'to'"),
        ({"messageCode": "OK", "result": {"period": {"to": "t"}}}, "no single product array"),
        (
            {"messageCode": "OK", "result": {"period": {"to": "t"}, "a": [], "b": []}},
            "no single product array",
        ),
    ],
)
def test_an_unusable_response_is_refused_whole(document: Any, message: str) -> None:
    with pytest.raises(MalformedPage, match=message):
        parse_bulk(document, "availableStock")


def test_a_null_product_list_reads_as_empty() -> None:
    document = {"messageCode": "OK", "result": {"period": {"to": "t"}, "products": None}}
    assert parse_bulk(document, "availableStock").listed == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        ("-4", -4),
        (" 12 ", 12),
        (2.0, 2),
        (2.5, None),
        ("1e3", None),
        (None, None),
        (False, None),
    ],
)
def test_coerce_int(value: Any, expected: int | None) -> None:
    assert coerce_int(value) == expected


def test_a_backordered_product_below_zero_is_read_as_zero_and_keeps_the_figure() -> None:
    read = parse_bulk(body([product(availableStock=-3), product("AA-2")]), "availableStock")
    assert read.skipped == ()
    below = read.products[0]
    assert (below.aa_sku, below.quantity, below.below_zero) == ("AA-1", 0, -3)
    assert read.products[1].below_zero is None
