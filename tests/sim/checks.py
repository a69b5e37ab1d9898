"""The invariants checked after every step of a simulation (ARCHITECTURE.md).

Each check returns one line per violation; the harness fails the seed on the
first step that has any.

1. The ledger's own invariants (sum of postings == balance, ...).
2. Nothing negative was ever sent to a channel (every write the simulators
   received is inspected, whatever syncd thought it sent).
3. An acknowledged outbox value is what the channel held in the written
   field (Ankorstore ``stockQuantity``, fabric ``inventory``) right after the
   last write it applied for that SKU, or what a later read-back saw there
   (a read-back replaces the cached acknowledgement) -- unless a write is in
   flight (the row is ``sent`` or ``failed``, or ``pending`` after an
   unconfirmed send): otherwise syncd believes a number the channel does not
   show, and nothing will ever correct it. Not checked on a channel whose
   ledger was rewound (restored from a copy, WAL lost) until its start-up
   read-back succeeded: until then the cache is known to be old, and nothing
   is pushed to that channel.
4. The ledger never invents warehouse stock: every Active Ants level it holds
   is one the warehouse showed at some point (an empty or partial read that
   zeroed stock would break this).
5. A reservation is never released while its order still holds stock and the
   warehouse has not taken it over (a partial listing must release nothing);
   an Ankorstore order is never released by a handover at all (it reserves
   until Ankorstore closes it: oracle.py).
6. The engine's incremental recompute gives what a full recompute of the
   same ledger gives (checked whenever the engine is up to date).
7. The simulators raised nothing unexpected, and served no 429 of their own
   outside the token endpoints (syncd stays within documented limits; a
   restarted process may legitimately ask for tokens again).
8. An Ankorstore order, seen by syncd or not, never raises Ankorstore's
   ``availableQuantity`` above the truth (:func:`~tests.sim.oracle.truth`: the
   simulators' pool less every truly open order, in whole packs) -- except
   that a line of an order the channel's values did not count when syncd
   last caught up counts only on the listing it orders: Ankorstore subtracts it there itself, while on a listing
   sharing its stock (a bundle and its components) it waits for the order
   poll like any other channel's order. Checked
   whenever the only world events since syncd last caught up are Ankorstore
   orders (placed, accepted, cancelled, rejected, shipped, handed over) --
   see :attr:`Invariants.caught_up`: any other change (stock read later, an
   order on another channel) is a window every poller has, not this rule.

:func:`superseded_sends` (no superseded value sent after a newer one was
acknowledged) runs once at the end, over the whole push log.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.allocation import allocate
from syncd.engine import Engine
from syncd.ledger.store import Ledger
from syncd.model import Account, OutboxRow, Reservation, StockStatus
from syncd.sandbox.world import SandboxWorld
from tests.sim.events import WorldDriver
from tests.sim.known import KnownIssue, strict
from tests.sim.network import Network
from tests.sim.oracle import offers, open_orders

IN_FLIGHT = frozenset({"sent", "failed"})
"""Outbox statuses of a row whose value is on its way (or failed and will be resent)."""


@dataclass(frozen=True, slots=True)
class _LedgerView:
    """What the checks read from the ledger, read once per step."""

    invariants: list[str]
    outbox: list[OutboxRow]
    balances: dict[Account, int]
    reservations: list[Reservation]
    last_txn: int

    @classmethod
    async def read(cls, ledger: Ledger) -> _LedgerView:
        return cls(
            invariants=await ledger.check_invariants(),
            outbox=await ledger.outbox_rows(),
            balances=await ledger.balances(),
            reservations=await ledger.open_reservations(),
            last_txn=await ledger.last_txn_id(),
        )


class Invariants:
    """Per-simulation memory the checks need (what was ever reserved, ever stocked)."""

    def __init__(self, world: SandboxWorld, network: Network, driver: WorldDriver) -> None:
        self.world = world
        self.network = network
        self.driver = driver
        self._ever_reserved: set[tuple[str, str]] = set()
        self._ever_stocked: set[str] = set()
        self.tainted: dict[tuple[str, str], set[str]] = {}
        """(channel, SKU) -> ids of the known issues that left it wrong (see known.py)."""
        self.known: dict[str, list[str]] = {}
        """Known issue id -> what was seen, in order."""
        self.rewound: set[str] = set()
        """Channels whose ledger was rewound and not read back since (check 3 skipped)."""
        self.caught_up = False
        """syncd caught up with the world (a complete cycle: every source read, every
        Ankorstore value acknowledged) and since then only Ankorstore orders moved
        (check 8 applies)."""
        self.accounted: set[str] = set()
        """Ankorstore orders the values acknowledged when syncd last caught up counted."""

    def ledger_rewound(self, channels: set[str]) -> None:
        """The ledger was replaced by an older copy: its memory starts again from it."""
        self.rewound = set(channels)
        self._ever_reserved = set()
        self._ever_stocked = set()
        self.caught_up = False

    def note_known(self, issue: KnownIssue, key: tuple[str, str], detail: str) -> bool:
        """Record a known issue for ``key``; False in strict mode (then it is a failure)."""
        if strict():
            return False
        issues = self.tainted.setdefault(key, set())
        if issue.id not in issues:
            issues.add(issue.id)
            self.known.setdefault(issue.id, []).append(f"{key[0]}/{key[1]}: {detail}")
        return True

    async def check(self, ledger: Ledger, engine: Engine) -> list[str]:
        view = await _LedgerView.read(ledger)
        problems = [f"ledger invariant: {line}" for line in view.invariants]
        problems += self._network()
        problems += await self._acknowledged(ledger, view)
        problems += self._warehouse_levels(view)
        problems += self._reservations(view)
        problems += self._recompute(view, engine)
        problems += self._ankorstore_within_truth()
        return problems

    def _ankorstore_within_truth(self) -> list[str]:
        if not self.caught_up:
            return []
        orders = open_orders(self.world)
        # Orders recorded since syncd last caught up may not be in what the
        # channel shows yet, whether the ledger holds them or not.
        unseen = {
            ref: set(lines)
            for (channel, ref), lines in orders.items()
            if channel == "ankorstore" and ref not in self.accounted
        }
        known = {
            key: lines
            for key, lines in orders.items()
            if key[0] != "ankorstore" or key[1] not in unseen
        }
        problems = []
        for sku in self.world.catalog.published("ankorstore"):
            listing = self.world.ankorstore.listing(sku)
            available = listing.available_quantity
            if available is None:
                continue
            # An order syncd has not read yet is subtracted by Ankorstore from the
            # listing each of its lines orders, and only there; what a line takes from
            # another listing sharing the stock (a bundle and its components) waits for
            # the order poll, like any other channel's order.
            own = {
                ("ankorstore", ref): {sku: orders[("ankorstore", ref)][sku]}
                for ref, skus in unseen.items()
                if sku in skus
            }
            bound = offers(self.world, known | own)[("ankorstore", sku)]
            if available > bound:
                problems.append(
                    f"ankorstore/{sku}: available {available} (stockQuantity "
                    f"{listing.stock_quantity}, reserved {listing.reserved_quantity}) is above "
                    f"the truth {bound}"
                )
        return problems

    def _network(self) -> list[str]:
        problems = [f"negative write reached a channel: {w}" for w in self.network.negative_writes]
        problems += [f"simulator raised: {e}" for e in self.network.app_errors]
        problems += [
            f"{api} answered 429 on its own ({count}x): a documented limit was exceeded"
            for api, count in sorted(self.network.simulator_429.items())
            if not api.endswith(" token")
        ]
        return problems

    async def _acknowledged(self, ledger: Ledger, view: _LedgerView) -> list[str]:
        problems: list[str] = []
        for row in view.outbox:
            if row.acknowledged is None or row.status in IN_FLIGHT or row.status == "parked":
                continue
            if row.channel in self.rewound:
                continue
            key = (row.channel, row.sku)
            known = self.network.known_value(key)
            if known == row.acknowledged:
                continue
            if row.status == "pending" and await _unconfirmed_send(ledger, row):
                # A newer value was sent, never confirmed, and superseded: the row
                # is waiting to send the newest one. ("acknowledged" with such a
                # send outstanding would be a false claim, and is reported.)
                continue
            last = self.network.last_applied.get(key)
            if known == "unknown":
                problems.append(
                    f"{row.channel}/{row.sku}: outbox says acknowledged {row.acknowledged}, "
                    "but the channel never applied a write for it nor was it read back"
                )
            else:
                wrote = (
                    f", last write sent {last.sent}, reserved then {last.reserved}" if last else ""
                )
                problems.append(
                    f"{row.channel}/{row.sku}: outbox says the channel holds {row.acknowledged} "
                    f"(status {row.status}, desired {row.desired}), but after the last write it "
                    f"applied or the last read-back it held {known}{wrote}"
                )
        return problems

    def _warehouse_levels(self, view: _LedgerView) -> list[str]:
        held = {
            account.sku: quantity
            for account, quantity in view.balances.items()
            if account.location == "activeants" and account.status == StockStatus.AVAILABLE
        }
        problems: list[str] = []
        for sku, seen in sorted(self.driver.activeants_seen.items()):
            level = held.get(sku, 0)
            if level:
                self._ever_stocked.add(sku)
            elif sku not in self._ever_stocked:
                continue  # never recorded yet: nothing was invented
            if level not in seen:
                problems.append(
                    f"ledger holds {level} available for {sku} at activeants; the warehouse "
                    f"only ever showed {sorted(seen)}"
                )
        return problems

    def _reservations(self, view: _LedgerView) -> list[str]:
        reserved = {(r.channel, r.order_ref) for r in view.reservations}
        self._ever_reserved |= reserved
        holding = open_orders(self.world, keep_handed_over=frozenset({"ankorstore"}))
        return [
            f"{channel} order {ref}: reservation released while the order still holds "
            f"{holding[(channel, ref)]} and the warehouse has not taken it over"
            for channel, ref in sorted(self._ever_reserved - reserved)
            if (channel, ref) in holding
        ]

    def _recompute(self, view: _LedgerView, engine: Engine) -> list[str]:
        """The engine's (incremental) desired values equal a full recompute of the same ledger.

        Checked only while the engine is up to date with the ledger (its last
        recompute saw the latest transaction).
        """
        if engine.computed_through != view.last_txn:
            return []
        full = allocate(view.balances, view.reservations, engine.index, list(engine.rules.values()))
        want = {(d.channel, d.sku): d.quantity for d in full}
        return [
            f"{row.channel}/{row.sku}: desired {row.desired}, a full recompute of the same "
            f"ledger gives {want[(row.channel, row.sku)]}"
            for row in view.outbox
            if want.get((row.channel, row.sku), row.desired) != row.desired
        ]


async def _unconfirmed_send(ledger: Ledger, row: OutboxRow) -> bool:
    """Was a value sent after the last acknowledgement, and never confirmed? (push log)

    Such a row is in flight whatever its status says: the value may or may not
    have landed, and the row stays pending until one is confirmed.
    """
    log = await ledger.push_log(row.channel, row.sku, limit=1_000)
    acked = max((e.seq for e in log if e.status == "acknowledged"), default=0)
    return any(e.status == "sent" and e.seq > acked for e in log)


async def superseded_sends(ledger: Ledger) -> list[str]:
    """Values sent with an older seq after a newer one was acknowledged (push log)."""
    entries = sorted(await ledger.push_log(limit=1_000_000), key=lambda e: e.id)
    acked: dict[tuple[str, str], int] = {}
    problems: list[str] = []
    for entry in entries:
        key = (entry.channel, entry.sku)
        if entry.status == "acknowledged":
            acked[key] = max(acked.get(key, 0), entry.seq)
        elif entry.status == "sent" and entry.seq < acked.get(key, 0):
            problems.append(
                f"{entry.channel}/{entry.sku}: sent seq {entry.seq} ({entry.quantity}) after "
                f"seq {acked[key]} was acknowledged"
            )
    return problems
