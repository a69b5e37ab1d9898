"""The one way an order feed hands a poll to the ledger (shared by the three order sources).

For a :class:`~syncd.sources.orders_model.Listing` this:

1. reports every skipped order or line through the source's
   :class:`~syncd.sources.problems.SkipLog` (``source.item_skipped`` with
   source, item and reason; the same open order coming back every poll is
   not logged again within the quiet period) -- the rest is recorded
   regardless;
2. keeps the ledger's previous quantity for lines that could not be read
   (:func:`~syncd.sources.orders_model.finish_lines`);
3. asks the :class:`~syncd.sources.handover.Handover` (when configured)
   which orders the warehouse already holds;
4. records one observation with ``record_orders``: ``complete=True`` only
   for a listing that read every open order without error, so a failed page
   can never release orders; a failed poll still records what it read
   (those orders are open, whatever the rest looks like);
5. marks the feed's freshness: success at the observation time, or the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog

from syncd.clock import Clock
from syncd.ledger.store import Ledger
from syncd.model import OrderObservation, Sku
from syncd.sources.base import PollResult
from syncd.sources.handover import Handover
from syncd.sources.orders_model import Listing, finish_lines
from syncd.sources.problems import SkipLog

_log = structlog.get_logger(__name__)


def observation_time(clock: Clock) -> datetime:
    """Now, as an aware UTC datetime from the injected clock."""
    return clock.now()


async def _after_last_sighting(
    ledger: Ledger, feed: str, channel: str, observed_at: datetime
) -> datetime:
    """``observed_at``, or just after the channel's newest recorded sighting if not later.

    The ledger orders a channel's order observations by ``observed_at``: an
    older one never releases what a newer one saw open. Listings are taken
    and recorded one after another, so each *is* newer than the last one
    recorded; only a wall clock stepped back (NTP, a person) can make it look
    older, and then every release would wait until the clock caught up (an
    undersell for as long as the step). The observation time never goes
    backwards instead; it is a timestamp for display, not a measure of age
    (ages are monotonic, syncd.ledger.freshness).
    """
    last = await ledger.last_order_sighting(channel)
    if last is None or observed_at > last:
        return observed_at
    _log.warning(
        "source.clock_behind",
        source=feed,
        observed_at=observed_at.isoformat(),
        last_sighting=last.isoformat(),
        note="the wall clock is behind the last recorded listing; recorded just after it",
    )
    return last + timedelta(microseconds=1)


async def previous_lines(ledger: Ledger, channel: str) -> dict[str, dict[Sku, int]]:
    """The open reservation lines the ledger holds for ``channel``, by order ref."""
    lines: dict[str, dict[Sku, int]] = {}
    for reservation in await ledger.open_reservations():
        if reservation.channel == channel:
            lines.setdefault(reservation.order_ref, {})[reservation.sku] = reservation.quantity
    return lines


async def record_listing(
    ledger: Ledger,
    *,
    feed: str,
    channel: str,
    location: str,
    listing: Listing,
    observed_at: datetime,
    handover: Handover | None,
    skip_log: SkipLog,
) -> PollResult:
    """Record ``listing`` and the feed's freshness; see the module docstring."""
    observed_at = await _after_last_sighting(ledger, feed, channel, observed_at)
    skip_log.begin_poll()
    for skipped in listing.skips:
        skip_log.skip(skipped)
    skips = skip_log.finish_poll()
    orders = list(listing.orders.values())
    previous: Mapping[str, Mapping[Sku, int]] = {}
    if any(o.keep_all or o.keep_skus for o in orders):
        previous = await previous_lines(ledger, channel)
    problems = list(skips.problems)
    held: frozenset[str] = frozenset()
    requests = listing.requests
    # Only orders that may hold stock are worth asking the warehouse about.
    asked = [o.order_ref for o in orders if o.reserving]
    if handover is not None and (asked or listing.complete):
        outcome = await handover.resolve(ledger, channel, asked, prune=listing.complete)
        held, requests = outcome.held, requests + outcome.requests
        problems.extend(outcome.problems)
    observations = [
        OrderObservation(
            channel=channel,
            order_ref=order.order_ref,
            status=order.status,
            observed_at=observed_at,
            open_lines=finish_lines(order, previous.get(order.order_ref, {})),
            location=location,
            held_by_warehouse=order.order_ref in held,
        )
        for order in orders
    ]
    recorded = False
    if observations or listing.complete:
        recorded = await ledger.record_orders(
            feed,
            # Unique per observation; drawn from the ledger's (the one) clock for replay.
            f"{observed_at.isoformat()}/{ledger.clock.rng(feed).getrandbits(48):012x}",
            observed_at,
            observations,
            complete=listing.complete,
            channels=[channel],
        )
    extra = {
        "orders": str(len(observations)),
        "held_by_warehouse": str(len(held)),
        "complete": str(listing.complete).lower(),
        **skips.extra(),
    }
    if listing.error is None:
        await ledger.mark_feed(feed, success_at=observed_at, extra=extra)
    else:
        problems.insert(0, listing.error)
        await ledger.mark_feed(feed, error=listing.error, extra=extra)
    log = _log.info if listing.error is None else _log.warning
    log(
        "source.orders_recorded",
        source=feed,
        channel=channel,
        orders=len(observations),
        held_by_warehouse=len(held),
        reserving=sum(1 for o in observations if o.open_lines and not o.held_by_warehouse),
        skipped=skips.count,
        complete=listing.complete,
        requests=requests,
        error=listing.error,
    )
    return PollResult(
        feed=feed,
        recorded=int(recorded),
        skipped=skips.count,
        requests=requests,
        caught_up=not listing.more,
        complete=listing.complete,
        problems=problems,
        error=listing.error,
    )
