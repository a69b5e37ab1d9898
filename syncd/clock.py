"""Time and chance as syncd sees them: one injected :class:`Clock` for the whole product.

Rate limits, token lifetimes, retry back-off, feed freshness, the ledger's
timestamps and the engine's "now" all depend on time; back-off jitter and
request ids depend on chance. Everything reads both through the one clock
that :func:`syncd.assembly.assemble` hands to the ledger, the clients,
sources, channels and engine, so unit tests and the deterministic simulation
run hours of traffic in milliseconds with :class:`FakeClock` and replay a
seed exactly, while the daemon and ``syncd once`` use :class:`SystemClock`.

Three readings exist because they answer different questions:

* ``monotonic()`` measures intervals (window ages, token lifetimes, back-off,
  how old a feed's data is); it never jumps when NTP or an administrator
  changes the system time.
* ``wall()`` is epoch seconds, needed to interpret a server's absolute
  timestamps such as ``X-RateLimit-Reset`` (seed 000 L226).
* ``now()`` is the same wall time as an aware UTC datetime: what the ledger
  stamps on its records and the engine calls "now".

``rng(purpose)`` gives a random stream for one purpose (a client's back-off
jitter, its request ids, a source's record keys). Streams are separate so
that one component drawing more or less often never shifts another's
numbers: a seeded clock then replays each stream whatever the others did.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter, deque
from datetime import UTC, datetime
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    """What syncd needs to know about time and chance."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (only differences matter)."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, for server timestamps."""
        ...

    def now(self) -> datetime:
        """The wall time as an aware UTC datetime (the ledger's and the engine's "now")."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cancellable)."""
        ...

    def rng(self, purpose: str) -> random.Random:
        """A random stream of its own for ``purpose`` (jitter, ids); never for secrets."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time``, ``anyio.sleep``, OS-seeded streams."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    def rng(self, purpose: str) -> random.Random:
        # Seeded from the OS: two processes (or two clients) never share a stream.
        return random.Random()  # noqa: S311 -- jitter and ids, not cryptography


class _Sleeper:
    """One task waiting on a :class:`FakeClock`; ordered by deadline, then arrival."""

    __slots__ = ("deadline", "seq", "wake")

    def __init__(self, deadline: float, seq: int) -> None:
        self.deadline = deadline
        self.seq = seq
        self.wake = anyio.Event()

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.deadline, self.seq) < (other.deadline, other.seq)


class FakeClock:
    """Virtual time: ``sleep`` returns at once and moves the clock forward.

    Concurrent sleepers wake in deadline order and the clock only ever moves
    to the earliest pending deadline, so two tasks sleeping 5 s and 10 s at
    the same moment end at t+5 and t+10 (not t+15), as they would in real
    time. Before moving time forward the earliest sleeper yields to the event
    loop ``settle`` times so that every runnable task reaches its own wait
    first; code under test must therefore not block on real I/O while a fake
    sleep is pending (``httpx.MockTransport`` and loopback-free code are fine).

    ``sleeps`` keeps the last 10 000 requested durations, which tests use to
    check back-off bounds.

    ``rng(purpose)`` streams derive from ``seed``, the purpose and how many
    streams for that purpose were asked for before: the same seed and the
    same construction order give the same numbers in every run.
    """

    def __init__(
        self,
        *,
        start: float = 1_000.0,
        wall_start: float = 1_700_000_000.0,
        settle: int = 25,
        seed: int = 0,
    ) -> None:
        if settle < 1:
            raise ValueError("settle must be at least 1")
        self._now = float(start)
        self._start = float(start)
        self._wall_start = float(wall_start)
        self._settle = settle
        self._heap: list[_Sleeper] = []
        self._seq = itertools.count()
        self.sleeps: deque[float] = deque(maxlen=10_000)
        """The most recent requested sleep durations (bounded for long simulations)."""
        self._seed = seed
        self._streams: Counter[str] = Counter()

    def monotonic(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall_start + (self._now - self._start)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def rng(self, purpose: str) -> random.Random:
        self._streams[purpose] += 1
        # A string seed is hashed with SHA-512: stable across runs and PYTHONHASHSEED.
        return random.Random(f"{self._seed}/{purpose}/{self._streams[purpose]}")  # noqa: S311

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock by ``seconds`` (either way), as NTP or an administrator does.

        Monotonic time does not move: code that measures intervals on it
        must not notice.
        """
        self._wall_start += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward by hand (e.g. to expire a token between two calls)."""
        if seconds < 0:
            raise ValueError("time never goes backwards")
        self._now += seconds
        if self._heap:
            self._heap[0].wake.set()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()
        if seconds <= 0:
            return
        me = _Sleeper(self._now + seconds, next(self._seq))
        heapq.heappush(self._heap, me)
        try:
            while self._now < me.deadline:
                if self._heap[0] is me:
                    # Let every other runnable task reach its own sleep first:
                    # one of them may need to wake before us.
                    for _ in range(self._settle):
                        await anyio.lowlevel.checkpoint()
                    if self._heap[0] is me:
                        self._now = max(self._now, me.deadline)
                else:
                    me.wake = anyio.Event()
                    await me.wake.wait()
        finally:
            self._heap.remove(me)
            heapq.heapify(self._heap)
            if self._heap:
                # Hand the job of moving time forward to the next sleeper.
                self._heap[0].wake.set()
