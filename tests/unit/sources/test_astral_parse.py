"""Parsing ASTRAL postings pages and stock-state resources (seed 000 L13173-13753)."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.model import StockStatus
from syncd.sources.astral_parse import (
    FeedPosting,
    StateEntity,
    StateLevel,
    lot_key,
    parse_head,
    parse_posting,
    parse_postings_page,
    parse_state_entity,
)
from syncd.sources.problems import MalformedPage, Skipped

VARIANT = "018fc380-1c43-75f9-a101-49447fbadeb7"
LOCATION = "20e62581-67a5-4166-8b1f-344e9b06b58b"


def posting(pid: str = "p-1", **attributes: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "locationId": LOCATION,
        "productVariantId": VARIANT,
        "locationStatus": "available",
        "movementType": "order_reserved",
        "quantity": -10,
        "unitMultiplier": 2,
    }
    attrs.update(attributes)
    return {"type": "posting", "id": pid, "attributes": attrs}


def page(
    data: list[Any], *, to: str | None = "p-9,1700000000", more: Any = False
) -> dict[str, Any]:
    return {
        "data": data,
        "meta": {"page": {"from": "p-1,1700000000", "to": to, "hasMore": more, "perPage": 10}},
        "links": {"first": "x", "next": None, "prev": None},
    }


def test_a_posting_converts_batches_to_units_with_its_own_multiplier() -> None:
    parsed = parse_posting(posting(lotNumber="lot-X", expiryDate="2025-01-01"), index=0)
    assert parsed == FeedPosting(
        id="p-1",
        variant_id=VARIANT,
        location_id=LOCATION,
        status=StockStatus.AVAILABLE,
        batches=-10,
        unit_multiplier=2,
        movement="order_reserved",
        lot="lot-X|2025-01-01",
    )
    assert isinstance(parsed, FeedPosting)
    assert parsed.units == -20


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("x", "posting is not an object"),
        ({"type": "posting"}, "posting has no id"),
        ({"type": "posting", "id": "p-1"}, "posting has no attributes"),
        (posting(productVariantId=None), "missing productVariantId or locationId"),
        (posting(locationStatus="onHand"), "unknown locationStatus 'onHand'"),
        (posting(quantity="ten"), "quantity is missing or not an integer"),
        (posting(unitMultiplier=0), "unitMultiplier is missing or below 1"),
        (posting(unitMultiplier=None), "unitMultiplier is missing or below 1"),
        (posting(movementType=None), "missing movementType"),
    ],
)
def test_an_unusable_posting_is_skipped_with_its_reason(raw: Any, reason: str) -> None:
    parsed = parse_posting(raw, index=3)
    assert isinstance(parsed, Skipped)
    assert parsed.reason == reason


def test_a_page_keeps_good_postings_and_lists_the_bad_ones() -> None:
    parsed = parse_postings_page(page([posting("p-1"), posting("p-2", quantity=None)], more=True))
    assert [p.id for p in parsed.postings] == ["p-1"]
    assert parsed.skipped == (Skipped("p-2", "quantity is missing or not an integer"),)
    assert parsed.cursor == "p-9,1700000000"
    assert parsed.has_more
    assert parsed.listed == 2


def test_has_more_falls_back_to_the_next_link_and_an_empty_page_has_no_cursor() -> None:
    document = page([posting()], more=None)
    document["links"]["next"] = "https://host/api/astral/v1/stock/postings?page%5Bafter%5D=p-9"
    assert parse_postings_page(document).has_more
    empty = parse_postings_page({"data": [], "meta": {"page": {"to": None, "hasMore": False}}})
    assert empty.cursor is None
    assert not empty.has_more
    assert empty.listed == 0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "not a JSON object"),
        ({"errors": []}, "no data array"),
        ({"data": [posting()], "meta": {"page": {"to": None}}}, "no meta.page.to"),
        ({"data": [posting()]}, "no meta.page.to"),
    ],
)
def test_an_unusable_page_is_refused_whole(document: Any, message: str) -> None:
    with pytest.raises(MalformedPage, match=message):
        parse_postings_page(document)


def test_the_head_is_the_first_cursor_of_a_page() -> None:
    assert parse_head(page([posting()])) == "p-1,1700000000"
    assert parse_head({"data": [], "meta": {"page": {"from": None, "to": None}}}) is None
    with pytest.raises(MalformedPage):
        parse_head({"data": [posting()], "meta": {}})


def row(status: str, quantity: Any, **extra: Any) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "locationId": LOCATION,
        "status": status,
        "unitMultiplier": 6,
        **extra,
    }


def test_state_rows_become_levels_and_derived_statuses_are_ignored() -> None:
    entity = parse_state_entity(
        {
            "type": "stock-state",
            "id": VARIANT,
            "attributes": {
                "quantities": [
                    row("available", 10, lot={"lotNumber": "lot-A", "expiryDate": "2024-09-15"}),
                    row("reserved", 7, lot={"number": "lot-A", "expiryDate": "2024-09-15"}),
                    row("reserved", 3),
                    row("incoming", 5, lotNumber="lot-B"),
                    row("onHand", 20),
                    row("void", -40),
                ]
            },
        },
        index=0,
    )
    assert isinstance(entity, StateEntity)
    assert entity.skipped == ()
    assert [(lv.status, lv.lot, lv.units) for lv in entity.levels] == [
        (StockStatus.AVAILABLE, "lot-A|2024-09-15", 60),
        (StockStatus.RESERVED, "lot-A|2024-09-15", 42),
        (StockStatus.RESERVED, "", 18),
        (StockStatus.INCOMING, "lot-B", 30),
    ]
    assert entity.levels[0] == StateLevel(
        VARIANT, LOCATION, StockStatus.AVAILABLE, "lot-A|2024-09-15", 10, 6
    )


def test_bad_state_rows_are_skipped_but_the_entity_is_kept() -> None:
    entity = parse_state_entity(
        {
            "id": VARIANT,
            "attributes": {
                "quantities": [
                    row("available", -2),
                    row("blocked", 1, unitMultiplier=None),
                    row("lost", 1),
                    row("damaged", 4),
                ]
            },
        },
        index=0,
    )
    assert isinstance(entity, StateEntity)
    assert [lv.status for lv in entity.levels] == [StockStatus.DAMAGED]
    assert [s.reason for s in entity.skipped] == [
        "negative available quantity (-2)",
        "blocked row: unitMultiplier is missing or below 1",
        "unknown status 'lost'",
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "stock state is not an object"),
        ({"attributes": {"quantities": []}}, "stock state has no id"),
        ({"id": VARIANT, "attributes": {}}, "stock state has no quantities list"),
    ],
)
def test_an_unusable_state_entity_is_skipped(raw: Any, reason: str) -> None:
    parsed = parse_state_entity(raw, index=0)
    assert isinstance(parsed, Skipped)
    assert parsed.reason == reason


def test_a_lot_is_the_same_string_from_either_endpoint() -> None:
    # "each lot is uniquely identified by a lot number + an optional expiry date" (L13119)
    assert lot_key("lot-X", "2025-01-01") == "lot-X|2025-01-01"
    assert lot_key("lot-X", None) == "lot-X"
    assert lot_key(None, None) == ""
    assert lot_key("", "") == ""
