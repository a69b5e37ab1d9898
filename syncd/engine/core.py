"""The engine cycle: recompute what changed, plan the push, execute the plan.

One engine serves every channel. The daemon calls :meth:`Engine.recompute`
after sources record and :meth:`Engine.push_channel` on each channel's own
schedule; `syncd once` calls both until there is nothing left to do, and
`syncd once --dry-run` calls :meth:`Engine.push_channel` with ``dry_run=True``
to print the plan instead of executing it.

Each job has its own module, and this class only wires them together:

- :mod:`syncd.engine.recompute` -- desired values from balances and reservations;
- :mod:`syncd.engine.facts` -- what the planner must know of a channel (I/O);
- :mod:`syncd.engine.plan` -- the pure decision: send, hold, block, wait, park, defer;
- :mod:`syncd.engine.execute` -- carrying the actions out and recording them.

A confirmation of a held cycle (`syncd confirm`, `syncd once --confirm`)
authorises the changes computed up to the hold, for ``confirm_ttl`` seconds;
values computed after it are judged afresh.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import structlog

from syncd.bundles import catalog_index
from syncd.channels.base import Channel
from syncd.engine.execute import ChannelCycle, Executor
from syncd.engine.facts import PushMemory
from syncd.engine.feeds import FeedInfo, Feeds
from syncd.engine.plan import Defer, Hold, Send, plan_push
from syncd.engine.recompute import Recompute
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, now_utc
from syncd.safety import SafetyPolicy

log = structlog.get_logger("syncd.engine")

CONFIRM_TTL = 900.0
"""Seconds an operator's confirmation of a held cycle stays valid."""

__all__ = ["CONFIRM_TTL", "ChannelCycle", "Engine"]


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
        self._feeds = Feeds(ledger, feeds, self.rules, now)
        self.feeds = self._feeds.all
        self._recompute = Recompute(ledger, self.index, self.rules, now)
        self._memory = PushMemory(
            ledger,
            self.index,
            self.rules,
            self._feeds,
            confirm_ttl=confirm_ttl,
            stamp=self._recompute.stamp,
        )
        self._executor = Executor(
            ledger, now=now, stamp=self._recompute.stamp, settled=self._memory.settle_resends
        )
        self.last_cycle: dict[str, ChannelCycle] = {}

    @property
    def confirm_ttl(self) -> float:
        return self._memory.confirm_ttl

    # --- recompute (syncd.engine.recompute) --------------------------------------

    @property
    def last_recompute_s(self) -> float:
        return self._recompute.last_seconds

    @property
    def computed_through(self) -> int | None:
        """The ledger's last transaction the desired values were computed from."""
        return self._recompute.last_txn

    def note_source_read(self) -> None:
        """A source recorded a successful read (called by the daemon and `once`)."""
        self._memory.note_source_read()

    async def note_pending_computed(self) -> None:
        """Remember every pending value as computed from the sources' current read
        (:meth:`syncd.engine.facts.PushMemory.note_pending_computed`)."""
        await self._memory.note_pending_computed(list(self.channels))

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

    def published_count(self, channel: str) -> int:
        return self._memory.published_count(channel)

    # --- operators ---------------------------------------------------------------

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

    # --- push ----------------------------------------------------------------------

    async def push_channel(
        self,
        channel: str,
        *,
        max_rounds: int | None = None,
        dry_run: bool = False,
        confirm: bool = False,
    ) -> ChannelCycle:
        """Push the channel's pending changes, as far as interlocks and budget allow.

        Round after round (while the budget defers work and ``max_rounds``
        allows): gather the facts, plan, execute. ``dry_run`` plans one round
        without a budget and executes nothing: ``cycle.actions`` is the plan;
        with ``confirm`` a held plan goes on with what the run would send once
        `syncd once --confirm` confirmed the hold.
        """
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
        await self._memory.collect_resends(channel, sender)
        rounds = 0
        sent: set[str] = set()
        while max_rounds is None or rounds < max_rounds:
            rounds += 1
            budget = None if dry_run else sender.requests_available()
            facts = await self._memory.gather(channel, sender, policy, budget=budget, skip=sent)
            if rounds == 1:
                cycle.pending = facts.pending + len(facts.resends)
            actions = plan_push(facts, policy)
            if dry_run:
                cycle.actions.extend(actions)
                if confirm and any(isinstance(action, Hold) for action in actions):
                    confirmed = replace(facts, changes=0, zeroes=0, open_hold=None)
                    cycle.actions.extend(plan_push(confirmed, policy))
                break
            await self._executor.run(channel, sender, actions, cycle)
            sent.update(
                u.sku for action in actions if isinstance(action, Send) for u in action.updates
            )
            if not any(isinstance(action, Defer) for action in actions):
                break
            if not any(isinstance(action, Send) for action in actions):
                break
        if cycle.planned:
            # Counted in SQL: reading the rows back cost as much as the round itself on a
            # queue of 100 000 values.
            cycle.remaining, _ = await self.ledger.outbox_counts(channel)
        if not dry_run:
            self.last_cycle[channel] = cycle
        if cycle.pending:
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
                dry_run=dry_run,
            )
        return cycle
