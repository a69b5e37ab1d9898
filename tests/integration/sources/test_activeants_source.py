"""The Active Ants stock source against the ShopApi simulator over real loopback sockets.

Every check compares the ledger with the simulated warehouse's own figures
(``availableStock``) or with a second ledger that read everything afresh.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from syncd.http.errors import InvalidResponse
from syncd.model import Catalog
from syncd.sandbox.activeants_state import TOKEN_LIFETIME
from tests.integration.sources._stock_support import (
    Crash,
    CrashingLedger,
    Rig,
    activeants_available,
    stock_rig,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

BULK = "GET /v2/stock/bulk"


def stocked(rig: Rig, count: int, *, offset: int = 0) -> list[str]:
    """Brand SKUs mapped to Active Ants with some stock."""
    skus = [
        v.sku
        for v in rig.world.catalog.variants
        if v.at_activeants and rig.world.activeants.product(v.sku).available > 0
    ]
    assert len(skus) >= offset + count
    return skus[offset : offset + count]


def bulk_requests(rig: Rig) -> int:
    return rig.world.activeants.counters.requests.get(BULK, 0)


def past_the_cut(rig: Rig) -> None:
    """Move the simulators' clock past the current millisecond.

    An incremental read stops at "now" cut to the millisecond, excluding it
    (seed 001 L2874-2893): a change made an instant before the read may fall
    in that millisecond and belong to the next read, as it would at the real
    warehouse. Tests that expect the very next read to carry a change say so.
    """
    rig.world.clock.advance(0.002)


async def test_full_then_incremental_reads_equal_a_full_reread_and_the_warehouse(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        source = rig.source("activeants")
        first = await source.poll(ledger)
        assert first.complete
        assert await activeants_available(ledger) == rig.activeants_truth()

        aa = rig.world.activeants
        a, b, c, d, e = stocked(rig, 5)
        aa.set_stock(a, 0)
        aa.move_stock(b, 7)
        aa.add_order("AK-1001", {c: 1, d: 1})
        aa.add_order("AK-1002", {d: 1})
        aa.ship_order("AK-1001")
        aa.cancel_order("AK-1002")
        aa.set_levels(e, excluded=2)
        past_the_cut(rig)
        second = await source.poll(ledger)
        assert not second.complete
        assert second.recorded == 1
        assert await activeants_available(ledger) == rig.activeants_truth()

        async with rig.ledger("fresh.db") as fresh:
            await rig.source("activeants").poll(fresh)
            assert await activeants_available(fresh) == await activeants_available(ledger)


async def test_a_change_in_the_reads_own_millisecond_is_carried_by_the_next_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``to`` excludes its own millisecond; the next read starts there, so nothing falls between."""
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        aa = rig.world.activeants
        source = rig.source("activeants")
        await source.poll(ledger)
        a, b = stocked(rig, 2)
        before = await activeants_available(ledger)
        aa.move_stock(a, 2)
        past_the_cut(rig)
        # The warehouse's clock stands still: b's change and the next read share a millisecond.
        now = [aa.now_us()]
        monkeypatch.setattr(aa, "now_us", lambda: now[0])
        aa.move_stock(b, 3)
        await source.poll(ledger)
        read = await activeants_available(ledger)
        assert (read[a], read[b]) == (before[a] + 2, before[b])  # b is not in [from, to)
        now[0] += 1000
        await source.poll(ledger)
        assert (await activeants_available(ledger))[b] == before[b] + 3
        assert await activeants_available(ledger) == rig.activeants_truth()


async def test_a_crash_between_fetch_and_commit_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig:
        aa = rig.world.activeants
        a, b = stocked(rig, 2)
        for after_commit in (False, True):
            async with rig.ledger() as ledger:
                await rig.source("activeants").poll(ledger)
                aa.move_stock(a, 3)
                aa.add_order(f"AK-{after_commit}", {b: 1})
                past_the_cut(rig)
                crashing = CrashingLedger(ledger, after_commit=after_commit)
                with pytest.raises(Crash):
                    await rig.source("activeants").poll(crashing)  # type: ignore[arg-type]
            async with rig.ledger() as reopened:  # the restarted daemon
                await rig.source("activeants").poll(reopened)
                assert await activeants_available(reopened) == rig.activeants_truth()


async def test_expired_and_revoked_tokens_and_429s_are_survived(tmp_path: Path) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        aa = rig.world.activeants
        source = rig.source("activeants")
        await source.poll(ledger)
        a, b, c = stocked(rig, 3)

        rig.world.clock.advance(TOKEN_LIFETIME + 60)  # the simulator's token has expired
        aa.move_stock(a, 4)
        past_the_cut(rig)
        await source.poll(ledger)
        aa.revoke_tokens()  # "intrusion detection" (seed 001 L28)
        aa.move_stock(b, 5)
        past_the_cut(rig)
        await source.poll(ledger)
        assert aa.counters.unauthorized.get(BULK) == 2
        assert aa.tokens.issued == 3

        rig.world.faults["activeants"].arm(
            "status", status=429, count=2, retry_after=1, path_prefix="/v2/stock/bulk"
        )
        aa.move_stock(c, 6)
        past_the_cut(rig)
        result = await source.poll(ledger)
        assert rig.world.faults["activeants"].fired["status"] == 2
        assert result.recorded == 1
        assert await activeants_available(ledger) == rig.activeants_truth()


async def test_a_malformed_response_records_nothing_and_the_next_read_recovers(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        source = rig.source("activeants")
        await source.poll(ledger)
        cursor = await ledger.cursor("activeants")
        [a] = stocked(rig, 1)
        rig.world.activeants.move_stock(a, 2)
        past_the_cut(rig)
        rig.world.faults["activeants"].arm("malformed_json", path_prefix="/v2/stock/bulk")
        before = await ledger.last_txn_id()
        with pytest.raises(InvalidResponse):
            await source.poll(ledger)
        assert (await ledger.cursor("activeants"), await ledger.last_txn_id()) == (cursor, before)
        await source.poll(ledger)
        assert await activeants_available(ledger) == rig.activeants_truth()


async def test_bad_products_are_skipped_and_reported_while_the_rest_is_recorded(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        aa = rig.world.activeants
        unmapped, backordered, other = stocked(rig, 3)
        # The catalog syncd runs with does not know one of the warehouse's SKUs.
        variants = dict(rig.catalog.variants)
        variants[unmapped] = dataclasses.replace(variants[unmapped], activeants_sku=None)
        catalog = Catalog(variants=variants)
        source = rig.source("activeants", catalog)
        first = await source.poll(ledger)
        assert first.skipped == 1
        assert any("unknown SKU" in p and f"AA-{unmapped[4:]}" in p for p in first.problems)

        level = aa.product(backordered).available
        aa.add_order("AK-2001", {backordered: level + 3})  # available goes to -3
        aa.move_stock(other, 1)
        past_the_cut(rig)
        result = await source.poll(ledger)
        assert result.problems == [
            "1 item(s) below zero at the warehouse, recorded as 0: "
            f"{aa.product(backordered).sku} (-3)"
        ]
        held = await activeants_available(ledger)
        assert level > 0
        assert held.get(backordered, 0) == 0  # never negative, never the stale positive level
        assert held[other] == aa.product(other).available
        assert unmapped not in held


async def test_a_change_the_feed_never_reports_is_booked_by_the_full_reconciliation(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        aa = rig.world.activeants
        aa.orders_bump_mutation_time = False  # brief A3: allocation may not bump the date
        source = rig.source("activeants")
        await source.poll(ledger)
        [a] = stocked(rig, 1)
        before = aa.product(a).available
        aa.add_order("AK-3001", {a: 1})
        await source.poll(ledger)
        assert (await activeants_available(ledger))[a] == before
        section = rig.config.sources.activeants
        assert section is not None
        rig.clock.advance(section.full_reconcile_interval)
        result = await source.poll(ledger)
        assert result.complete
        assert await activeants_available(ledger) == rig.activeants_truth()
        [adjustment, *_] = await ledger.explain_rows(a)
        assert adjustment.metadata["read"] == "full"
        assert adjustment.movement == "snapshot"


@pytest.mark.parametrize("variants", [50, 500])
async def test_an_idle_incremental_read_costs_one_request_whatever_the_catalog(
    tmp_path: Path, variants: int
) -> None:
    async with stock_rig(tmp_path, variants=variants) as rig, rig.ledger() as ledger:
        source = rig.source("activeants")
        await source.poll(ledger)
        assert bulk_requests(rig) == 1  # the full read, too, is one request
        for _ in range(3):
            before = bulk_requests(rig)
            result = await source.poll(ledger)
            assert bulk_requests(rig) - before == 1 == result.requests
