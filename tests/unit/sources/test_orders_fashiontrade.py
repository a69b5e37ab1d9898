"""The FashionTrade orders source against a hand-built order API (httpx.MockTransport)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.sources.fashiontrade import FashionTradeOrdersSource
from syncd.sources.orders_fashiontrade_parse import OPEN_OVERVIEW
from tests.unit.sources._orders_fakes import (
    SECTION,
    FakeFashionTrade,
    catalog,
    fashiontrade,
    ft_line,
    open_ledger,
    open_lines,
)

pytestmark = pytest.mark.anyio

TEE_S, TEE_M, WINE, PREPACK = "8700000000011", "8700000000028", "8700000000035", "8799999999990"


def order(number: str, *lines: dict[str, Any]) -> dict[str, Any]:
    statuses = {line["status"] for line in lines}
    return {
        "order_number": number,
        "status": statuses.pop() if len(statuses) == 1 else "MIXED",
        "order_lines": list(lines),
    }


def put(fake: FakeFashionTrade, *orders: dict[str, Any]) -> None:
    for entry in orders:
        fake.orders[entry["order_number"]] = entry
        fake.statuses[entry["order_number"]] = entry["status"]


def source(fake: FakeFashionTrade, clock: FakeClock | None = None, **options: Any) -> Any:
    clock = clock or FakeClock()
    return FashionTradeOrdersSource(
        fashiontrade(fake, clock), catalog(), SECTION, handover=None, clock=clock, **options
    )


def detail_reads(fake: FakeFashionTrade) -> list[str]:
    return [p.removeprefix("/orders/") for p in fake.paths("/orders/")]


async def test_lines_statuses_and_prepacks_become_units(tmp_path: Path) -> None:
    fake = FakeFashionTrade()
    put(
        fake,
        order(
            "FT1",
            ft_line("1", TEE_S, 3),
            ft_line("2", PREPACK, 2, type="PREPACK"),  # by barcode: 2x(2 TEE-S + 1 TEE-M)
            ft_line("3", "0000", 1, type="PREPACK", product_id=PREPACK),  # by product_id
            ft_line("4", WINE, 5, status="SHIPPED"),
            ft_line("5", TEE_M, 1, type="VARIANT", status="PARTIALLY_SHIPPED"),
        ),
        order("FT2", ft_line("1", TEE_M, 4, status="REJECTED")),
    )
    async with open_ledger(tmp_path) as ledger:
        result = await source(fake).poll(ledger)
        assert result.skipped == 0
        assert await open_lines(ledger) == {
            ("FT1", "TEE-S"): 3 + 4 + 2,
            ("FT1", "TEE-M"): 2 + 1 + 1,
        }
    # The closed order needs no line read.
    assert detail_reads(fake) == ["FT1"]
    listings = [r.url.params for r in fake.requests if r.url.path == "/orders"]
    assert listings[0]["created_after"].endswith("Z")
    assert sorted(p["status"] for p in listings[1:]) == sorted(OPEN_OVERVIEW)


async def test_bad_lines_are_reported_and_never_lower_a_reservation(tmp_path: Path) -> None:
    fake = FakeFashionTrade()
    put(fake, order("FT1", ft_line("1", TEE_S, 3), ft_line("2", TEE_M, 2)))
    async with open_ledger(tmp_path) as ledger:
        src = source(fake, lines_max_age=0)
        await src.poll(ledger)
        put(
            fake,
            order(
                "FT1",
                ft_line("1", TEE_S, -3),  # negative: keep 3
                ft_line("2", TEE_M, 2, status="ON_A_BOAT"),  # unknown status: keep 2
                ft_line("3", "1234567890123", 4),  # unknown barcode
                ft_line("4", "9999", 1, type="PREPACK"),  # unknown prepack
                ft_line("5", TEE_S, 1, type="BOX"),  # unknown type
                ft_line("4", TEE_S, 1),  # duplicate line id
            ),
        )
        fake.statuses["FT1"] = "SUBMITTED"
        with capture_logs() as logs:
            result = await src.poll(ledger)
        skipped: dict[str, str] = {}
        for event in logs:
            if event["event"] == "source.item_skipped":
                skipped[event["item"]] = skipped.get(event["item"], "") + event["reason"] + "; "
        assert result.skipped == 6
        assert "no valid quantity" in skipped["order FT1 line 1"]
        assert "unknown status" in skipped["order FT1 line 2"]
        assert "barcode '1234567890123'" in skipped["order FT1 line 3"]
        assert "prepack" in skipped["order FT1 line 4"]
        assert "line id listed twice in one order" in skipped["order FT1 line 4"]
        assert "unknown line type" in skipped["order FT1 line 5"]
        assert await open_lines(ledger) == {("FT1", "TEE-S"): 3, ("FT1", "TEE-M"): 2}
        assert await ledger.check_invariants() == []


async def test_known_lines_are_not_read_again_but_mixed_orders_are(tmp_path: Path) -> None:
    fake = FakeFashionTrade()
    put(
        fake,
        order("FT1", ft_line("1", TEE_S, 1)),
        order("FT2", ft_line("1", TEE_M, 1), ft_line("2", TEE_S, 2, status="CONFIRMED")),
    )
    async with open_ledger(tmp_path) as ledger:
        src = source(fake)
        await src.poll(ledger)
        fake.requests.clear()
        await src.poll(ledger)
        assert fake.paths() == ["/orders", "/orders/FT2"]  # no sweep, FT1's lines known

        fake.orders["FT2"]["order_lines"][1]["status"] = "SHIPPED"  # still MIXED
        await src.poll(ledger)
        assert await open_lines(ledger) == {("FT1", "TEE-S"): 1, ("FT2", "TEE-M"): 1}

        # Every line closed, overview still MIXED: read once more, then left alone.
        fake.orders["FT2"]["order_lines"][0]["status"] = "REJECTED"
        await src.poll(ledger)
        fake.requests.clear()
        await src.poll(ledger)
        assert fake.paths() == ["/orders"]
        assert await open_lines(ledger) == {("FT1", "TEE-S"): 1}

        # A new overview status is a change: the lines are read again.
        fake.orders["FT1"]["order_lines"][0]["status"] = "CONFIRMED"
        fake.orders["FT1"]["order_lines"][0]["quantity"] = 2
        fake.statuses["FT1"] = "CONFIRMED"
        await src.poll(ledger)
        assert await open_lines(ledger) == {("FT1", "TEE-S"): 2}


async def test_an_order_that_vanishes_keeps_its_reservation(tmp_path: Path) -> None:
    fake = FakeFashionTrade()
    put(fake, order("FT1", ft_line("1", TEE_S, 2)))
    async with open_ledger(tmp_path) as ledger:
        await source(fake).poll(ledger)
        del fake.orders["FT1"], fake.statuses["FT1"]
        # A restarted source learns of FT1 from the ledger, reads it by number: 404.
        result = await source(fake).poll(ledger)
        assert any("404" in p for p in result.problems)
        assert await open_lines(ledger) == {("FT1", "TEE-S"): 2}


async def test_per_order_reads_are_bounded_per_poll(tmp_path: Path) -> None:
    fake = FakeFashionTrade()
    put(fake, *(order(f"FT{n}", ft_line("1", TEE_S, 1)) for n in range(5)))
    async with open_ledger(tmp_path) as ledger:
        src = source(fake, max_order_requests=2)
        results = [await src.poll(ledger) for _ in range(3)]
        assert [r.caught_up for r in results] == [False, False, True]
        assert len(detail_reads(fake)) == 5
        assert len(await open_lines(ledger)) == 5


async def test_a_line_listed_twice_reserves_its_larger_copy(tmp_path: Path) -> None:
    fake = FakeFashionTrade()
    # The larger copy second: keeping the first would release 3 units still ordered.
    put(fake, order("FT1", ft_line("1", TEE_S, 2), ft_line("1", TEE_S, 5), ft_line("2", TEE_S, 1)))
    async with open_ledger(tmp_path) as ledger:
        with capture_logs() as logs:
            result = await source(fake).poll(ledger)
        assert await open_lines(ledger) == {("FT1", "TEE-S"): 5 + 1}
        skipped = [(e["item"], e["reason"]) for e in logs if e["event"] == "source.item_skipped"]
        assert skipped == [
            (
                "order FT1 line 1",
                "line id listed twice in one order: the larger open quantity counts",
            )
        ]
        assert result.skipped == 1
