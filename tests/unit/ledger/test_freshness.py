"""Source ages on the monotonic clock: a wall-clock step neither hides nor invents staleness."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.clock import FakeClock
from syncd.engine import Engine, FeedInfo
from syncd.ledger.freshness import FeedFreshness
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, Variant
from syncd.safety import SafetyPolicy

pytestmark = pytest.mark.anyio

STALE_AFTER = 600.0
HOUR = 3600.0


def wall_now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock.wall(), UTC)


def test_a_feed_is_stale_until_it_succeeds_in_this_process() -> None:
    fresh = FeedFreshness(FakeClock())
    assert fresh.age("activeants") is None
    assert fresh.is_stale("activeants", STALE_AFTER)


def test_age_counts_on_the_monotonic_clock_from_the_observation() -> None:
    clock = FakeClock()
    fresh = FeedFreshness(clock)
    # Observed 30 s before the ledger recorded it (a slow poll): 30 s old already.
    observed = datetime.fromtimestamp(clock.wall() - 30, UTC)
    fresh.succeeded("activeants", observed)
    assert fresh.age("activeants") == pytest.approx(30)
    clock.advance(STALE_AFTER - 30)
    assert not fresh.is_stale("activeants", STALE_AFTER)
    clock.advance(1)
    assert fresh.is_stale("activeants", STALE_AFTER)


def test_a_wall_clock_step_back_does_not_hide_staleness() -> None:
    clock = FakeClock()
    fresh = FeedFreshness(clock)
    fresh.succeeded("activeants", wall_now(clock))
    clock.advance(STALE_AFTER + 1)
    clock.step_wall(-HOUR)  # NTP (or a person) sets the clock back an hour
    assert fresh.is_stale("activeants", STALE_AFTER)
    assert fresh.age("activeants") == pytest.approx(STALE_AFTER + 1)


def test_a_wall_clock_step_forward_does_not_invent_staleness() -> None:
    clock = FakeClock()
    fresh = FeedFreshness(clock)
    fresh.succeeded("activeants", wall_now(clock))
    clock.advance(10)
    clock.step_wall(+HOUR)
    assert not fresh.is_stale("activeants", STALE_AFTER)
    assert fresh.age("activeants") == pytest.approx(10)
    # The next success is observed at the stepped wall time: still fresh, still monotonic.
    fresh.succeeded("activeants", wall_now(clock))
    clock.advance(STALE_AFTER)
    assert not fresh.is_stale("activeants", STALE_AFTER)


def test_a_step_during_a_poll_never_makes_a_success_younger_than_now() -> None:
    clock = FakeClock()
    fresh = FeedFreshness(clock)
    observed = wall_now(clock)
    clock.step_wall(-HOUR)  # the wall now reads before the observation
    fresh.succeeded("activeants", observed)
    assert fresh.age("activeants") == 0.0
    clock.advance(STALE_AFTER + 1)
    assert fresh.is_stale("activeants", STALE_AFTER)


async def test_the_ledger_measures_ages_and_stamps_records_on_the_clock_it_was_opened_with(
    tmp_path: Path,
) -> None:
    # 2030: later than the host's real time, so a host-stamped error would look older.
    clock = FakeClock(wall_start=1_900_000_000.0)
    async with await Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        await ledger.mark_feed("activeants", success_at=wall_now(clock))
        clock.advance(42)
        assert ledger.freshness.age("activeants") == 42.0
        # No error time given: the ledger stamps "now" from its clock, after the success.
        await ledger.mark_feed("activeants", error="page refused")
        (state,) = await ledger.feed_states()
    assert state.last_error == "page refused"


async def _engine(ledger: Ledger, clock: FakeClock) -> Engine:
    return Engine(
        ledger,
        Catalog(variants={"A": Variant("A")}),
        [ChannelRule(channel="ankorstore", locations=("activeants",))],
        {},
        policies={"ankorstore": SafetyPolicy()},
        feeds=[
            FeedInfo("activeants", ("activeants",), stale_after=STALE_AFTER),
            FeedInfo(
                "ankorstore_orders",
                ("reserved:ankorstore",),
                stale_after=STALE_AFTER,
                channel="ankorstore",
                overdue_after=60.0,
            ),
        ],
        now=lambda: wall_now(clock),
    )


@pytest.mark.parametrize("step", [-HOUR, +HOUR, -30 * 86_400.0])
async def test_the_engine_judges_staleness_through_wall_clock_steps(
    tmp_path: Path, step: float
) -> None:
    clock = FakeClock(wall_start=1_800_000_000.0)
    async with await Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        engine = await _engine(ledger, clock)
        assert await engine.stale_feeds("ankorstore") == ["activeants"]
        assert await engine.overdue_order_feeds("ankorstore") == [
            "ankorstore_orders (not read since syncd started)"
        ]
        await ledger.mark_feed("activeants", success_at=wall_now(clock))
        await ledger.mark_feed("ankorstore_orders", success_at=wall_now(clock))
        clock.step_wall(step)
        clock.advance(59)
        assert await engine.stale_feeds("ankorstore") == []
        assert await engine.overdue_order_feeds("ankorstore") == []
        clock.advance(2)
        assert await engine.overdue_order_feeds("ankorstore") == [
            "ankorstore_orders (last read 61 s ago)"
        ]
        clock.advance(STALE_AFTER - 60)
        assert await engine.stale_feeds("ankorstore") == ["activeants"]


async def test_after_a_restart_a_feed_is_stale_until_it_reads_again(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "ledger.db"
    async with await Ledger.open(path, clock=clock) as ledger:
        engine = await _engine(ledger, clock)
        await ledger.mark_feed("activeants", success_at=wall_now(clock))
        assert await engine.stale_feeds("ankorstore") == []
    clock.advance(5)
    # A new process: the ledger still says "succeeded 5 s ago" by the wall clock,
    # which nothing in this process can vouch for (the clock may have been stepped).
    async with await Ledger.open(path, clock=clock) as ledger:
        engine = await _engine(ledger, clock)
        [state] = [s for s in await ledger.feed_states() if s.feed == "activeants"]
        assert state.last_success is not None
        assert await engine.stale_feeds("ankorstore") == ["activeants"]
        await ledger.mark_feed("activeants", success_at=wall_now(clock))
        assert await engine.stale_feeds("ankorstore") == []
