"""The fabric orders source against hand-built DRF pages (httpx.MockTransport)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.sources.fabric_orders import FabricOrdersSource, orders_path
from tests.unit.sources._orders_fakes import (
    SECTION,
    FakeFabric,
    catalog,
    fabric,
    fb_line,
    open_ledger,
    open_lines,
)

pytestmark = pytest.mark.anyio


def order(ident: Any, *lines: Any, status: str = "open") -> dict[str, Any]:
    return {"id": ident, "status": status, "order_lines": list(lines)}


def source(fake: FakeFabric) -> FabricOrdersSource:
    clock = FakeClock()
    return FabricOrdersSource(
        fabric(fake, clock), catalog(), SECTION, handover=None, clock=clock, brand_id="510"
    )


async def test_open_quantities_reserve_and_closed_lines_do_not(tmp_path: Path) -> None:
    fake = FakeFabric(
        pages=[
            [
                order(
                    1015,
                    fb_line(1, "FB-TEE-S", quantity=5, quantity_open=3, quantity_shipped=2),
                    fb_line(2, "FB-TEE-M", quantity=2, quantity_open=0, status="canceled"),
                )
            ],
            [
                # quantity_open missing: derived from quantity - shipped - canceled.
                order(
                    1016, fb_line(3, "FB-WINE", quantity=4, quantity_shipped=1, quantity_canceled=1)
                ),
            ],
        ]
    )
    async with open_ledger(tmp_path) as ledger:
        result = await source(fake).poll(ledger)
        assert result.complete
        assert result.requests == 2
        assert await open_lines(ledger) == {("1015", "TEE-S"): 3, ("1016", "WINE"): 2}
    assert [r.url.path for r in fake.requests] == ["/v1/brands/510/orders/"] * 2
    assert fake.requests[0].url.params["status"] == "open"


async def test_malformed_lines_are_reported_and_keep_what_was_reserved(tmp_path: Path) -> None:
    fake = FakeFabric(
        pages=[
            [
                order(1, fb_line(10, "FB-TEE-S", quantity=4, quantity_open=4)),
                order(2, fb_line(20, "FB-TEE-M", quantity=3, quantity_open=3)),
                order(3, fb_line(30, "FB-WINE", quantity=2, quantity_open=2)),
            ]
        ]
    )
    async with open_ledger(tmp_path) as ledger:
        src = source(fake)
        await src.poll(ledger)
        fake.pages = [
            [
                order(
                    1,
                    fb_line(10, "FB-TEE-S", quantity=4, quantity_open=-1),  # negative
                    fb_line(11, "FB-NOPE", quantity=1, quantity_open=1),  # unknown SKU
                ),
                order(2, fb_line(20, None, quantity=3, quantity_open=3)),  # no variant
                order(3, fb_line(30, "FB-WINE", quantity=2, quantity_open=7)),  # open > ordered
                order(3, fb_line(30, "FB-WINE", quantity=2, quantity_open=1)),  # listed twice
                {"status": "open", "order_lines": []},  # no id
            ]
        ]
        with capture_logs() as logs:
            result = await src.poll(ledger)
        assert not result.complete  # an unidentifiable order: nothing may be released
        skipped = {e["item"]: e["reason"] for e in logs if e["event"] == "source.item_skipped"}
        assert set(skipped) == {
            "order 1 line 10",
            "order 1 line 11",
            "order 2 line 20",
            "order 3 line 30",
            "order 3",
            "order ?",
        }
        assert "not in the catalog" in skipped["order 1 line 11"]
        assert await open_lines(ledger) == {("1", "TEE-S"): 4, ("2", "TEE-M"): 3, ("3", "WINE"): 2}
        assert await ledger.check_invariants() == []


async def test_a_count_that_changes_between_pages_releases_nothing(tmp_path: Path) -> None:
    fake = FakeFabric(
        pages=[
            [order(1, fb_line(1, "FB-TEE-S", quantity=1, quantity_open=1))],
            [order(2, fb_line(2, "FB-TEE-M", quantity=1, quantity_open=1))],
        ]
    )
    async with open_ledger(tmp_path) as ledger:
        src = source(fake)
        await src.poll(ledger)
        # Order 1 closed between the two reads: page 2 now starts one order later.
        fake.pages = [[order(2, fb_line(2, "FB-TEE-M", quantity=1, quantity_open=1))], []]
        fake.counts = [2, 1]
        result = await src.poll(ledger)
        assert not result.complete
        assert await open_lines(ledger) == {("1", "TEE-S"): 1, ("2", "TEE-M"): 1}
        fake.pages, fake.counts = (
            [[order(2, fb_line(2, "FB-TEE-M", quantity=1, quantity_open=1))]],
            None,
        )
        result = await src.poll(ledger)
        assert result.complete
        assert await open_lines(ledger) == {("2", "TEE-M"): 1}


def test_the_orders_path_is_a_checked_template() -> None:
    assert orders_path("/v1/brands/{brand_id}/orders/", brand_id="7", retailer_id=None) == (
        "/v1/brands/7/orders/"
    )
    with pytest.raises(ValueError, match="needs retailer_id"):
        orders_path("/v1/retailers/{retailer_id}/orders/", brand_id="7", retailer_id=None)
    with pytest.raises(ValueError, match="must end with"):
        orders_path("/v1/brands/{brand_id}/orders", brand_id="7", retailer_id=None)
    with pytest.raises(ValueError, match="unknown placeholder"):
        orders_path("/v1/{shop}/orders/", brand_id="7", retailer_id=None)


async def test_a_line_listed_twice_reserves_its_larger_copy_and_distinct_lines_add_up(
    tmp_path: Path,
) -> None:
    for copies in ((2, 5), (5, 2)):
        fake = FakeFabric(
            pages=[
                [
                    order(
                        1,
                        fb_line(10, "FB-TEE-S", quantity=6, quantity_open=copies[0]),
                        fb_line(10, "FB-TEE-S", quantity=6, quantity_open=copies[1]),
                        fb_line(11, "FB-TEE-S", quantity=1, quantity_open=1),  # its own line
                    )
                ]
            ]
        )
        (tmp_path / f"{copies[0]}").mkdir()
        async with open_ledger(tmp_path / f"{copies[0]}") as ledger:
            with capture_logs() as logs:
                result = await source(fake).poll(ledger)
            assert await open_lines(ledger) == {("1", "TEE-S"): 5 + 1}
            skipped = [
                (e["item"], e["reason"]) for e in logs if e["event"] == "source.item_skipped"
            ]
            assert skipped == [
                (
                    "order 1 line 10",
                    "line id listed twice in one order: the larger open quantity counts",
                )
            ]
            assert result.skipped == 1


async def test_a_wall_clock_stepped_back_does_not_hold_a_closed_order(tmp_path: Path) -> None:
    clock = FakeClock()
    fake = FakeFabric(pages=[[order(1015, fb_line(1, "FB-TEE-S", quantity=2, quantity_open=2))]])
    src = FabricOrdersSource(
        fabric(fake, clock), catalog(), SECTION, handover=None, clock=clock, brand_id="510"
    )
    async with open_ledger(tmp_path) as ledger:
        await src.poll(ledger)
        assert await open_lines(ledger) == {("1015", "TEE-S"): 2}
        # NTP sets the clock back an hour; the order is cancelled meanwhile.
        clock.step_wall(-3600)
        clock.advance(30)
        fake.pages = [[]]
        with capture_logs() as logs:
            result = await src.poll(ledger)
        assert result.complete
        # Released at once, not an hour later: the listing counts as the newer one.
        assert await open_lines(ledger) == {}
        assert [e["event"] for e in logs if e["event"] == "source.clock_behind"] == [
            "source.clock_behind"
        ]
