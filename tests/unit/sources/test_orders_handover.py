"""Handover: which channel orders Active Ants already holds (httpx.MockTransport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.sources.fabric_orders import FabricOrdersSource
from syncd.sources.handover import Handover
from tests.unit.sources._orders_fakes import (
    SECTION,
    FakeActiveAnts,
    FakeFabric,
    activeants,
    catalog,
    fabric,
    failing,
    fb_line,
    open_ledger,
    open_lines,
)

pytestmark = pytest.mark.anyio

TEMPLATES = {"ankorstore": "AK-{order_ref}", "fabric": "{order_ref}"}


def handover(
    fake: FakeActiveAnts,
    clock: FakeClock,
    *,
    settle_feed: str | None = None,
    batch_size: int = 50,
    max_requests: int = 20,
) -> Handover:
    return Handover(
        activeants(fake, clock),
        TEMPLATES,
        clock=clock,
        settle_feed=settle_feed,
        batch_size=batch_size,
        max_requests=max_requests,
    )


async def test_references_are_asked_in_bounded_batches(tmp_path: Path) -> None:
    clock = FakeClock()
    refs = [f"{n:04d}" for n in range(120)]
    fake = FakeActiveAnts(held={"AK-0007", "AK-0119", "0007"})
    async with open_ledger(tmp_path) as ledger:
        result = await handover(fake, clock).resolve(ledger, "ankorstore", refs, prune=True)
    assert result.held == {"0007", "0119"}
    assert result.requests == 3
    assert [len(batch) for batch in fake.asked()] == [50, 50, 20]
    assert all(ref.startswith("AK-") for batch in fake.asked() for ref in batch)


async def test_a_spent_budget_asks_reserving_orders_first_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    fake = FakeActiveAnts(held={"AK-a", "AK-z"})
    async with open_ledger(tmp_path) as ledger:
        lookup = handover(fake, clock, batch_size=1, max_requests=1)
        assert (await lookup.resolve(ledger, "ankorstore", ["z"], prune=False)).held == {"z"}
        fake.requests.clear()
        result = await lookup.resolve(ledger, "ankorstore", ["a", "b", "z"], prune=False)
    # "a" (still reserving) is asked before "z" (already held); "z" keeps its state.
    assert fake.asked() == [["AK-a"]]
    assert result.held == {"a", "z"}
    assert any("not asked" in p for p in result.problems)


async def test_a_failed_lookup_keeps_the_last_known_state(tmp_path: Path) -> None:
    clock = FakeClock()
    fake = FakeActiveAnts(held={"AK-1"})
    async with open_ledger(tmp_path) as ledger:
        lookup = handover(fake, clock)
        assert (await lookup.resolve(ledger, "ankorstore", ["1"], prune=True)).held == {"1"}
        fake.intercept = failing(503, "/v3/orders")
        fake.held.add("AK-2")
        with capture_logs() as logs:
            result = await lookup.resolve(ledger, "ankorstore", ["1", "2"], prune=True)
        # Confirmed stays held; never confirmed keeps reserving.
        assert result.held == {"1"}
        assert any("handover lookup failed" in p for p in result.problems)
        failed = [e for e in logs if e["event"] == "handover.lookup_failed"]
        assert [(e["channel"], e["orders"]) for e in failed] == [("ankorstore", 2)]
        fake.intercept = None
        result = await lookup.resolve(ledger, "ankorstore", ["1", "2"], prune=True)
        assert result.held == {"1", "2"}
        # Active Ants no longer knows "1": it reserves again (brand-protecting).
        fake.held.discard("AK-1")
        assert (await lookup.resolve(ledger, "ankorstore", ["1", "2"], prune=True)).held == {"2"}


@pytest.mark.parametrize("step", [0.0, -3600.0, 3600.0])
async def test_release_waits_for_a_warehouse_read_after_the_confirmation(
    tmp_path: Path, step: float
) -> None:
    clock = FakeClock()
    now = datetime.fromtimestamp(clock.wall(), UTC)
    fake = FakeActiveAnts(held={"AK-1"})
    async with open_ledger(tmp_path, clock) as ledger:  # one clock for all, as in syncd
        await ledger.mark_feed("activeants", success_at=now - timedelta(seconds=5))
        lookup = handover(fake, clock, settle_feed="activeants")
        assert (await lookup.resolve(ledger, "ankorstore", ["1"], prune=True)).held == set()
        # A wall-clock step (either way) neither releases early nor holds on.
        clock.step_wall(step)
        assert (await lookup.resolve(ledger, "ankorstore", ["1"], prune=True)).held == set()
        clock.advance(30)
        await ledger.mark_feed("activeants", success_at=datetime.fromtimestamp(clock.wall(), UTC))
        assert (await lookup.resolve(ledger, "ankorstore", ["1"], prune=True)).held == {"1"}


async def test_unaskable_refs_and_channels_without_a_template_are_never_held(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    fake = FakeActiveAnts(held={"AK-a,b", "x"})
    async with open_ledger(tmp_path) as ledger:
        lookup = handover(fake, clock)
        assert (await lookup.resolve(ledger, "ankorstore", ["a,b"], prune=True)).held == set()
        assert (await lookup.resolve(ledger, "fashiontrade", ["x"], prune=True)).held == set()
    assert fake.asked() == []


async def test_a_held_order_stops_reserving_and_resumes_if_the_warehouse_drops_it(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    orders = FakeFabric(
        pages=[
            [
                {
                    "id": 1015,
                    "status": "open",
                    "order_lines": [fb_line(1, "FB-TEE-S", quantity=2, quantity_open=2)],
                },
                {
                    "id": 1016,
                    "status": "open",
                    "order_lines": [fb_line(2, "FB-TEE-M", quantity=1, quantity_open=1)],
                },
            ]
        ]
    )
    warehouse = FakeActiveAnts(held={"1015"})
    async with open_ledger(tmp_path) as ledger:
        source = FabricOrdersSource(
            fabric(orders, clock),
            catalog(),
            SECTION,
            handover=handover(warehouse, clock),
            clock=clock,
            brand_id="510",
        )
        result = await source.poll(ledger)
        assert result.requests == 2
        assert await open_lines(ledger) == {("1016", "TEE-M"): 1}
        warehouse.held.clear()
        await source.poll(ledger)
        assert await open_lines(ledger) == {("1015", "TEE-S"): 2, ("1016", "TEE-M"): 1}
        assert await ledger.check_invariants() == []
