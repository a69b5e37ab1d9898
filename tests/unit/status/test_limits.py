"""Connection slots: the cap, who gives way when it is reached, and accept-error pacing."""

from __future__ import annotations

import errno

import anyio
import pytest
from structlog.testing import capture_logs

from syncd.status.limits import AcceptErrors, Admission, ConnectionSlots, PressureLog, Slot

# Slots carry anyio cancel scopes, which belong to an event loop.
pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_longest_idle_connection_gives_way_once_its_grace_is_over() -> None:
    clock = Clock()
    slots = ConnectionSlots(2, grace=1.0, monotonic=clock)
    first = slots.admit()
    clock.now += 0.5
    second = slots.admit()
    assert first is not None
    assert second is not None
    # Both idle, neither past its grace: a newcomer is refused, not let in.
    assert slots.admit() is None
    assert slots.refusals == 1
    clock.now += 0.6  # first idle 1.1 s, second 0.6 s
    third = slots.admit()
    assert third is not None
    assert first.evicted
    assert first.scope.cancel_called
    assert not second.evicted
    assert slots.in_use == 2


def _evicted(slot: Slot) -> bool:
    return slot.evicted


async def test_past_its_grace_a_busy_talker_gives_way_too_but_the_quietest_goes_first() -> None:
    clock = Clock()
    slots = ConnectionSlots(2, grace=0.25, monotonic=clock)
    chatty = slots.admit()
    quiet = slots.admit()
    assert chatty is not None
    assert quiet is not None
    clock.now += 5
    chatty.waiting()  # it just sent a reply and waits for its next request
    newcomer = slots.admit()
    assert newcomer is not None
    assert quiet.evicted
    assert not chatty.evicted
    # A client that keeps the daemon busy with queued requests is between two of them
    # now: past its grace, it gives way as well, not only once it has been quiet.
    newcomer.working()  # its request is being answered: not a candidate
    clock.now += 0.3
    chatty.waiting()
    assert slots.admit() is not None
    assert _evicted(chatty)  # (a call: mypy took the attribute for False since above)
    assert not newcomer.evicted


async def test_a_connection_being_answered_never_gives_way() -> None:
    clock = Clock()
    slots = ConnectionSlots(1, grace=0.0, monotonic=clock)
    busy = slots.admit()
    assert busy is not None
    busy.working()
    clock.now += 60
    assert slots.admit() is None
    busy.waiting()  # the reply went out; it waits for the next request
    clock.now += 1
    assert slots.admit() is not None
    assert busy.evicted


async def test_a_released_slot_is_free_again() -> None:
    slots = ConnectionSlots(1)
    slot = slots.admit()
    assert slot is not None
    slots.release(slot)
    assert slots.in_use == 0
    assert slots.admit() is not None


async def test_the_limit_must_allow_a_connection() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConnectionSlots(0)


async def test_accept_errors_are_logged_once_per_burst_with_the_count() -> None:
    clock = Clock()
    errors = AcceptErrors("metrics", log_every=10.0, monotonic=clock)
    with capture_logs() as logs:
        for _ in range(5):
            await errors.failed(OSError(errno.EMFILE, "Too many open files"))
        clock.now += 11
        await errors.failed(OSError(errno.ENFILE, "Too many open files in system"))
        await errors.failed(OSError(errno.ECONNABORTED, "Software caused connection abort"))
    assert [(e["error"], e["suppressed"]) for e in logs] == [("EMFILE", 0), ("ENFILE", 4)]
    assert errors.total == 6  # a client that gave up is not an error of the listener


async def test_pressure_is_logged_once_per_interval_with_what_happened() -> None:
    clock = Clock()
    slots = ConnectionSlots(1, grace=0.0, monotonic=clock)
    pressure = PressureLog("status", slots, every=10.0, monotonic=clock)
    with capture_logs() as logs:
        slots.admit()
        pressure.note()  # nothing closed or refused yet: nothing to say
        clock.now += 1
        for _ in range(50):
            slots.admit()  # each one closes the previous, idle since its admission
            pressure.note()
            clock.now += 0.01
        clock.now += 10
        slots.admit()
        pressure.note()
    assert [(e["closed_idle"], e["turned_away"]) for e in logs] == [(1, 0), (50, 0)]


async def test_a_listener_serves_then_turns_away_then_drops_what_it_cannot_answer() -> None:
    admission: Admission[int] = Admission("test", 1)
    send, receive = anyio.create_memory_object_stream[int | OSError](10)
    served: list[int] = []
    told_busy: list[int] = []
    dropped: list[int] = []
    release = anyio.Event()

    async def accept() -> int:
        item = await receive.receive()
        if isinstance(item, OSError):
            raise item
        return item

    async def serve(conn: int, slot: Slot) -> None:
        slot.working()  # answering: its slot cannot be taken from it
        served.append(conn)
        await release.wait()
        admission.slots.release(slot)

    async def busy(conn: int) -> None:
        told_busy.append(conn)
        await release.wait()

    async def drop(conn: int) -> None:
        dropped.append(conn)

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: admission.accept_loop(accept, tg, serve=serve, busy=busy, drop=drop))
        for item in (1, OSError(errno.EMFILE, "Too many open files"), 2, 3, 4):
            await send.send(item)
        with anyio.fail_after(10):
            while len(dropped) < 2:
                await anyio.sleep(0.01)
        # One served, one told busy (at most `limit` at a time), the rest dropped unanswered.
        assert (served, told_busy, dropped) == ([1], [2], [3, 4])
        assert admission.accept_errors.total == 1
        release.set()
        with anyio.fail_after(10):
            while admission.slots.in_use:
                await anyio.sleep(0.01)
        await send.send(5)  # the slot given back: the next client is served
        with anyio.fail_after(10):
            while served != [1, 5]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
