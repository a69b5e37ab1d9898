"""What the engine knows of each source feed: which channels it feeds, and whether it is fresh.

A channel's numbers are only as good as the feeds they are computed from. This
module answers the questions the push interlocks ask about those feeds: which
feeds a channel depends on (by location), which of them are stale now, why,
and whether a channel's own order feed is overdue. Freshness is measured on
the monotonic clock (:mod:`syncd.ledger.freshness`); the reasons quote the
last error recorded in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from syncd.ledger.freshness import is_stale as freshness_is_stale
from syncd.ledger.store import Ledger
from syncd.model import ChannelRule
from syncd.sources.freshness import stale_source

NEVER = datetime.min.replace(tzinfo=UTC)
"""When a feed that never succeeded was last read: nothing happened "since" it."""


@dataclass(frozen=True, slots=True)
class FeedInfo:
    """What the engine needs to know of a source to judge a channel's inputs."""

    name: str
    locations: tuple[str, ...]
    stale_after: float
    channel: str | None = None
    """For order feeds: the channel whose orders they are (fabric_orders -> fabric)."""
    overdue_after: float | None = None
    """Seconds after its last success an order feed counts as overdue (about two
    poll intervals); None falls back to ``stale_after``."""


def _overlaps(a: str, b: str) -> bool:
    """True when two location names or ``prefix*`` patterns can name the same location."""
    a_prefix, a_wild = (a[:-1], True) if a.endswith("*") else (a, False)
    b_prefix, b_wild = (b[:-1], True) if b.endswith("*") else (b, False)
    if a_wild and b_wild:
        return a_prefix.startswith(b_prefix) or b_prefix.startswith(a_prefix)
    if a_wild:
        return b.startswith(a_prefix)
    if b_wild:
        return a.startswith(b_prefix)
    return a == b


def is_stale(age: float | None, stale_after: float) -> bool:
    """A feed is stale when it has not succeeded in this process or did too long ago.

    ``age`` is monotonic seconds since the last success in this process
    (``ledger.freshness.age``), so a wall-clock step neither hides nor
    invents staleness; see :mod:`syncd.ledger.freshness` for why a success
    recorded by an earlier process does not count.
    """
    return freshness_is_stale(age, stale_after)


class Feeds:
    """The configured feeds, judged against the ledger's freshness records."""

    def __init__(
        self,
        ledger: Ledger,
        feeds: Sequence[FeedInfo],
        rules: dict[str, ChannelRule],
        now: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.all = list(feeds)
        self._rules = rules
        self._now = now

    def feeds_for(self, channel: str) -> list[FeedInfo]:
        """The feeds whose locations the channel's rule draws stock from."""
        rule = self._rules[channel]
        return [
            feed
            for feed in self.all
            if any(_overlaps(mine, theirs) for mine in feed.locations for theirs in rule.locations)
        ]

    def own_order_feeds(self, channel: str) -> list[str]:
        """Names of the order feeds that read the channel's own orders, sorted."""
        return sorted({feed.name for feed in self.all if feed.channel == channel})

    async def stale_feeds(self, channel: str) -> list[str]:
        fresh = self.ledger.freshness
        return [
            feed.name
            for feed in self.feeds_for(channel)
            if is_stale(fresh.age(feed.name), feed.stale_after)
        ]

    async def stale_causes(self, channel: str) -> list[str]:
        """The channel's stale feeds, each as ``name (why)``: how long unread and its last error.

        What blocked pushes say, so a person reads the cause (a refused login, an
        unreachable API) where the block is reported, not only in the source's log.
        """
        stale = await self.stale_feeds(channel)
        if not stale:
            return []
        states = {state.feed: state for state in await self.ledger.feed_states()}
        now = self._now()
        fresh = self.ledger.freshness
        return [
            stale_source(name, states.get(name), now, measured=fresh.age(name)) for name in stale
        ]

    async def overdue_order_feeds(self, channel: str) -> list[str]:
        """The channel's own order feeds that are overdue, each with why.

        Overdue: not read successfully in this process, failing since its
        last success (the poll that was due did not happen), or last
        succeeded more than ``overdue_after`` (else ``stale_after``) seconds
        ago on the monotonic clock.
        """
        states = {state.feed: state for state in await self.ledger.feed_states()}
        found: list[str] = []
        for feed in self.all:
            if feed.channel != channel:
                continue
            state = states.get(feed.name)
            age = self.ledger.freshness.age(feed.name)
            limit = feed.overdue_after if feed.overdue_after is not None else feed.stale_after
            if age is None:
                found.append(f"{feed.name} (not read since syncd started)")
            elif state is not None and state.last_error is not None:
                found.append(f"{feed.name} (failing: {state.last_error})")
            elif is_stale(age, limit):
                found.append(f"{feed.name} (last read {age:.0f} s ago)")
        return found

    async def orders_read_at(self, channel: str) -> datetime | None:
        """Oldest last success of the channel's own order feeds; None when it has none."""
        names = self.own_order_feeds(channel)
        if not names:
            return None
        states = {state.feed: state for state in await self.ledger.feed_states()}
        times = [states[n].last_success if n in states else None for n in names]
        known = [t for t in times if t is not None]
        # A feed never read counts as read at the epoch: nothing is "since" it.
        return min(known) if len(known) == len(times) else NEVER
