"""The fabric orders source against the fabric simulator over loopback sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.clock import SystemClock
from syncd.sources.fabric_orders import RETAILER_ORDERS_PATH, FabricOrdersSource
from tests.integration.sources._orders_support import Rig, after_first_page, order_rig

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def orders_path(rig: Rig) -> str:
    return f"/v1/brands/{rig.world.fabric.brand_id}/orders/"


def place_orders(rig: Rig, count: int) -> dict[str, str]:
    """``count`` orders of 2 units each (order id -> SKU); two per listing page."""
    rig.world.fabric.page_size = 2
    refs: dict[str, str] = {}
    for sku in rig.skus("fabric", count=count):
        order = rig.world.fabric.place_order({sku: 2}, allow_oversell=True)
        refs[str(order.order_id)] = sku
    return refs


async def open_lines(rig: Rig) -> dict[str, int]:
    return {ref: q for (channel, ref, _), q in (await rig.lines()).items() if channel == "fabric"}


async def test_token_expiry_and_a_429_mid_pagination_are_survived(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        source = rig.sources["fabric_orders"]
        refs = place_orders(rig, 5)
        await source.poll(rig.ledger)
        rig.world.fabric.revoke_tokens()
        faults = rig.world.faults["fabric"]
        after_first_page(
            rig.clients["fabric"],
            orders_path(rig),
            lambda: faults.arm(
                "status", status=429, count=1, path_prefix=orders_path(rig), retry_after=1
            ),
        )
        result = await source.poll(rig.ledger)
        assert result.complete
        assert not result.problems
        assert faults.fired.get("status") == 1
        assert rig.world.fabric.counters.snapshot()["unauthorized"]
        assert await open_lines(rig) == dict.fromkeys(refs, 2)
        assert await rig.ledger.check_invariants() == []


async def test_a_failed_page_or_a_listing_that_shifts_releases_nothing(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        source = rig.sources["fabric_orders"]
        refs = place_orders(rig, 5)
        await source.poll(rig.ledger)
        assert await open_lines(rig) == dict.fromkeys(refs, 2)
        first = int(min(refs))
        rig.world.fabric.ship_lines(first)

        faults = rig.world.faults["fabric"]
        after_first_page(
            rig.clients["fabric"],
            orders_path(rig),
            lambda: faults.arm("status", status=400, count=1, path_prefix=orders_path(rig)),
        )
        result = await source.poll(rig.ledger)
        assert not result.complete
        assert "listing fabric orders failed" in result.problems[0]
        assert await open_lines(rig) == dict.fromkeys(refs, 2)

        # An order on the first page closes while the pages are read: the rest
        # shift and the third order slips past page 2. Counted, not trusted.
        second = sorted(refs)[1]
        after_first_page(
            rig.clients["fabric"],
            orders_path(rig),
            lambda: rig.world.fabric.cancel_lines(int(second)),
        )
        result = await source.poll(rig.ledger)
        assert not result.complete
        assert any("changed while paging" in p for p in result.problems)
        assert set(await open_lines(rig)) == set(refs)  # nothing released on a shifted read

        result = await source.poll(rig.ledger)
        assert result.complete
        assert await open_lines(rig) == {r: 2 for r in refs if r not in {str(first), second}}
        assert await rig.ledger.check_invariants() == []


async def test_partial_shipments_and_cancellations_release_what_they_cover(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        sku_a, sku_b = rig.skus("fabric", count=2)
        order = rig.world.fabric.place_order({sku_a: 5, sku_b: 4}, allow_oversell=True)
        line_a, line_b = order.lines
        await rig.poll("fabric_orders")
        ref = str(order.order_id)
        rig.world.fabric.ship_lines(order.order_id, {line_a.line_id: 2})
        rig.world.fabric.cancel_lines(order.order_id, {line_b.line_id: 1})
        await rig.poll("fabric_orders")
        assert await rig.lines() == {("fabric", ref, sku_a): 3, ("fabric", ref, sku_b): 3}
        assert await rig.reserved() == {"fabric": {sku_a: 3, sku_b: 3}}


async def test_the_retailer_listing_can_be_configured_instead(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        section = rig.config.sources.fabric_orders
        assert section is not None
        source = FabricOrdersSource(
            rig.clients["fabric"],
            rig.config.catalog_model(),
            section,
            handover=None,
            clock=SystemClock(),
            retailer_id=str(rig.world.fabric.retailer_id),
            path=RETAILER_ORDERS_PATH,
        )
        sku = rig.skus("fabric", count=1)[0]
        order = rig.world.fabric.place_order({sku: 1}, allow_oversell=True)
        await source.poll(rig.ledger)
        assert await rig.lines() == {("fabric", str(order.order_id), sku): 1}


async def test_a_poll_costs_one_request_per_page_of_open_orders(tmp_path: Path) -> None:
    async with order_rig(tmp_path, variants=200) as rig:
        for sku in rig.skus("fabric", count=3):
            rig.world.fabric.place_order({sku: 1}, allow_oversell=True)
        key = "GET /v1/brands/{brand_id}/orders/"
        await rig.poll("fabric_orders")
        before = rig.world.fabric.counters.snapshot()["requests"][key]
        result = (await rig.poll("fabric_orders"))["fabric_orders"]
        assert rig.world.fabric.counters.snapshot()["requests"][key] - before == 1
        assert result.requests == 2  # the page, and one handover lookup for three orders
