"""The Ankorstore orders source against hand-built JSON:API pages (httpx.MockTransport)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.sources.ankorstore_orders import AnkorstoreOrdersSource
from syncd.sources.orders_ankorstore_parse import HOLDING_STATUSES
from tests.unit.sources._orders_fakes import (
    SECTION,
    FakeAnkorstore,
    ak_item,
    ak_order,
    ak_variant,
    ankorstore,
    catalog,
    open_ledger,
    open_lines,
)

pytestmark = pytest.mark.anyio


def source(fake: FakeAnkorstore) -> AnkorstoreOrdersSource:
    clock = FakeClock()
    return AnkorstoreOrdersSource(
        ankorstore(fake, clock), catalog(), SECTION, handover=None, clock=clock
    )


async def test_items_reserve_pieces_of_the_brand_sku(tmp_path: Path) -> None:
    fake = FakeAnkorstore()
    fake.pages["ankor_confirmed"] = [
        (
            [ak_order(101, ["i1", "i2", "i3"])],
            [
                # 2 packs of 6 bottles: 12 pieces.
                ak_item("i1", "ak-wine", quantity=2, multiplied=12),
                # An unknown variant id, but its included SKU is known.
                ak_item("i2", "old-id", quantity=1, item_type="orderItems"),
                ak_variant("old-id", "AK-TEE-S"),
                # No multipliedQuantity: packs x the catalog's pack size.
                ak_item("i3", "ak-tee-m", quantity=3, variant_type="productVariant"),
            ],
        )
    ]
    fake.pages["brand_confirmed"] = [
        ([ak_order(102, ["j1"], status="brand_confirmed")], [ak_item("j1", "ak-wine", quantity=1)])
    ]
    async with open_ledger(tmp_path) as ledger:
        result = await source(fake).poll(ledger)
        assert result.complete
        assert result.skipped == 0
        assert result.requests == 3
        assert await open_lines(ledger) == {
            ("101", "WINE"): 12,
            ("101", "TEE-S"): 1,
            ("101", "TEE-M"): 3,
            ("102", "WINE"): 6,
        }
        reservations = await ledger.open_reservations()
        assert {r.location for r in reservations} == {"activeants"}
    asked = [r.url.params for r in fake.requests]
    assert [p["filter[status]"] for p in asked] == list(HOLDING_STATUSES)
    assert all(p["include"] == "orderItems.productVariant" for p in asked)
    assert "fulfillment_requested" not in HOLDING_STATUSES


async def test_orders_leaving_the_holding_statuses_are_released(tmp_path: Path) -> None:
    fake = FakeAnkorstore()
    fake.pages["ankor_confirmed"] = [
        ([ak_order(101, ["a"]), ak_order(102, ["b"])], [ak_item("a", "ak-tee-s", quantity=4)])
    ]
    fake.pages["ankor_confirmed"][0][1].append(ak_item("b", "ak-tee-m", quantity=2))
    async with open_ledger(tmp_path) as ledger:
        src = source(fake)
        await src.poll(ledger)
        assert await open_lines(ledger) == {("101", "TEE-S"): 4, ("102", "TEE-M"): 2}
        # 101 accepted with a reduced quantity; 102 shipped (gone from every holding listing).
        fake.pages["ankor_confirmed"] = [([], [])]
        fake.pages["brand_confirmed"] = [
            (
                [ak_order(101, ["a"], status="brand_confirmed")],
                [ak_item("a", "ak-tee-s", quantity=3)],
            )
        ]
        await src.poll(ledger)
        assert await open_lines(ledger) == {("101", "TEE-S"): 3}


async def test_an_order_moving_on_during_the_listing_is_counted_once(tmp_path: Path) -> None:
    fake = FakeAnkorstore()
    fake.pages["ankor_confirmed"] = [([ak_order(7, ["x"])], [ak_item("x", "ak-tee-s", quantity=5)])]
    fake.pages["brand_confirmed"] = [
        ([ak_order(7, ["y"], status="brand_confirmed")], [ak_item("y", "ak-tee-s", quantity=4)])
    ]
    async with open_ledger(tmp_path) as ledger:
        result = await source(fake).poll(ledger)
        assert result.skipped == 0
        assert await open_lines(ledger) == {("7", "TEE-S"): 4}


async def test_malformed_items_are_skipped_and_reported_and_never_release(tmp_path: Path) -> None:
    fake = FakeAnkorstore()
    good = [
        ak_order(201, ["g"]),
        ak_order(202, ["m1", "m2"]),
        ak_order(203, ["n"]),
        ak_order(204, ["u"]),
        ak_order(301, ["z"]),
    ]
    included = [
        ak_item("g", "ak-tee-s", quantity=2),
        ak_item("m1", "ak-tee-m", quantity=4),
        ak_item("m2", "ak-tee-s", quantity=1),
        ak_item("n", "ak-tee-s", quantity=5),
        ak_item("u", "ak-tee-m", quantity=1),
        ak_item("z", "ak-tee-m", quantity=9),
    ]
    fake.pages["ankor_confirmed"] = [(good, included)]
    async with open_ledger(tmp_path) as ledger:
        src = source(fake)
        await src.poll(ledger)
        first = await open_lines(ledger)

        fake.pages["ankor_confirmed"] = [
            (
                [
                    ak_order(201, ["g", "q"]),  # q: a variant syncd does not manage
                    ak_order(202, ["m1", "gone"]),  # gone: not in included
                    ak_order(203, ["n"]),  # n: negative quantity now
                    ak_order(204, ["u"], status="teleported"),  # unknown status
                    ak_order(201, ["g"]),  # listed twice
                    ak_order(None, ["h"], ident="no-ref"),  # cannot be identified
                    # 301 is absent: with an unidentifiable entry the listing proves nothing.
                ],
                [
                    ak_item("g", "ak-tee-s", quantity=2),
                    ak_item("q", "ak-unknown", quantity=1),
                    ak_item("m1", "ak-tee-m", quantity=4),
                    ak_item("n", "ak-tee-s", quantity=-5),
                    ak_item("u", "ak-tee-m", quantity=1),
                    ak_item("h", "ak-tee-s", quantity=1),
                ],
            )
        ]
        with capture_logs() as logs:
            result = await src.poll(ledger)
        assert not result.complete
        assert result.skipped == 6
        skipped = [e for e in logs if e["event"] == "source.item_skipped"]
        assert {e["source"] for e in skipped} == {"ankorstore_orders"}
        reasons = {e["item"]: e["reason"] for e in skipped}
        assert "not in the catalog" in reasons["order 201 item q"]
        assert "not in included" in reasons["order 202 item gone"]
        assert "no valid quantity" in reasons["order 203 item n"]
        assert "unknown status" in reasons["order 204"]
        assert "listed twice" in reasons["order 201"]
        assert "no reference" in reasons["order no-ref"]
        # Everything that was open stays open: nothing corrupted, nothing released.
        assert await open_lines(ledger) == first
        assert await ledger.check_invariants() == []


async def test_a_failed_page_records_what_was_read_and_releases_nothing(tmp_path: Path) -> None:
    fake = FakeAnkorstore()
    fake.pages["ankor_confirmed"] = [
        ([ak_order(1, ["a"])], [ak_item("a", "ak-tee-s", quantity=1)]),
        ([ak_order(2, ["b"])], [ak_item("b", "ak-tee-m", quantity=2)]),
    ]
    async with open_ledger(tmp_path) as ledger:
        src = source(fake)
        await src.poll(ledger)
        assert await open_lines(ledger) == {("1", "TEE-S"): 1, ("2", "TEE-M"): 2}

        # Order 1 now has 3 units; page 2 fails (no retry in these tests).
        fake.pages["ankor_confirmed"][0] = (
            [ak_order(1, ["a"])],
            [ak_item("a", "ak-tee-s", quantity=3)],
        )

        def page_two_fails(request: httpx.Request) -> httpx.Response | None:
            if request.url.params.get("page[after]") == "1":
                return httpx.Response(500, json={"errors": [{"status": "500"}]})
            return None

        fake.intercept = page_two_fails
        fake.requests.clear()
        result = await src.poll(ledger)
        assert not result.complete
        assert result.problems
        assert "500" in result.problems[0]
        assert result.requests == 2
        assert len(fake.requests) == 2  # no further status is listed after a failure
        assert await open_lines(ledger) == {("1", "TEE-S"): 3, ("2", "TEE-M"): 2}
        states = {s.feed: s for s in await ledger.feed_states()}
        assert states["ankorstore_orders"].last_error is not None
