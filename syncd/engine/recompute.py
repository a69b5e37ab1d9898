"""Recompute: turn the ledger's balances and reservations into desired values.

Only SKUs whose postings or reservations changed since the last pass are
recomputed, plus every bundle built from them (:func:`syncd.bundles.affected_skus`)
(ARCHITECTURE.md, "Allocation"). The result goes to the outbox as the latest
desired absolute value per (channel, SKU) with the compact basis of its
explanation (`syncd.ledger.basis`: numbers and references; `syncd explain`
writes the explanation out on demand). Allocation runs on plain rows
(`syncd.allocation.compute_channel`), only ``available`` balances are read,
summed per SKU in SQL, one channel at a time, and only
values or bases that changed are written: a value that did not change keeps
its seq and is not pushed, and a restart with unchanged values writes nothing.

This module also owns the two things a recompute depends on besides the
ledger: the channels' own pack sizes (:meth:`Recompute.take_packs`) and the
record stamp (:meth:`Recompute.stamp`), which never runs backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta

import structlog

from syncd.allocation import RuleError, collector_paused, compute_channel, validate_rules
from syncd.bundles import CatalogIndex, affected_skus
from syncd.engine.feeds import NEVER
from syncd.ledger.store import Ledger
from syncd.model import ChannelRule

log = structlog.get_logger("syncd.engine")

_TICK = timedelta(microseconds=1)
"""The ledger's time resolution: consecutive record stamps differ by at least this."""


class Recompute:
    """Incremental recompute of desired values, with the state it carries between passes."""

    def __init__(
        self,
        ledger: Ledger,
        index: CatalogIndex,
        rules: Mapping[str, ChannelRule],
        now: Callable[[], datetime],
    ) -> None:
        self.ledger = ledger
        self.index = index
        self._rules = rules
        self._now = now
        self.last_txn: int | None = None
        """The ledger's last transaction the desired values were computed from."""
        self.last_seconds = 0.0
        self._packs: dict[str, Mapping[str, int]] = {}
        """channel -> the channel's own pack sizes the desired values were computed with."""
        self._repack: set[str] = set()
        """SKUs whose channel pack changed since the last recompute."""
        self._stamp_floor: datetime | None = None
        """The latest record stamp (see :meth:`stamp`)."""

    async def is_current(self) -> bool:
        """True when no record and no pack changed since the last pass."""
        return not self._repack and await self.ledger.last_txn_id() == self.last_txn

    async def run(self, *, full: bool = False) -> int:
        """Recompute desired values for what changed; returns how many outbox values changed."""
        started = time.perf_counter()
        current = await self.ledger.last_txn_id()
        skus: set[str] | None
        if full or self.last_txn is None:
            skus = None
        else:
            if current == self.last_txn and not self._repack:
                return 0
            changed = set(self._repack)
            if current != self.last_txn:
                changed |= await self.ledger.changed_skus_since(self.last_txn)
            skus = affected_skus(changed, self.index)
            if not skus:
                self.last_txn = current
                self._repack.clear()
                return 0
        self._repack.clear()
        needed = self._inputs_for(skus)
        rules = sorted(self._rules.values(), key=lambda rule: rule.channel)
        problems = validate_rules(rules)
        if problems:
            raise RuleError(problems)
        stamp = await self.stamp()
        desired = changed_count = 0
        with collector_paused():
            # One channel at a time, each from one read of the ledger: a full
            # recompute holds one channel's pools and values, never every channel's.
            # Pools and reservations come from one read transaction, with the id of
            # the last transaction they reflect: each stored basis names it, and
            # `syncd explain` reads the balances back as of that transaction.
            for rule in rules:
                txn, pools, reservations = await self.ledger.allocation_inputs(
                    rule.locations, needed
                )
                values = compute_channel(
                    pools, reservations, self.index, rule, skus=skus, packs=self._packs
                )
                del pools, reservations
                desired += len(values)
                changed_count += await self.ledger.write_desired(
                    values, [rule], txn, stamp, complete=skus is None
                )
                del values
        self.last_txn = current
        self.last_seconds = time.perf_counter() - started
        log.info(
            "engine.recomputed",
            skus="all" if skus is None else len(skus),
            desired=desired,
            changed=changed_count,
            seconds=round(self.last_seconds, 3),
        )
        return changed_count

    async def stamp(self) -> datetime:
        """Wall time for the records confirmations are judged by; it never runs backwards.

        A confirmation covers the desired values stamped up to its hold
        (:meth:`syncd.engine.Engine.confirmed_until`). Were the wall clock set
        back, values computed after a confirmation would be stamped before it
        and go out unheld; so a stamp is never earlier than the latest one the
        ledger holds (a clock set back waits until it catches up, which can
        only keep a confirmation valid that much longer). Stamps are strictly
        increasing, a microsecond apart at least.
        """
        if self._stamp_floor is None:
            self._stamp_floor = await self.ledger.latest_record_time() or NEVER
        now = self._now()
        # Strictly later than every earlier stamp: a value computed after a hold
        # must never tie with it (a tie would count as covered by its confirmation).
        self._stamp_floor = max(self._stamp_floor + _TICK, now)
        return self._stamp_floor

    def take_packs(self, channel: str, packs: Mapping[str, int]) -> bool:
        """Adopt the channel's own pack sizes; True when some SKU must be computed again.

        Ankorstore sells in its products' ``unitMultiplier`` packs, learnt from
        its listings: allocation rounds to them (the explanation then shows
        the number sent), so a changed pack means a new desired value.
        """
        previous = self._packs.get(channel)
        if packs is previous:
            return False
        self._packs[channel] = packs
        old = previous or {}
        moved = {sku for sku in packs.keys() | old.keys() if packs.get(sku) != old.get(sku)}
        self._repack |= moved
        return bool(moved)

    def _inputs_for(self, skus: Collection[str] | None) -> set[str] | None:
        """Every SKU whose balances the given SKUs are computed from (bundles read components)."""
        if skus is None:
            return None
        needed = set(skus)
        for sku in skus:
            needed |= self.index.closure.get(sku, frozenset())
        # An open order for another bundle that shares a component reserves
        # that component too: its reservation must be read, or a single (or a
        # bundle) recomputed after an unrelated change would be published
        # without that order subtracted -- an oversell until a full recompute.
        sharing = affected_skus(needed, self.index) - needed
        for sku in sharing:
            needed |= self.index.closure.get(sku, frozenset())
        return needed | sharing
