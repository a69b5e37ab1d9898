"""The engine cycle: recompute what changed, check the interlocks, push, record.

One engine serves every channel. The daemon calls :meth:`Engine.recompute`
after sources record and :meth:`Engine.push_channel` on each channel's own
schedule; `syncd once` calls both until there is nothing left to do.

Recompute (ARCHITECTURE.md, "Allocation"): only SKUs whose postings or
reservations changed since the last pass are recomputed, plus every bundle
built from them (:func:`syncd.bundles.affected_skus`). The result goes to the
outbox as the latest desired absolute value per (channel, SKU) with its
explanation -- a value that did not change keeps its seq and is not pushed.

Push (ARCHITECTURE.md, "Planner", "Safety interlocks"):

1. a channel fed by a stale source (or one that has never succeeded) pushes
   nothing: its numbers could oversell;
2. a cycle that would zero or change too large a share of the channel is
   recorded as a held cycle and waits for an operator's confirmation
   (`syncd confirm`, `syncd once --confirm`); a confirmation authorises the
   changes computed up to the hold, for ``confirm_ttl`` seconds -- values
   computed after it are judged afresh;
3. an increase from an acknowledged zero waits until a later source read
   computed the same way (``confirm_increase_after_zero``);
4. a channel that lowers the written figure itself when an order arrives
   (``Channel.lowers_on_order``: fabric's managed inventory) would be told
   too much by an increase computed before its newest orders were ingested,
   so increases wait while that channel's own order feed is overdue: never
   read, failing now, or last read longer ago than ``overdue_after``.
   Ankorstore does not need this: it subtracts its own orders from the
   written ``stockQuantity`` itself (:mod:`syncd.allocation`, step 5);
5. the planner orders decreases first and batches to the channel's maximum,
   within the rate budget the channel may spend now;
6. every reply is recorded: acknowledged only when the channel confirmed it,
   parked with the reason when the channel refuses a value resending cannot
   fix, failed (retried next round) otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from syncd.bundles import affected_skus, catalog_index
from syncd.channels.base import Channel, PushResult
from syncd.channels.planner import Move, PlannedUpdate, plan
from syncd.engine.feeds import FeedInfo, Feeds
from syncd.engine.recompute import Recompute
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, OutboxRow, now_utc
from syncd.safety import Assessment, SafetyPolicy, assess, increase_needs_second_read

log = structlog.get_logger("syncd.engine")

CONFIRM_TTL = 900.0
"""Seconds an operator's confirmation of a held cycle stays valid."""


@dataclass(slots=True)
class ChannelCycle:
    """What one push round of one channel did (logs, status, `syncd once`)."""

    channel: str
    pending: int = 0
    planned: int = 0
    acknowledged: int = 0
    parked: int = 0
    failed: int = 0
    deferred: int = 0
    waiting: int = 0
    """Increases held back for a second read or an overdue order feed."""
    waiting_reasons: list[str] = field(default_factory=list)
    requests: int = 0
    held_id: int | None = None
    blocked: str | None = None
    reasons: list[str] = field(default_factory=list)
    remaining: int | None = None
    """Rows still pending once the round ended (None when the round pushed nothing).

    Counted from the ledger, not from the replies: a reply for a value
    superseded while it was in flight acknowledges nothing current."""

    @property
    def settled(self) -> bool:
        """True when nothing is left to push and nothing is blocked or held."""
        return (
            self.blocked is None
            and self.held_id is None
            and self.failed == 0
            and self.deferred == 0
            and self.waiting == 0
            and self.pending == self.acknowledged + self.parked
            and not self.remaining
        )


class Engine:
    def __init__(
        self,
        ledger: Ledger,
        catalog: Catalog,
        rules: Sequence[ChannelRule],
        channels: Mapping[str, Channel],
        *,
        policies: Mapping[str, SafetyPolicy],
        feeds: Sequence[FeedInfo],
        now: Callable[[], datetime] = now_utc,
        confirm_ttl: float = CONFIRM_TTL,
    ) -> None:
        self.ledger = ledger
        self.catalog = catalog
        self.index = catalog_index(catalog)
        self.channels = dict(channels)
        # Whether a channel subtracts its own orders is the channel's to declare.
        self.rules = {
            rule.channel: replace(rule, adds_own_orders=self.channels[rule.channel].adds_own_orders)
            if rule.channel in self.channels
            else rule
            for rule in rules
        }
        self.policies = dict(policies)
        self.now = now
        self.confirm_ttl = confirm_ttl
        self._feeds = Feeds(ledger, feeds, self.rules, now)
        self.feeds = self._feeds.all
        self._recompute = Recompute(ledger, self.index, self.rules, now)
        self._read_generation = 0
        """Bumped by :meth:`note_source_read`; an increase after zero needs a newer one."""
        self._first_seen: dict[tuple[str, str], tuple[int, int]] = {}
        """(channel, sku) -> (desired value, read generation when first computed)."""
        self.last_cycle: dict[str, ChannelCycle] = {}
        self._resend: dict[str, set[str]] = {}
        """channel -> SKUs to write again although their value did not change."""
        self._resend_mark: dict[str, int] = {}
        """channel -> the last transaction already looked at for :meth:`_collect_resends`."""

    # --- recompute (syncd.engine.recompute) --------------------------------------

    @property
    def last_recompute_s(self) -> float:
        return self._recompute.last_seconds

    @property
    def _last_txn(self) -> int | None:
        return self._recompute.last_txn

    def note_source_read(self) -> None:
        """A source recorded a successful read (called by the daemon and `once`)."""
        self._read_generation += 1

    async def recompute(self, *, full: bool = False) -> int:
        """Recompute desired values for what changed; returns how many outbox values changed."""
        return await self._recompute.run(full=full)

    async def stamp(self) -> datetime:
        """The next record stamp (:meth:`syncd.engine.recompute.Recompute.stamp`)."""
        return await self._recompute.stamp()

    def take_packs(self, channel: str) -> bool:
        """Adopt the channel's own pack sizes; True when some SKU must be computed again."""
        return self._recompute.take_packs(channel, self.channels[channel].pack_sizes())

    # --- feeds (syncd.engine.feeds) -------------------------------------------------

    def feeds_for(self, channel: str) -> list[FeedInfo]:
        return self._feeds.feeds_for(channel)

    async def stale_feeds(self, channel: str) -> list[str]:
        return await self._feeds.stale_feeds(channel)

    async def stale_causes(self, channel: str) -> list[str]:
        return await self._feeds.stale_causes(channel)

    async def overdue_order_feeds(self, channel: str) -> list[str]:
        return await self._feeds.overdue_order_feeds(channel)

    async def orders_read_at(self, channel: str) -> datetime | None:
        return await self._feeds.orders_read_at(channel)

    # --- interlocks ----------------------------------------------------------

    def published_count(self, channel: str) -> int:
        rule = self.rules[channel]
        if rule.skus is not None:
            return len(rule.skus)
        return len(self.index.skus)

    async def _confirmed_until(self, channel: str) -> datetime | None:
        """Creation time of the newest held cycle an operator confirmed within ``confirm_ttl``.

        A confirmation covers the changes that hold was about -- desired
        values computed up to then -- and nothing computed later: a second
        bad read shortly after a confirmed one must be held again.
        """
        holds = await self.ledger.held_cycles(channel, include_confirmed=True)
        now = await self.stamp()
        covered = [
            hold.created_at
            for hold in holds
            if hold.confirmed_at is not None
            and (now - hold.confirmed_at).total_seconds() <= self.confirm_ttl
        ]
        return max(covered, default=None)

    async def _hold(self, channel: str, verdict: Assessment, pending: Sequence[OutboxRow]) -> int:
        """Record a held cycle once; a cycle already waiting is not recorded again."""
        open_holds = await self.ledger.held_cycles(channel)
        if open_holds:
            return open_holds[-1].id
        payload = {
            "zeroes": verdict.zeroes,
            "changes": verdict.changes,
            "published": verdict.published,
            "sample": [f"{row.sku}: {row.acknowledged} -> {row.desired}" for row in pending[:20]],
        }
        hold_id = await self.ledger.hold_cycle(
            channel, "; ".join(verdict.reasons), payload, await self.stamp()
        )
        log.warning("push.held", channel=channel, hold_id=hold_id, reasons=list(verdict.reasons))
        return hold_id

    async def confirm(
        self, channel: str, hold_id: int | None = None, *, by: str | None = None
    ) -> list[int]:
        """Confirm one held cycle, or every open one of the channel; returns the ids confirmed.

        ``by`` is who confirmed, as the kernel names them (``alice (uid 1000)``),
        kept with the hold in the ledger and in the log.
        """
        confirmed: list[int] = []
        for hold in await self.ledger.held_cycles(channel):
            wanted = hold_id is None or hold.id == hold_id
            if wanted and await self.ledger.confirm_held_cycle(hold.id, await self.stamp(), by=by):
                confirmed.append(hold.id)
        if confirmed:
            log.warning("push.confirmed", channel=channel, hold_ids=confirmed, by=by)
        return confirmed

    async def unpark(self, channel: str, skus: Collection[str] | None, note: str) -> list[str]:
        """Make parked SKUs of ``channel`` pushable again (``None``: all); returns those unparked.

        The value goes out on the next push; a channel that still refuses it
        parks it again, with the new reason.
        """
        # The ledger logs it (``outbox.unparked``), whoever asks: the daemon or `syncd unpark`.
        return await self.ledger.unpark_items(channel, skus, self.now(), note)

    def _waits_for_second_read(self, channel: str, row: OutboxRow, policy: SafetyPolicy) -> bool:
        seen = self._note_seen(channel, row)
        reads = 2 if self._read_generation > seen[1] else 1
        return increase_needs_second_read(row, policy=policy, consistent_reads=reads)

    def _note_seen(self, channel: str, row: OutboxRow) -> tuple[int, int]:
        """(desired value, read generation it was first computed in) for the row."""
        key = (channel, row.sku)
        seen = self._first_seen.get(key)
        if seen is None or seen[0] != row.desired:
            seen = (row.desired, self._read_generation)
            self._first_seen[key] = seen
        return seen

    async def note_pending_computed(self) -> None:
        """Remember every pending value as computed from the sources' current read.

        `syncd once` calls this before it reads the sources a second time, so
        that an increase from zero computed again from that second read counts
        as confirmed; without it the run (a new process each time) would
        first look at the value only when pushing and never push it.
        """
        for channel in self.channels:
            for row in await self.ledger.pending(channel):
                self._note_seen(channel, row)

    # --- push ----------------------------------------------------------------

    async def push_channel(self, channel: str, *, max_rounds: int | None = None) -> ChannelCycle:
        """Push the channel's pending changes, as far as interlocks and budget allow."""
        sender = self.channels[channel]
        policy = self.policies.get(channel, SafetyPolicy())
        cycle = ChannelCycle(channel=channel)
        # Never judge or push desired values computed before the latest
        # records (or with a pack the channel no longer sells in): a pusher
        # woken between a source's commit and the engine's recompute would
        # otherwise act on stale numbers (and a hold raised on them would ask
        # an operator to confirm the wrong thing).
        self.take_packs(channel)
        if not await self._recompute.is_current():
            await self.recompute()
        await self._collect_resends(channel)
        pending = await self.ledger.pending(channel)
        cycle.pending = len(pending)
        if not pending and not self._resend.get(channel):
            self.last_cycle[channel] = cycle
            return cycle
        stale = await self.stale_causes(channel)
        confirmed_until = await self._confirmed_until(channel)
        unconfirmed = [
            row for row in pending if confirmed_until is None or row.updated_at > confirmed_until
        ]
        verdict = assess(
            unconfirmed,
            published=self.published_count(channel),
            policy=policy,
            stale_sources=stale,
        )
        cycle.reasons = list(verdict.reasons)
        if verdict.blocked:
            cycle.blocked = "; ".join(verdict.reasons)
            log.warning(
                "push.blocked", channel=channel, reasons=cycle.reasons, pending=len(pending)
            )
            self.last_cycle[channel] = cycle
            return cycle
        if verdict.hold:
            cycle.held_id = await self._hold(channel, verdict, unconfirmed)
            self.last_cycle[channel] = cycle
            return cycle

        overdue = await self.overdue_order_feeds(channel) if sender.lowers_on_order else []
        sendable: list[OutboxRow] = []
        for_orders = for_second_read = 0
        for row in pending:
            increase = row.acknowledged is None or row.desired > row.acknowledged
            if increase and overdue:
                for_orders += 1
            elif self._waits_for_second_read(channel, row, policy):
                for_second_read += 1
            else:
                sendable.append(row)
        cycle.waiting = for_orders + for_second_read
        if for_orders:
            cycle.waiting_reasons.append(
                f"{for_orders} increase(s) wait for the channel's own orders: "
                f"order feed overdue: {', '.join(overdue)}"
            )
            log.warning(
                "push.increases_wait_for_orders",
                channel=channel,
                increases=for_orders,
                feeds=overdue,
            )
        if for_second_read:
            cycle.waiting_reasons.append(
                f"{for_second_read} increase(s) from zero wait for a second consistent read"
            )

        resends = await self._resend_rows(channel, {row.sku for row in pending})
        cycle.pending += len(resends)
        sendable += resends
        rounds = 0
        while sendable and (max_rounds is None or rounds < max_rounds):
            rounds += 1
            budget = sender.requests_available()
            if budget <= 0:
                cycle.deferred = len(sendable)
                break
            planned = plan(sendable, per_request=sender.per_request, max_requests=budget)
            for batch in planned.batches:
                result = await self._send(channel, sender, batch)
                self._resend.get(channel, set()).difference_update(
                    [u.sku for u in result.acknowledged] + [u.sku for u, _ in result.parked]
                )
                cycle.planned += len(batch)
                cycle.requests += result.requests
                cycle.acknowledged += len(result.acknowledged)
                cycle.parked += len(result.parked)
                cycle.failed += len(result.failed)
            cycle.deferred = planned.deferred
            if not planned.deferred:
                break
            # Re-read: rows may have been superseded while we were sending.
            sent = {u.sku for b in planned.batches for u in b}
            sendable = [r for r in await self.ledger.pending(channel) if r.sku not in sent]
        if cycle.planned:
            # Counted in SQL: reading the rows back cost as much as the round itself on a
            # queue of 100 000 values.
            cycle.remaining, _ = await self.ledger.outbox_counts(channel)
        self.last_cycle[channel] = cycle
        log.info(
            "push.cycle",
            channel=channel,
            pending=cycle.pending,
            acknowledged=cycle.acknowledged,
            parked=cycle.parked,
            failed=cycle.failed,
            deferred=cycle.deferred,
            waiting=cycle.waiting,
            requests=cycle.requests,
        )
        return cycle

    # --- the channel's own orders --------------------------------------------

    async def _collect_resends(self, channel: str) -> None:
        """Queue SKUs whose reservations the channel's own order feed moved, to write again.

        A channel that subtracts its own orders from the figure syncd writes
        (Ankorstore) lowers that figure itself when it ships one of them. The
        value syncd computes may stay the same (the order's units leave the
        sellable quantity and the added-back part together), so nothing would
        be pushed and the channel would go on showing the shipped units
        subtracted twice (an undersell). Writing the unchanged absolute value
        again puts it right. Moves from before this process started are not looked at: the
        start-up read-back (:mod:`syncd.readback`) already corrected every
        value the channel changed while syncd was down.
        """
        if not self.channels[channel].adds_own_orders:
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
            self._resend.setdefault(channel, set()).update(affected_skus(moved, self.index))

    async def _resend_rows(self, channel: str, pending: set[str]) -> list[OutboxRow]:
        """Outbox rows to write again unchanged (see :meth:`_collect_resends`)."""
        wanted = self._resend.get(channel)
        if not wanted:
            return []
        wanted -= pending  # those go out anyway, with their new value
        rows = [
            # Planned like a first publication: the planner skips rows whose
            # value equals the acknowledged one, and this one must go out.
            replace(row, acknowledged=None)
            for row in await self.ledger.outbox_rows(channel)
            if row.sku in wanted and row.status != "parked" and row.acknowledged == row.desired
        ]
        known = {row.sku for row in rows}
        wanted &= known  # SKUs syncd does not publish here, or parked: nothing to write
        if rows:
            log.info("push.resend_for_orders", channel=channel, variants=len(rows))
        return rows

    async def _send(
        self, channel: str, sender: Channel, batch: Sequence[PlannedUpdate]
    ) -> PushResult:
        items = [(u.sku, u.seq, u.quantity) for u in batch]
        now = self.now()
        await self.ledger.mark_sent(channel, items, None, now)
        try:
            result = await sender.push(batch)
        except Exception as exc:  # one failing batch never stops the channel
            log.exception("push.failed", channel=channel, updates=len(batch))
            await self.ledger.mark_failed(
                channel, items, None, f"{type(exc).__name__}: {exc}", self.now()
            )
            return PushResult(failed=[(u, str(exc)) for u in batch], requests=1)
        request_id = ",".join(result.request_ids) or None
        now = self.now()
        if result.acknowledged:
            await self.ledger.mark_acknowledged(
                channel,
                [(u.sku, u.seq, u.quantity) for u in result.acknowledged],
                request_id,
                result.reply or None,
                now,
            )
        for update, reason in result.parked:
            await self.ledger.mark_parked(channel, update.sku, update.seq, reason, now)
            log.warning("push.parked", channel=channel, sku=update.sku, reason=reason)
        if result.failed:
            await self.ledger.mark_failed(
                channel,
                [(u.sku, u.seq, u.quantity) for u, _ in result.failed],
                request_id,
                "; ".join(sorted({reason for _, reason in result.failed}))[:500],
                now,
            )
        decreases = sum(1 for u in batch if u.move < Move.INCREASE)
        log.info(
            "push.sent",
            channel=channel,
            variants=len(batch),
            decreases=decreases,
            acknowledged=len(result.acknowledged),
            parked=len(result.parked),
            failed=len(result.failed),
            request_id=request_id,
        )
        return result
