"""Gathering what the push planner needs to know about a channel (the I/O side of planning).

:func:`syncd.engine.plan.plan_push` is pure; this module reads the ledger and
the feeds' freshness and keeps the little memory planning needs between
rounds:

- which source read each pending value was first computed from (an increase
  from nothing shown needs a second consistent read);
- which SKUs the channel's own order feed moved, to be written again
  unchanged (:meth:`PushMemory.collect_resends`).

A round reads only what it may send: the ledger selects the next
``budget x per_request`` pending rows in planner order through an index, and
counts the interlock's figures in SQL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime

import structlog

from syncd.bundles import CatalogIndex, affected_skus
from syncd.channels.base import Channel
from syncd.engine.feeds import Feeds
from syncd.engine.plan import PushFacts
from syncd.ledger.interlock import HeldCycle
from syncd.ledger.store import Ledger
from syncd.model import ChannelRule, OutboxRow
from syncd.safety import SafetyPolicy, increase_needs_second_read

log = structlog.get_logger("syncd.engine")


class PushMemory:
    """What planning remembers between rounds, and the reads that build a channel's facts."""

    def __init__(
        self,
        ledger: Ledger,
        index: CatalogIndex,
        rules: Mapping[str, ChannelRule],
        feeds: Feeds,
        *,
        confirm_ttl: float,
        stamp: Callable[[], Awaitable[datetime]],
    ) -> None:
        self.ledger = ledger
        self._index = index
        self._rules = rules
        self._feeds = feeds
        self.confirm_ttl = confirm_ttl
        self._stamp = stamp
        self._read_generation = 0
        """Bumped by :meth:`note_source_read`; an increase after zero needs a newer one."""
        self._first_seen: dict[tuple[str, str], tuple[int, int]] = {}
        """(channel, sku) -> (desired value, read generation when first computed)."""
        self._resend: dict[str, set[str]] = {}
        """channel -> SKUs to write again although their value did not change."""
        self._resend_mark: dict[str, int] = {}
        """channel -> the last transaction already looked at for :meth:`collect_resends`."""

    # --- source reads ------------------------------------------------------------

    def note_source_read(self) -> None:
        self._read_generation += 1

    def _note_seen(self, channel: str, row: OutboxRow) -> tuple[int, int]:
        """(desired value, read generation it was first computed in) for the row."""
        key = (channel, row.sku)
        seen = self._first_seen.get(key)
        if seen is None or seen[0] != row.desired:
            seen = (row.desired, self._read_generation)
            self._first_seen[key] = seen
        return seen

    def _single_read(self, channel: str, row: OutboxRow) -> bool:
        return self._note_seen(channel, row)[1] >= self._read_generation

    async def note_pending_computed(self, channels: Collection[str]) -> None:
        """Remember every pending value as computed from the sources' current read.

        `syncd once` calls this before it reads the sources a second time, so
        that an increase from zero computed again from that second read counts
        as confirmed; without it the run (a new process each time) would
        first look at the value only when pushing and never push it.
        """
        for channel in channels:
            for row in await self.ledger.pending(channel):
                self._note_seen(channel, row)

    # --- interlock inputs ----------------------------------------------------------

    def published_count(self, channel: str) -> int:
        rule = self._rules[channel]
        if rule.skus is not None:
            return len(rule.skus)
        return len(self._index.skus)

    async def confirmed_until(
        self, channel: str, holds: Sequence[HeldCycle] | None = None
    ) -> datetime | None:
        """Creation time of the newest held cycle an operator confirmed within ``confirm_ttl``.

        A confirmation covers the changes that hold was about -- desired
        values computed up to then -- and nothing computed later: a second
        bad read shortly after a confirmed one must be held again. ``holds``:
        the channel's holds, confirmed ones included, when already read.
        """
        if holds is None:
            holds = await self.ledger.held_cycles(channel, include_confirmed=True)
        now = await self._stamp()
        covered = [
            hold.created_at
            for hold in holds
            if hold.confirmed_at is not None
            and (now - hold.confirmed_at).total_seconds() <= self.confirm_ttl
        ]
        return max(covered, default=None)

    # --- the channel's own orders --------------------------------------------------

    async def collect_resends(self, channel: str, sender: Channel) -> None:
        """Queue SKUs whose reservations the channel's own order feed moved, to write again.

        A channel that subtracts its own orders from the figure syncd writes
        (Ankorstore) lowers that figure itself when it ships one of them. The
        value syncd computes may stay the same (the order's units leave the
        sellable quantity and the added-back part together), so nothing would
        be pushed and the channel would go on showing the shipped units
        subtracted twice (an undersell). Writing the unchanged absolute value
        again puts it right. Moves from before this process started are not
        looked at: the start-up read-back (:mod:`syncd.readback`) already
        corrected every value the channel changed while syncd was down.
        """
        if not sender.adds_own_orders:
            # Only a channel whose written figure counts its own orders
            # (Ankorstore) changes that figure when one of them ships. fabric
            # only ever lowers its managed figure on its own (an undersell the
            # read-back reports); writing it again could erase a sale syncd
            # has not read yet.
            return
        feeds = self._feeds.own_order_feeds(channel)
        if not feeds:
            return
        current = await self.ledger.last_txn_id()
        since = self._resend_mark.get(channel)
        if since is None:
            self._resend_mark[channel] = current
            return
        if current == since:
            return
        moved = await self.ledger.changed_skus_since(since, feeds)
        self._resend_mark[channel] = current
        if moved:
            self._resend.setdefault(channel, set()).update(affected_skus(moved, self._index))

    def settle_resends(self, channel: str, skus: Collection[str]) -> None:
        """These SKUs' values reached the channel (acknowledged or parked): no resend owed."""
        self._resend.get(channel, set()).difference_update(skus)

    async def _resend_rows(self, channel: str) -> tuple[OutboxRow, ...]:
        wanted = self._resend.get(channel)
        if not wanted:
            return ()
        rows = tuple(
            row
            for row in await self.ledger.outbox_rows(channel, wanted)
            if row.status != "parked" and row.acknowledged == row.desired
        )
        # A SKU pending with a new value goes out anyway; one syncd does not
        # publish here, or parked: nothing to write.
        wanted.intersection_update(row.sku for row in rows)
        if rows:
            log.info("push.resend_for_orders", channel=channel, variants=len(rows))
        return rows

    # --- the facts -------------------------------------------------------------------

    async def gather(
        self,
        channel: str,
        sender: Channel,
        policy: SafetyPolicy,
        *,
        budget: int | None,
        skip: Collection[str] = (),
    ) -> PushFacts:
        """The channel's facts for one round; ``budget`` None reads every pending row.

        ``skip``: SKUs already sent by an earlier round of the same push -- one
        that failed is retried by the next push, not at once.
        """
        holds = await self.ledger.held_cycles(channel, include_confirmed=True)
        confirmed_until = await self.confirmed_until(channel, holds)
        open_holds = [hold for hold in holds if hold.confirmed_at is None]
        figures = await self.ledger.pending_figures(channel, confirmed_until=confirmed_until)
        per_request = sender.per_request
        # No budget (a dry run): every pending row, the ones already sent aside.
        capacity = figures.pending if budget is None else max(0, budget) * per_request
        candidates, more = await self._candidates(channel, policy, capacity, skip)
        stale = tuple(await self._feeds.stale_causes(channel))
        overdue = (
            tuple(await self._feeds.overdue_order_feeds(channel)) if sender.lowers_on_order else ()
        )
        single = frozenset(row.sku for row in candidates if self._single_read(channel, row))
        return PushFacts(
            channel=channel,
            candidates=candidates,
            pending=figures.pending,
            changes=figures.changes,
            zeroes=figures.zeroes,
            published=self.published_count(channel),
            per_request=per_request,
            budget=budget,
            stale=stale,
            orders_overdue=overdue,
            single_read=single,
            resends=await self._resend_rows(channel),
            open_hold=open_holds[-1].id if open_holds else None,
            beyond=max(1, figures.pending - len(candidates) - len(skip)) if more else 0,
        )

    async def _candidates(
        self, channel: str, policy: SafetyPolicy, capacity: int, skip: Collection[str]
    ) -> tuple[tuple[OutboxRow, ...], bool]:
        """The pending rows a round may act on, in planner order, and whether more wait behind.

        An increase from zero that waits for a second read takes no slot from
        the values behind it: for each one that waits, one more row is read.
        One row more than needed is read to learn whether anything is left
        for a later round (what the round then defers).
        """
        chosen: list[OutboxRow] = []
        seen: set[str] = set(skip)
        want = capacity
        while True:
            rows = await self.ledger.next_pending(channel, want + 1, skip=seen)
            more = len(rows) > want
            rows = rows[:want]
            chosen += rows
            seen.update(row.sku for row in rows)
            waiting = sum(
                1
                for row in rows
                if self._single_read(channel, row)
                and increase_needs_second_read(row, policy=policy, consistent_reads=1)
            )
            if not more or not waiting:
                return tuple(chosen), more
            want = waiting
