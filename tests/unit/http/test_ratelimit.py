"""The async rate limiter on a fake clock: waits are exact and cost no real time."""

from __future__ import annotations

import anyio
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.http.budget import Window
from syncd.http.ratelimit import DEFAULT_429_WAIT, MAX_SERVER_WAIT, RateLimiter
from tests.unit.http.test_budget import max_in_any_window


@pytest.mark.anyio
async def test_acquire_waits_until_the_oldest_request_leaves_the_window() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(2, 10.0)], clock=clock, name="t", resolution=0)
    assert await limiter.acquire() == 0
    clock.advance(3.0)
    assert await limiter.acquire() == 0
    waited = await limiter.acquire()
    assert waited == pytest.approx(7.0, abs=0.01)
    assert clock.monotonic() == pytest.approx(10.0, abs=0.01)


@pytest.mark.anyio
async def test_many_concurrent_callers_share_the_windows() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(5, 10.0), Window(12, 60.0)], clock=clock, name="t")
    sent: list[float] = []

    async def caller() -> None:
        await limiter.acquire()
        sent.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(caller)

    sent.sort()
    assert len(sent) == 30
    assert max_in_any_window(sent, 10.0) <= 5
    assert max_in_any_window(sent, 60.0) <= 12
    # Greedy schedule: 5 at 0, 10, 20(2), 60, 70, 80(2), 120, 130(1) -- no idle slot wasted.
    assert 130.0 <= sent[-1] <= 130.5


@pytest.mark.anyio
async def test_low_priority_callers_cannot_take_the_reserve() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(10, 60.0)], clock=clock, name="t")
    pushes_done: list[float] = []

    async def push() -> None:
        await limiter.acquire(reserve=0.2)
        pushes_done.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(push)
        await clock.sleep(1.0)
        # Eight pushes went out at once; four wait. A source still gets through now.
        assert len(pushes_done) == 8
        assert await limiter.acquire() == 0
        assert await limiter.acquire() == 0
        assert clock.monotonic() == pytest.approx(1.0)


@pytest.mark.anyio
async def test_429_with_retry_after_pauses_every_caller_for_exactly_that_long() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(600, 60.0)], clock=clock, name="t")
    pause = limiter.observe({"Retry-After": "17", "X-RateLimit-Remaining": "0"}, 429)
    assert pause == 17.0
    assert limiter.snapshot().blocked_for == 17.0
    waited = await limiter.acquire()
    assert waited == pytest.approx(17.0, abs=0.01)


@pytest.mark.anyio
async def test_429_reset_header_is_read_against_the_wall_clock() -> None:
    clock = FakeClock(start=0.0, wall_start=1_700_000_000.0)
    limiter = RateLimiter([Window(600, 60.0)], clock=clock, name="t")
    assert limiter.observe({"X-RateLimit-Reset": "1700000042"}, 429) == pytest.approx(42.0)


def test_429_without_headers_pauses_by_default_and_absurd_pauses_are_capped() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(600, 60.0)], clock=clock, name="t")
    assert limiter.observe({}, 429) == DEFAULT_429_WAIT
    assert limiter.observe({"Retry-After": "99999999"}, 429) == MAX_SERVER_WAIT


def test_success_headers_with_fewer_remaining_lower_the_local_budget() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(600, 60.0), Window(24_000, 3600.0)], clock=clock, name="t")
    assert limiter.try_acquire() == 0
    assert limiter.observe({"X-RateLimit-Remaining": "3", "X-RateLimit-Limit": "600"}, 200) == 0
    assert limiter.available() == 3
    for _ in range(3):
        assert limiter.try_acquire() == 0
    assert limiter.try_acquire() > 0
    minute = limiter.snapshot().windows[0]
    assert (minute.limit, minute.used, minute.remaining) == (600, 600, 0)
    assert minute.resets_in == pytest.approx(60.0, abs=0.01)


def test_remaining_zero_with_a_reset_pauses_before_the_429() -> None:
    clock = FakeClock(start=0.0, wall_start=1_700_000_000.0)
    limiter = RateLimiter([Window(600, 60.0)], clock=clock, name="t")
    pause = limiter.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000020"}, 200)
    assert pause == pytest.approx(20.0)
    assert limiter.available() == 0


def test_a_limit_header_matching_no_window_is_reported_once() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(600, 60.0)], clock=clock, name="t")
    with capture_logs() as logs:
        for _ in range(3):
            limiter.observe({"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "19"}, 200)
        limiter.observe({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "599"}, 200)
    unknown = [e for e in logs if e["event"] == "http.rate_window_unknown"]
    assert [e["limit"] for e in unknown] == [20]


# --- waiting for a slot without taking it ------------------------------------------------


@pytest.mark.anyio
async def test_wait_for_slot_returns_when_the_oldest_request_leaves_and_takes_nothing() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(2, 10.0)], clock=clock, name="t", resolution=0)
    await limiter.acquire()
    clock.advance(4.0)
    await limiter.acquire()
    waited = await limiter.wait_for_slot()
    assert waited == pytest.approx(6.0, abs=0.01)  # the first send leaves at t=10
    assert limiter.available() == 1  # the wait itself recorded no send
    assert await limiter.wait_for_slot() == 0  # a slot is free: no wait at all


@pytest.mark.anyio
async def test_wait_for_slot_respects_the_reserve_and_a_429_pause() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(10, 60.0)], clock=clock, name="t", resolution=0)
    for _ in range(8):
        await limiter.acquire(reserve=0.2)
    assert limiter.available(reserve=0.2) == 0
    limiter.observe({"Retry-After": "90"}, 429)
    waited = await limiter.wait_for_slot(reserve=0.2)
    # The window would free a slot at t=60, the server's pause ends at t=90.
    assert waited == pytest.approx(90.0, abs=0.01)
    assert limiter.available(reserve=0.2) >= 1


@pytest.mark.anyio
async def test_wait_for_slot_waits_longer_when_others_take_the_slot_first() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter([Window(1, 10.0)], clock=clock, name="t", resolution=0)
    await limiter.acquire()
    woke: list[float] = []

    async def waiter() -> None:
        await limiter.wait_for_slot()
        woke.append(clock.monotonic())

    async def taker() -> None:
        await limiter.acquire()  # wins the slot freed at t=10 (it sleeps first)

    async with anyio.create_task_group() as tg:
        tg.start_soon(taker)
        await anyio.lowlevel.checkpoint()
        tg.start_soon(waiter)
    # Never returned while the slot was taken: the next one frees at t=20.
    assert woke == [pytest.approx(20.0, abs=0.01)]
