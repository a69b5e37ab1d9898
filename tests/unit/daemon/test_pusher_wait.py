"""A pusher deferred by the rate budget goes again the moment the limiter frees a slot.

The channel here spends a real :class:`RateLimiter` on a :class:`FakeClock`:
the scheduler's fixed interval is an hour (never reached in a test), so the
only thing that can send the deferred updates is the limiter's own "a slot
is free". The clock moves only when every task waits, so the times the
sends carry are exactly the times syncd chose.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from syncd.channels.base import PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.clock import FakeClock
from syncd.daemon.pacing import Wakeup
from syncd.daemon.pusher_wait import wait_for_work
from syncd.daemon.scheduler import Scheduler
from syncd.http.budget import Window
from syncd.http.ratelimit import RateLimiter
from syncd.ledger.store import Ledger
from syncd.status.metrics import Metrics
from tests.unit.daemon._support import SKUS, FakeChannel, FakeSource, make_assembly, wait_for
from tests.unit.http.test_budget import max_in_any_window

pytestmark = pytest.mark.anyio

LIMIT = Window(5, 60.0)


class RatedChannel(FakeChannel):
    """One request per update, each taken from a real limiter on a fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__("fabric", per_request=1)
        self.clock = clock
        self.limiter = RateLimiter((LIMIT,), clock=clock, name="fabric", resolution=0)
        self.sent_at: list[float] = []
        self.over_limit = 0

    def requests_available(self) -> int:
        return self.limiter.available()

    async def budget_available(self) -> None:
        await self.limiter.wait_for_slot()

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        for _ in batch:
            if self.limiter.try_acquire() > 0:
                self.over_limit += 1  # the pusher sent more than the window allows
            self.sent_at.append(self.clock.monotonic())
        return await super().push(batch)


async def test_deferred_updates_go_out_the_moment_the_window_frees_a_slot(
    ledger: Ledger,
) -> None:
    clock = FakeClock(start=0.0)
    channel = RatedChannel(clock)
    scheduler = Scheduler(
        make_assembly(ledger, [FakeSource()], [channel]),
        Metrics(),
        cycle_interval=3600.0,  # the fixed tick: never reached here
        debounce=0.01,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(scheduler.run)
        await wait_for(lambda: len(channel.shown) == len(SKUS), timeout=60)
        await scheduler.drain(1.0)
    rounds = len(SKUS) // LIMIT.limit
    # Five sends per window, each round exactly when the first send of the round
    # before leaves the window -- never later (a tick), never sooner (over the limit).
    expected = [
        pytest.approx(60.0 * n, abs=0.01) for n in range(rounds) for _ in range(LIMIT.limit)
    ]
    assert channel.sent_at == expected
    assert channel.over_limit == 0
    assert max_in_any_window(channel.sent_at, LIMIT.seconds) <= LIMIT.limit


async def test_new_work_wakes_the_pusher_before_the_slot_frees() -> None:
    clock = FakeClock(start=0.0)
    limiter = RateLimiter((Window(1, 60.0),), clock=clock, name="t", resolution=0)
    await limiter.acquire()
    wake = Wakeup()
    wake.set()
    await wait_for_work(wake.wait, 3600.0, limiter.wait_for_slot)
    assert clock.monotonic() == 0.0  # woken by the work, not by the window


async def test_a_failing_budget_wait_falls_back_to_the_wake_up() -> None:
    wake = Wakeup()

    async def broken() -> None:
        raise ValueError("a request of cost 2 can never fit")

    async def wake_soon() -> None:
        await anyio.sleep(0.01)
        wake.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wake_soon)
        with anyio.fail_after(60):
            await wait_for_work(wake.wait, 3600.0, broken)
