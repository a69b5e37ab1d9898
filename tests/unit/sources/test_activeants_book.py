"""What a bulk read becomes in the ledger: complete, partial, refused or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from syncd.model import StockStatus
from syncd.sources.activeants_book import UNKNOWN_SKU, BulkPlan, plan_bulk
from syncd.sources.activeants_parse import BulkRead, Lot, ProductStock
from syncd.sources.problems import Skipped

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MAPPING = {"AA-1": "TEE-S", "AA-2": "TEE-M", "AA-3": "TEE-L"}


def read(*products: ProductStock, skipped: tuple[Skipped, ...] = (), to: str = "T1") -> BulkRead:
    return BulkRead(
        to=to,
        period_from=None,
        products=products,
        skipped=skipped,
        listed=len(products) + len(skipped),
    )


def plan(bulk: BulkRead, *, full: bool) -> BulkPlan:
    return plan_bulk(
        bulk,
        full=full,
        mapping=MAPPING,
        source="activeants",
        location="activeants",
        stock_field="availableStock",
        observed_at=NOW,
    )


ALL = (ProductStock("AA-1", 5), ProductStock("AA-2", 0), ProductStock("AA-3", 7))


def test_a_full_read_of_every_mapped_sku_is_a_complete_snapshot_with_its_cursor() -> None:
    result = plan(read(*ALL), full=True)
    assert result.draft is not None
    assert result.complete
    assert result.draft.complete
    assert result.draft.levels == {
        (StockStatus.AVAILABLE, "TEE-S", ""): 5,
        (StockStatus.AVAILABLE, "TEE-M", ""): 0,
        (StockStatus.AVAILABLE, "TEE-L", ""): 7,
    }
    assert result.draft.cursor is not None
    assert result.draft.cursor.value == "T1"
    assert result.draft.location == "activeants"
    assert result.problems == []


def test_a_full_read_missing_mapped_skus_is_partial_and_reported() -> None:
    result = plan(read(ProductStock("AA-1", 5)), full=True)
    assert result.draft is not None
    assert not result.draft.complete
    assert not result.complete
    assert set(result.draft.levels) == {(StockStatus.AVAILABLE, "TEE-S", "")}
    assert result.problems == [
        "full read covered 1 of 3 mapped SKUs; the others keep their last recorded level:"
        " TEE-L, TEE-M"
    ]


def test_a_full_read_with_nothing_usable_records_nothing() -> None:
    for bulk in (read(), read(ProductStock("XX-9", 3)), read(skipped=(Skipped("#0", "x"),))):
        result = plan(bulk, full=True)
        assert result.draft is None
        assert result.refused is not None
        assert "nothing recorded" in result.problems[0]


def test_unknown_skus_are_skipped_and_a_duplicate_records_its_lower_figure() -> None:
    for first, second in ((5, 9), (9, 5)):
        bulk = read(
            ProductStock("AA-1", first), ProductStock("ZZ-1", 4), ProductStock("AA-1", second)
        )
        result = plan(bulk, full=False)
        assert result.skipped == [
            Skipped("ZZ-1", UNKNOWN_SKU),
            Skipped(
                "AA-1", f"listed twice in one read ({first} and {second}): the lower, 5, recorded"
            ),
        ]
        assert result.draft is not None
        assert result.draft.levels == {(StockStatus.AVAILABLE, "TEE-S", ""): 5}
        assert not result.draft.complete


def test_an_incremental_read_that_lists_nothing_records_nothing() -> None:
    assert plan(read(), full=False).draft is None


def test_an_incremental_read_of_only_bad_items_still_moves_the_cursor() -> None:
    result = plan(read(skipped=(Skipped("AA-1", "negative availableStock (-1)"),)), full=False)
    assert result.draft is not None
    assert result.draft.levels == {}
    assert result.draft.cursor is not None


def test_lots_stay_in_metadata_and_never_split_the_available_balance() -> None:
    lots = (Lot("L1", "2027-06-30T00:00:00", 9), Lot("L2", None, 2))
    result = plan(read(ProductStock("AA-1", 5, lots), *ALL[1:]), full=True)
    assert result.draft is not None
    assert all(lot == "" for _, _, lot in result.draft.levels)
    assert json.loads(result.draft.metadata["lots"]) == {
        "TEE-S": [["L1", "2027-06-30T00:00:00", 9], ["L2", "", 2]]
    }
    assert result.draft.metadata["stock_field"] == "availableStock"
