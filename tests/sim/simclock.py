"""One fake time source for syncd and every simulator.

syncd reads time and chance through a :class:`~syncd.clock.Clock`; the
simulators read it through a :class:`~syncd.sandbox.limits.SimClock`. The
simulation hands both the same :class:`HostClock`, so a token that expires, a
rate window that slides or a ``Retry-After`` that is waited out all happen on
one timeline, without real sleeping.

syncd's host has a wall clock of its own that can be stepped (NTP, an
operator, a VM resumed): :meth:`SimTime.step_wall` moves only syncd's wall
time (``HostClock.wall``, the engine's and the ledger's "now"); monotonic
time and the simulators' clocks (the APIs' servers) keep going as they were.
"""

from __future__ import annotations

from datetime import datetime

from syncd.clock import FakeClock
from syncd.sandbox.limits import SimClock

WALL_START = 1_750_000_000.0
"""Fixed epoch start (June 2025): a run never depends on the real date."""


class HostClock(FakeClock):
    """syncd's clock: the shared monotonic time, a wall clock that may be stepped, and
    random streams seeded from the simulation's seed."""

    def __init__(self, *, start: float, wall_start: float, seed: int) -> None:
        super().__init__(start=start, wall_start=wall_start, seed=seed)
        self.wall_offset = 0.0
        """Seconds syncd's wall clock is off the true time (the sum of its steps)."""

    def wall(self) -> float:
        return super().wall() + self.wall_offset

    def true_wall(self) -> float:
        """The servers' (true) wall time."""
        return FakeClock.wall(self)


class SharedSimClock(SimClock):
    """The simulators' clock, reading the true wall time instead of ``time.time``."""

    def __init__(self, fake: HostClock) -> None:
        super().__init__()
        self._fake = fake

    def now(self) -> float:
        return self._fake.true_wall()

    def advance(self, seconds: float) -> None:
        self._fake.advance(seconds)


class SimTime:
    """The simulation's timeline: ``fake`` for syncd, ``sim`` for the simulators."""

    def __init__(self, wall_start: float = WALL_START, *, seed: int = 0) -> None:
        self.fake = HostClock(start=1_000.0, wall_start=wall_start, seed=seed)
        self.sim = SharedSimClock(self.fake)

    def wall(self) -> float:
        """The true wall time (the simulators' clocks)."""
        return self.fake.true_wall()

    def now(self) -> datetime:
        """What syncd's engine and ledger use as "now": syncd's host wall clock."""
        return self.fake.now()

    def advance(self, seconds: float) -> None:
        self.fake.advance(seconds)

    def step_wall(self, seconds: float) -> None:
        """Step syncd's wall clock by ``seconds`` (either sign); nothing else moves."""
        self.fake.wall_offset += seconds
