"""How old each feed's data is, measured on the monotonic clock.

A source is *stale* once its last successful read is older than its
``stale_after``; a stale source blocks the channels it feeds. That age used
to be "wall now minus the wall time stored in the ledger", so an NTP or
hand step of the system clock moved it: a step back by an hour hid an hour
of staleness (a dead warehouse feed kept publishing its last numbers), a
step forward blocked every channel at once. Ages are now measured on the
monotonic clock (``Clock.monotonic``), which no clock step moves; the wall
time stays in the ledger for display and for the APIs.

The ledger stores wall times only, and a monotonic reading means nothing in
another process, so after a start the age of a success recorded by an
earlier process is unknown. Deriving it once from the wall clock would trust
exactly the reading a step back falsifies; so **a feed is stale until it
succeeds in this process** (:meth:`FeedFreshness.age` is None). The cost is
that a restart blocks pushing until each source feeding a channel has read
once -- seconds, as every source polls at once on start -- and ``syncd
status`` shows those sources as starting, not failing.

Within the process, a success is stamped when the ledger records it,
back-dated by how long before that the read was observed (``wall now -
success_at``, never negative): a poll that took a minute counts as a
minute old. A step *during* that poll can only make the stamp older (a
forward step: stale sooner, the safe side) or, for a backward step, not
back-dated at all -- bounded by one poll's duration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Readings(Protocol):
    """The two readings freshness needs from the ledger's :class:`~syncd.clock.Clock`."""

    def wall(self) -> float: ...

    def monotonic(self) -> float: ...


class FeedFreshness:
    """Monotonic time of each feed's last success recorded through this process's ledger."""

    def __init__(self, clock: Readings) -> None:
        # The ledger's clock, which is the assembly's: ages and "now" on one timeline.
        self._clock = clock
        self._stamps: dict[str, float] = {}

    def succeeded(self, feed: str, success_at: datetime) -> None:
        """``feed`` recorded a success observed at ``success_at`` (wall time)."""
        before = max(0.0, self._clock.wall() - success_at.timestamp())
        stamp = self._clock.monotonic() - before
        self._stamps[feed] = max(stamp, self._stamps.get(feed, stamp))

    def age(self, feed: str) -> float | None:
        """Seconds since ``feed`` last succeeded in this process; None if it has not."""
        stamp = self._stamps.get(feed)
        if stamp is None:
            return None
        return max(0.0, self._clock.monotonic() - stamp)

    def is_stale(self, feed: str, stale_after: float) -> bool:
        """Not read successfully in this process, or not within ``stale_after`` seconds."""
        return is_stale(self.age(feed), stale_after)


def is_stale(age: float | None, stale_after: float) -> bool:
    """A feed is stale when it has no known age (no success yet) or is older than allowed."""
    return age is None or age > stale_after
