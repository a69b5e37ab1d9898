"""FakeClock: virtual time that tests and the simulation can trust."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from syncd.clock import FakeClock, SystemClock


@pytest.mark.anyio
async def test_sleep_moves_time_forward_without_waiting() -> None:
    clock = FakeClock(start=0.0)
    with anyio.fail_after(30):  # real seconds: a real sleep of an hour would trip this
        await clock.sleep(3600)
    assert clock.monotonic() == 3600
    assert list(clock.sleeps) == [3600]


@pytest.mark.anyio
async def test_concurrent_sleepers_wake_in_deadline_order_at_their_own_deadline() -> None:
    clock = FakeClock(start=0.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "ten", 10.0)
        tg.start_soon(sleeper, "five", 5.0)
        tg.start_soon(sleeper, "seven", 7.0)

    assert woke == [("five", 5.0), ("seven", 7.0), ("ten", 10.0)]
    assert clock.monotonic() == 10.0


@pytest.mark.anyio
async def test_chained_sleeps_add_up_and_wall_follows_monotonic() -> None:
    clock = FakeClock(start=100.0, wall_start=1_700_000_000.0)

    async def chain() -> None:
        for _ in range(3):
            await clock.sleep(2.5)

    async with anyio.create_task_group() as tg:
        tg.start_soon(chain)
        tg.start_soon(clock.sleep, 4.0)

    assert clock.monotonic() == 107.5
    assert clock.wall() == 1_700_000_007.5


@pytest.mark.anyio
async def test_cancelled_sleeper_does_not_hold_time_back() -> None:
    clock = FakeClock(start=0.0)
    long_sleep = anyio.CancelScope()

    async def sleep_long() -> None:
        with long_sleep:
            await clock.sleep(50.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleep_long)
        await clock.sleep(1.0)
        long_sleep.cancel()
        await clock.sleep(1.0)

    assert clock.monotonic() == 2.0


def test_advance_refuses_to_go_backwards() -> None:
    clock = FakeClock()
    clock.advance(5)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


@pytest.mark.anyio
async def test_system_clock_reads_real_time() -> None:
    clock = SystemClock()
    before = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() - before >= 0.009
    assert clock.wall() > 1_600_000_000


def test_a_seeded_clock_gives_each_purpose_its_own_stream_and_replays_them() -> None:
    def draws(clock: FakeClock) -> list[list[float]]:
        streams = [clock.rng("jitter"), clock.rng("ids"), clock.rng("jitter")]
        return [[stream.random() for _ in range(3)] for stream in streams]

    first = draws(FakeClock(seed=7))
    assert first == draws(FakeClock(seed=7))
    assert first != draws(FakeClock(seed=8))
    jitter, ids, second_jitter = first
    # Separate streams: a component drawing more often never shifts another's numbers.
    assert len({tuple(jitter), tuple(ids), tuple(second_jitter)}) == 3


def test_now_is_the_wall_time_as_an_aware_utc_datetime() -> None:
    clock = FakeClock(wall_start=1_750_000_000.0)
    clock.advance(30)
    assert clock.now() == datetime(2025, 6, 15, 15, 7, 10, tzinfo=UTC)
    assert clock.now().timestamp() == clock.wall()
    system = SystemClock()
    assert system.now().tzinfo is UTC
    assert abs(system.now().timestamp() - system.wall()) < 60  # a generous bound


def test_the_system_clock_seeds_every_stream_from_the_os() -> None:
    system = SystemClock()
    assert system.rng("ids").getrandbits(128) != system.rng("ids").getrandbits(128)
