"""One fake time source for syncd and every simulator.

syncd's HTTP layer reads time through a :class:`~syncd.http.clock.Clock`; the
simulators read it through a :class:`~syncd.sandbox.limits.SimClock`. The
simulation hands both the same :class:`~syncd.http.clock.FakeClock`, so a
token that expires, a rate window that slides or a ``Retry-After`` that is
waited out all happen on one timeline, without real sleeping. syncd's wall
clock can be stepped on its own (:meth:`SimTime.step_host_wall`), as a
host's is by NTP; the servers' clocks do not move with it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.http.clock import FakeClock
from syncd.sandbox.limits import SimClock

WALL_START = 1_750_000_000.0
"""Fixed epoch start (June 2025): a run never depends on the real date."""


class SharedSimClock(SimClock):
    """The simulators' clock, reading syncd's fake clock instead of ``time.time``."""

    def __init__(self, fake: FakeClock) -> None:
        super().__init__()
        self._fake = fake
        self.host_steps = 0.0
        """How far syncd's host clock was stepped: the simulators' clocks do not follow."""

    def now(self) -> float:
        return self._fake.wall() - self.host_steps

    def advance(self, seconds: float) -> None:
        self._fake.advance(seconds)


class SimTime:
    """The simulation's timeline: ``fake`` for syncd, ``sim`` for the simulators."""

    def __init__(self, wall_start: float = WALL_START) -> None:
        self.fake = FakeClock(start=1_000.0, wall_start=wall_start)
        self.sim = SharedSimClock(self.fake)

    def wall(self) -> float:
        return self.fake.wall()

    def now(self) -> datetime:
        """What syncd's engine uses as "now" (it must agree with the sources' timestamps)."""
        return datetime.fromtimestamp(self.fake.wall(), UTC)

    def advance(self, seconds: float) -> None:
        self.fake.advance(seconds)

    def step_host_wall(self, seconds: float) -> None:
        """Step syncd's wall clock (NTP, an administrator); the APIs' servers keep theirs."""
        self.fake.step_wall(seconds)
        self.sim.host_steps += seconds
