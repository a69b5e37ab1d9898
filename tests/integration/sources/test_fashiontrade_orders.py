"""The FashionTrade orders source against the FashionTrade simulator over loopback sockets."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from syncd.clock import SystemClock
from syncd.sources.fashiontrade import FashionTradeOrdersSource
from tests.integration.sources._orders_support import Rig, after_first_page, order_rig

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

HOUR = 3_600.0


class ShiftedClock(SystemClock):
    """Real time, moved forward by hand: orders placed "now" become old for the source."""

    def __init__(self) -> None:
        self.shift = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.shift

    def wall(self) -> float:
        return time.time() + self.shift

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


def source(rig: Rig, clock: ShiftedClock, **options: float) -> FashionTradeOrdersSource:
    section = rig.config.sources.fashiontrade
    assert section is not None
    return FashionTradeOrdersSource(
        rig.clients["fashiontrade"],
        rig.config.catalog_model(),
        section,
        handover=None,
        clock=clock,
        lookback=options.get("lookback", HOUR),
        page_limit=2,
    )


def ft_lines(lines: dict[tuple[str, str, str], int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (channel, ref, sku), quantity in lines.items():
        if channel == "fashiontrade":
            out.setdefault(ref, {})[sku] = quantity
    return out


def place(rig: Rig, count: int) -> dict[str, str]:
    refs: dict[str, str] = {}
    for sku in rig.skus("fashiontrade", count=count):
        refs[rig.world.fashiontrade.place_order([(sku, 2)]).order_number] = sku
    return refs


async def test_a_429_mid_pagination_is_survived_and_a_revoked_key_releases_nothing(
    tmp_path: Path,
) -> None:
    async with order_rig(tmp_path) as rig:
        ft = source(rig, ShiftedClock())
        refs = place(rig, 5)
        faults = rig.world.faults["fashiontrade"]
        after_first_page(
            rig.clients["fashiontrade"],
            "/orders",
            lambda: faults.arm("status", status=429, count=1, path_prefix="/orders", retry_after=1),
        )
        result = await ft.poll(rig.ledger)
        assert not result.problems
        assert faults.fired.get("status") == 1
        assert ft_lines(await rig.lines()) == {r: {sku: 2} for r, sku in refs.items()}

        # A static key cannot be refreshed: the poll fails, and nothing is released
        # (the HTTP layer then rests the key for a while before trying it again).
        rig.world.fashiontrade.set_order_status(next(iter(refs)), "SHIPPED")
        rig.world.fashiontrade.revoke_tokens()
        result = await ft.poll(rig.ledger)
        assert result.problems
        assert "401" in result.problems[0]
        assert ft_lines(await rig.lines()) == {r: {sku: 2} for r, sku in refs.items()}
        states = {s.feed: s for s in await rig.ledger.feed_states()}
        assert states["fashiontrade"].last_error is not None
        assert await rig.ledger.check_invariants() == []


async def test_open_orders_older_than_the_window_stay_reserved_until_they_close(
    tmp_path: Path,
) -> None:
    async with order_rig(tmp_path) as rig:
        clock = ShiftedClock()
        old_sku, new_sku = rig.skus("fashiontrade", count=2)
        old = rig.world.fashiontrade.place_order([(old_sku, 3)])
        # Two hours pass for FashionTrade and for syncd: `old` leaves the one-hour window.
        rig.world.clock.advance(2 * HOUR)
        clock.shift = 2 * HOUR

        # A first poll sweeps the open statuses without a date bound: it finds `old`.
        first = source(rig, clock)
        await first.poll(rig.ledger)
        assert ft_lines(await rig.lines()) == {old.order_number: {old_sku: 3}}

        # After a restart (nothing in memory) it is re-read by number, from the ledger.
        restarted = source(rig, clock)
        await restarted.poll(rig.ledger)  # start-up sweep
        new = rig.world.fashiontrade.place_order([(new_sku, 1)])
        counters = rig.world.fashiontrade.counters
        before = dict(counters.snapshot()["requests"])
        result = await restarted.poll(rig.ledger)
        after = counters.snapshot()["requests"]
        assert after["GET /orders"] - before["GET /orders"] == 1  # the window, one page
        # `new` is read once for its lines; `old` (outside the window) is re-read by number.
        assert after["GET /orders/{orderNumber}"] - before["GET /orders/{orderNumber}"] == 2
        assert result.requests == 3
        assert ft_lines(await rig.lines()) == {
            old.order_number: {old_sku: 3},
            new.order_number: {new_sku: 1},
        }

        # No changes: the window page, plus the old order by number. `new`'s lines are known.
        before = dict(counters.snapshot()["requests"])
        await restarted.poll(rig.ledger)
        after = counters.snapshot()["requests"]
        assert after["GET /orders"] - before["GET /orders"] == 1
        assert after["GET /orders/{orderNumber}"] - before["GET /orders/{orderNumber}"] == 1

        rig.world.fashiontrade.set_order_status(old.order_number, "SHIPPED")
        await restarted.poll(rig.ledger)
        assert ft_lines(await rig.lines()) == {new.order_number: {new_sku: 1}}
        assert await rig.ledger.check_invariants() == []


async def test_unknown_barcodes_are_reported_and_the_rest_recorded(tmp_path: Path) -> None:
    async with order_rig(tmp_path) as rig:
        sku = rig.skus("fashiontrade", count=1)[0]
        order = rig.world.fashiontrade.place_order(
            [(sku, 2), {"barcode": "0000000000000", "quantity": 5, "type": "PRODUCT"}]
        )
        result = (await rig.poll("fashiontrade"))["fashiontrade"]
        assert result.skipped == 1
        assert "0000000000000" in result.problems[0]
        assert await rig.lines() == {("fashiontrade", order.order_number, sku): 2}
