"""The Ankorstore orders source against the Ankorstore simulator over loopback sockets."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.clock import SystemClock
from syncd.sandbox.ankorstore_stock import SimListing
from syncd.sources.ankorstore_orders import AnkorstoreOrdersSource
from tests.integration.sources._orders_support import Rig, after_first_page, order_rig

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ORDERS = "/api/v1/orders"


def small_pages(rig: Rig) -> AnkorstoreOrdersSource:
    """The source as built from config, but two orders per page: every listing paginates."""
    section = rig.config.sources.ankorstore_orders
    assert section is not None
    return AnkorstoreOrdersSource(
        rig.clients["ankorstore"],
        rig.config.catalog_model(),
        section,
        handover=None,
        clock=SystemClock(),
        page_size=2,
    )


def place_orders(rig: Rig, count: int) -> dict[str, str]:
    """``count`` one-line orders (order ref -> SKU), a third of them already accepted."""
    skus = rig.skus("ankorstore", count=count, pack=False)
    refs: dict[str, str] = {}
    for index, sku in enumerate(skus):
        status = "brand_confirmed" if index % 3 == 0 else "ankor_confirmed"
        order = rig.world.ankorstore.place_order({sku: 1}, status=status, force=True)
        refs[str(order.reference)] = sku
    return refs


async def open_refs(rig: Rig) -> set[str]:
    return {ref for channel, ref, _ in await rig.lines() if channel == "ankorstore"}


async def test_token_expiry_and_a_429_mid_pagination_are_survived(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        source = small_pages(rig)
        refs = place_orders(rig, 7)
        await source.poll(rig.ledger)  # obtains a token
        rig.world.ankorstore.revoke_tokens()  # it dies before the next poll
        faults = rig.world.faults["ankorstore"]
        after_first_page(
            rig.clients["ankorstore"],
            ORDERS,
            lambda: faults.arm("status", status=429, count=1, path_prefix=ORDERS, retry_after=1),
        )
        rig.world.ankorstore.cancel_order(rig.world.ankorstore.orders()[0].id)
        result = await source.poll(rig.ledger)

        assert result.complete
        assert not result.problems
        assert faults.fired.get("status") == 1
        assert rig.world.ankorstore.counters.unauthorized >= 1
        cancelled = str(rig.world.ankorstore.orders()[0].reference)
        assert await open_refs(rig) == set(refs) - {cancelled}
        assert await rig.ledger.check_invariants() == []


async def test_a_failed_page_releases_nothing(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        source = small_pages(rig)
        refs = place_orders(rig, 7)
        await source.poll(rig.ledger)
        before = await rig.lines()
        assert await open_refs(rig) == set(refs)

        # The newest order (listed first) is cancelled, then a later page fails.
        newest = rig.world.ankorstore.orders()[0]
        rig.world.ankorstore.cancel_order(newest.id)
        faults = rig.world.faults["ankorstore"]
        after_first_page(
            rig.clients["ankorstore"],
            ORDERS,
            lambda: faults.arm("status", status=400, count=1, path_prefix=ORDERS),
        )
        result = await source.poll(rig.ledger)
        assert not result.complete
        assert "listing ankor_confirmed orders failed" in result.problems[0]
        assert await rig.lines() == before  # nothing released, not even the cancelled one
        states = {s.feed: s for s in await rig.ledger.feed_states()}
        assert states["ankorstore_orders"].last_error is not None

        result = await source.poll(rig.ledger)  # a clean listing releases exactly that one
        assert result.complete
        assert await open_refs(rig) == set(refs) - {str(newest.reference)}
        assert await rig.ledger.check_invariants() == []


async def test_unknown_variants_are_reported_and_the_rest_recorded(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        state = rig.world.ankorstore
        known = rig.skus("ankorstore", count=1, pack=False)[0]
        stranger = SimListing(
            id="0b9d6c52-0000-4000-8000-00000000dead",
            sku="NOT-IN-CATALOG",
            name="A variant syncd does not manage",
            product_id="0b9d6c52-0000-4000-8000-00000000beef",
            unit_multiplier=1,
            ian=None,
            stock_quantity=10,
        )
        state.listings[stranger.id] = stranger
        order = state.place_order({known: 2, stranger.id: 1}, force=True)
        result = (await rig.poll("ankorstore_orders"))["ankorstore_orders"]
        assert result.complete
        assert result.skipped == 1
        assert "NOT-IN-CATALOG" in result.problems[0]
        assert await rig.lines() == {("ankorstore", str(order.reference), known): 2}


async def test_a_poll_costs_one_request_per_page_of_open_orders(tmp_path: Path) -> None:
    async with order_rig(tmp_path, variants=200) as rig:
        place_orders(rig, 3)
        requests = rig.world.ankorstore.counters.requests
        await rig.poll("ankorstore_orders")
        listed, looked_up = requests[f"GET {ORDERS}"], rig.world.activeants.counters.requests
        handover_before = looked_up.get("GET /v3/orders", 0)
        result = (await rig.poll("ankorstore_orders"))["ankorstore_orders"]
        # Three holding statuses, one page each. No handover lookup: Ankorstore's own
        # orders reserve until Ankorstore closes them (syncd.sources.handover).
        assert requests[f"GET {ORDERS}"] - listed == 3
        assert looked_up.get("GET /v3/orders", 0) - handover_before == 0
        assert result.requests == 3
