"""The ASTRAL stock source against the ASTRAL simulator over real loopback sockets.

Stock is moved with the simulator's own warehouse operations (reserve, ship,
receive, damage, expire, backdated adjustments ...) and every check compares
the ledger with the simulator's balances in units, or with a second ledger
that bootstrapped afresh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest

from syncd.ledger.store import Ledger
from syncd.model import Account, Catalog, StockStatus, TransactionDraft
from syncd.sandbox.catalog import SimVariant
from tests.conformance.specs import Recorder, spec_checker
from tests.integration.sources._stock_support import (
    Crash,
    CrashingLedger,
    Rig,
    astral_balances,
    poll_until_caught_up,
    rewind,
    stock_rig,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

POSTINGS = "GET /api/astral/v1/stock/postings"
STATE = "GET /api/astral/v1/stock/state"


def stocked(
    rig: Rig, count: int, *, batched: bool | None = None, lots: bool | None = None
) -> list[SimVariant]:
    """ASTRAL variants with available stock (``batched``: unitMultiplier > 1 or not)."""
    astral = rig.world.ankorstore.astral
    found = [
        v
        for v in rig.world.catalog.variants
        if v.at_astral
        and astral.balance(v.sku) >= 4
        and (batched is None or (v.astral_unit_multiplier > 1) == batched)
        and (lots is None or bool(v.lots) == lots)
    ]
    assert len(found) >= count
    return found[:count]


def warehouse(rig: Rig) -> str:
    return f"astral:{rig.world.ankorstore.astral.warehouse.id}"


def astral_requests(rig: Rig) -> int:
    counters = rig.world.ankorstore.counters.requests
    return counters.get(POSTINGS, 0) + counters.get(STATE, 0)


def on_response(rig: Rig, hook: Callable[[httpx.Response], Awaitable[None]]) -> None:
    client = rig.clients.get("ankorstore")
    assert client is not None
    client.http.event_hooks = {"request": [], "response": [hook]}


def arm_after_first(rig: Rig, path: str, **fault: Any) -> None:
    """Arm a fault on ``path`` once its first page was served: it hits a later page."""
    seen = False

    async def hook(response: httpx.Response) -> None:
        nonlocal seen
        if response.request.url.path == path and not seen:
            seen = True
            rig.world.faults["ankorstore"].arm(path_prefix=path, **fault)

    on_response(rig, hook)


async def test_bootstrap_then_feed_equal_a_fresh_bootstrap_and_the_simulator(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        source = rig.source("astral")
        first = await source.poll(ledger)
        assert first.complete
        assert first.caught_up
        assert await astral_balances(ledger) == rig.astral_truth()

        astral = rig.world.ankorstore.astral
        a, b, c, d, e = stocked(rig, 5)
        astral.reserve(a.sku, 3, related_id="order-1")
        astral.ship(a.sku, 2, related_id="order-1")
        astral.release(a.sku, 1, related_id="order-1")
        available_b = (await ledger.balances())[
            Account(warehouse(rig), StockStatus.AVAILABLE, b.sku)
        ]
        astral.expect(b.sku, 5)
        astral.damage(c.sku, 1)
        astral.expire(d.sku, 2)
        astral.adjust(e.sku, 4)
        astral.snapshot(e.sku, 1)
        await poll_until_caught_up(source, ledger)
        assert await astral_balances(ledger) == rig.astral_truth()
        balances = await ledger.balances()
        # Announced goods are incoming, never available (seed 000 L13151).
        incoming = Account(warehouse(rig), StockStatus.INCOMING, b.sku)
        assert balances[incoming] == 5 * b.astral_unit_multiplier
        assert balances[Account(warehouse(rig), StockStatus.AVAILABLE, b.sku)] == available_b

        astral.receive(b.sku, 3)
        await poll_until_caught_up(source, ledger)
        assert await astral_balances(ledger) == rig.astral_truth()
        async with rig.ledger("fresh.db") as fresh:
            await poll_until_caught_up(rig.source("astral"), fresh)
            assert await astral_balances(fresh) == await astral_balances(ledger)


async def test_batches_are_converted_to_units_with_the_unit_multiplier(tmp_path: Path) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        source = rig.source("astral")
        await source.poll(ledger)
        [variant] = stocked(rig, 1, batched=True, lots=False)
        multiplier = variant.astral_unit_multiplier
        assert multiplier > 1
        rig.world.ankorstore.astral.reserve(variant.sku, 2)
        await source.poll(ledger)
        reserved = Account(warehouse(rig), StockStatus.RESERVED, variant.sku)
        assert (await ledger.balances())[reserved] == 2 * multiplier
        row = next(r for r in await ledger.explain_rows(variant.sku) if r.account == reserved)
        assert (row.quantity, row.batches, row.unit_multiplier) == (2 * multiplier, 2, multiplier)
        assert row.movement == "order_reserved"
        assert row.external_id is not None


async def test_a_late_transaction_is_booked_by_the_reconciliation(tmp_path: Path) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        source = rig.source("astral")
        await source.poll(ledger)
        astral = rig.world.ankorstore.astral
        a, b, c = stocked(rig, 3, lots=False)
        astral.reserve(b.sku, 1)
        await source.poll(ledger)  # the cursor is now at this minute
        # Committed now, dated an hour ago: it sorts before the feed's cursor.
        astral.adjust(a.sku, -3, created_at=astral.clock.now() - 3600)
        astral.reserve(c.sku, 1)
        await source.poll(ledger)
        truth = rig.astral_truth()
        assert await astral_balances(ledger) != truth
        section = rig.config.sources.astral
        assert section is not None
        rig.clock.advance(section.reconcile_interval)
        result = await source.poll(ledger)
        assert result.complete
        assert await astral_balances(ledger) == truth
        adjustment = {
            r.account.status: r.quantity
            for r in await ledger.explain_rows(a.sku, limit=2)
            if r.movement == "snapshot" and r.metadata["reason"] == "reconciliation"
        }
        units = 3 * a.astral_unit_multiplier
        assert adjustment == {StockStatus.AVAILABLE: -units, StockStatus.VOID: units}
        [state] = await ledger.feed_states()
        assert state.extra["last_reconcile_adjusted"] == "1"


async def test_replaying_the_same_postings_changes_nothing(tmp_path: Path) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        source = rig.source("astral")
        await source.poll(ledger)
        head = await ledger.cursor("astral")
        assert head is not None
        astral = rig.world.ankorstore.astral
        for variant in stocked(rig, 4):
            astral.reserve(variant.sku, 1)
            astral.damage(variant.sku, 1)
        await poll_until_caught_up(source, ledger)
        settled = await ledger.balances()
        end = await ledger.cursor("astral")
        for attempt in range(2):
            await rewind(ledger, "astral", head, key=f"rewind-{attempt}")
            await poll_until_caught_up(rig.source("astral"), ledger)
            assert await ledger.balances() == settled
            assert await ledger.cursor("astral") == end


class _Stalled:
    """A ledger whose next movement write never returns (the task gets cancelled there)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self.reached = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def record(self, draft: TransactionDraft) -> bool:
        self.reached.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def test_a_crash_between_fetch_and_commit_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig:
        astral = rig.world.ankorstore.astral
        variants = stocked(rig, 3)
        async with rig.ledger() as ledger:
            await rig.source("astral").poll(ledger)
            astral.reserve(variants[0].sku, 2)
            stalled = _Stalled(ledger)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(rig.source("astral").poll, cast(Ledger, stalled))
                await stalled.reached.wait()
                tasks.cancel_scope.cancel()  # killed after the fetch, before the commit
        for variant, after_commit in ((variants[1], False), (variants[2], True)):
            async with rig.ledger() as reopened:
                astral.damage(variant.sku, 1)
                crashing = CrashingLedger(reopened, after_commit=after_commit)
                with pytest.raises(Crash):
                    await rig.source("astral").poll(crashing)  # type: ignore[arg-type]
        async with rig.ledger() as restarted:
            await poll_until_caught_up(rig.source("astral"), restarted)
            assert await astral_balances(restarted) == rig.astral_truth()


async def test_expired_tokens_and_429_mid_pagination_are_survived(tmp_path: Path) -> None:
    async with stock_rig(tmp_path, variants=500) as rig, rig.ledger() as ledger:
        faults = rig.world.faults["ankorstore"]
        source = rig.source("astral")
        arm_after_first(rig, "/api/astral/v1/stock/state", kind="status", status=429, retry_after=1)
        result = await source.poll(ledger)  # the state read spans several pages
        assert faults.fired["status"] == 1
        assert result.complete
        assert await astral_balances(ledger) == rig.astral_truth()

        astral = rig.world.ankorstore.astral
        rig.world.clock.advance(3_700)  # every simulator token has expired (expires_in 3600)
        assert (await source.poll(ledger)).caught_up
        for variant in stocked(rig, 60):
            astral.reserve(variant.sku, 1)
            astral.release(variant.sku, 1)
        faults.arm("revoke_tokens", count=1, path_prefix="/api/astral/v1/stock/postings")
        arm_after_first(
            rig, "/api/astral/v1/stock/postings", kind="status", status=429, retry_after=1
        )
        results = await poll_until_caught_up(source, ledger)
        assert sum(r.recorded for r in results) >= 3  # 240 postings, pages of 100
        assert faults.fired["status"] == 2
        assert faults.fired["revoke_tokens"] == 1
        assert rig.world.ankorstore.counters.unauthorized == 2
        assert await astral_balances(ledger) == rig.astral_truth()


async def test_unknown_variants_are_skipped_and_reported_while_the_rest_is_recorded(
    tmp_path: Path,
) -> None:
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        unknown, known = stocked(rig, 2)
        variants = dict(rig.catalog.variants)
        variants[unknown.sku] = dataclasses.replace(variants[unknown.sku], astral_variant_id=None)
        source = rig.source("astral", Catalog(variants=variants))
        first = await source.poll(ledger)
        assert first.skipped == 1
        assert first.complete  # every variant the catalog maps was listed
        astral = rig.world.ankorstore.astral
        for _ in range(3):
            astral.reserve(unknown.sku, 1)
        astral.reserve(known.sku, 1)
        result = await source.poll(ledger)
        assert result.skipped == 1  # one variant, however many postings
        assert result.problems == [
            "1 item skipped (unknown productVariantId (no catalog variant has this"
            f" astral_variant_id)): {unknown.astral_variant_id}"
        ]
        held = await astral_balances(ledger)
        assert all(sku != unknown.sku for _, _, sku, _ in held)
        truth = {k: v for k, v in rig.astral_truth().items() if k[2] != unknown.sku}
        assert held == truth


@pytest.mark.parametrize("variants", [50, 500])
async def test_an_idle_cycle_costs_one_request_whatever_the_catalog(
    tmp_path: Path, variants: int
) -> None:
    async with stock_rig(tmp_path, variants=variants) as rig, rig.ledger() as ledger:
        source = rig.source("astral")
        await source.poll(ledger)
        for _ in range(3):
            before = astral_requests(rig)
            result = await source.poll(ledger)
            assert astral_requests(rig) - before == 1 == result.requests


async def test_every_request_conforms_to_the_astral_spec(tmp_path: Path) -> None:
    checker = spec_checker("ankorstore-astral.json")
    recorder = Recorder()
    async with stock_rig(tmp_path) as rig, rig.ledger() as ledger:
        client = rig.clients.get("ankorstore")
        assert client is not None
        client.http.event_hooks = recorder.async_hooks()
        source = rig.source("astral")
        await source.poll(ledger)
        rig.world.ankorstore.astral.reserve(stocked(rig, 1)[0].sku, 1)
        section = rig.config.sources.astral
        assert section is not None
        rig.clock.advance(section.reconcile_interval)
        await source.poll(ledger)  # follow, then reconcile
    astral = [e for e in recorder.exchanges if e.request.url.path.startswith("/api/astral/")]
    assert {e.request.url.path for e in astral} == {
        "/api/astral/v1/stock/postings",
        "/api/astral/v1/stock/state",
    }
    checker.assert_conforms(astral)
