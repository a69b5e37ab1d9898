"""ASTRAL's double-entry stock ledger, as the simulator keeps it.

ASTRAL (seed 000 L13097-13171) records stock as immutable **postings**
(signed deltas in **batches** on location x status x variant [x lot]),
grouped in **transactions** whose postings sum to zero, ``void`` included
(L13125). The stock state is the running balance; ``onHand`` is derived
(available + reserved + damaged + qualityControl + blocked, L13151) and
``void`` is never stock (L13157). This module is the bookkeeping only;
:mod:`syncd.sandbox.astral_state` is the warehouse that moves stock.
"""

from __future__ import annotations

import bisect
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from syncd.sandbox.limits import SimClock

LOCATION_STATUSES = (
    "available",
    "reserved",
    "damaged",
    "qualityControl",
    "blocked",
    "incoming",
    "void",
)
STOCK_STATUSES = (
    "onHand",
    "available",
    "damaged",
    "reserved",
    "qualityControl",
    "blocked",
    "incoming",
)
ON_HAND = ("available", "reserved", "damaged", "qualityControl", "blocked")
LOCATION_TYPES = ("warehouse", "brand", "retailer")
MOVEMENT_TYPES = (
    "order_created",
    "order_cancelled",
    "order_reserved",
    "order_shipped",
    "order_received",
    "replenishment",
    "snapshot",
    "manual",
    "broken",
    "lost",
    "found",
    "destroyed",
    "replenishment_mismatch",
    "delivery_refused",
    "returned_to_brand",
    "adjustment_reversed",
    "quality_control",
    "expired",
    "brand_request",
    "blocked_by_provider",
    "unblocked",
    "batched",
    "unbatched",
    "returned",
    "batch_modified",
    "expiry_date_modified",
)

LotKey = tuple[str, str]
"""(lot number, expiry date); ("", "") for stock without a lot."""
AccountKey = tuple[str, str, str, LotKey]
"""(location id, location status, variant id, lot)."""
FeedKey = tuple[int, int, int]
"""(createdAt in ms, transaction sequence, posting index): the feed order."""


class InsufficientStock(ValueError):
    """A movement asked for more batches than the source status holds."""


@dataclass(frozen=True, slots=True)
class SimLocation:
    id: str
    type: str
    external_id: str


@dataclass(frozen=True, slots=True)
class AstralPosting:
    id: str
    transaction_id: str
    location_id: str
    variant_id: str
    status: str
    quantity: int
    """Signed delta in batches."""
    movement: str
    unit_multiplier: int
    lot: LotKey
    key: FeedKey
    created_at: float

    @property
    def cursor(self) -> str:
        """``uuid,timestamp`` (10-digit epoch seconds), the documented format (L13520)."""
        return f"{self.id},{int(self.created_at):010d}"


@dataclass(frozen=True, slots=True)
class AstralTransaction:
    id: str
    related_id: str
    created_at: float
    metadata: Mapping[str, str]
    postings: tuple[AstralPosting, ...]
    key: tuple[int, int]

    @property
    def cursor(self) -> str:
        return f"{self.id},{int(self.created_at):010d}"


@dataclass(slots=True)
class Leg:
    status: str
    variant_id: str
    quantity: int
    lot: LotKey
    location_id: str


@dataclass(slots=True)
class AstralVariant:
    id: str
    sku: str
    unit_multiplier: int
    """Units per batch (L13105-13109)."""
    lots: list[LotKey] = field(default_factory=list)


class AstralLedger:
    """Immutable postings grouped in zero-sum transactions, and the balances they make.

    Thread-safe (one re-entrant lock). The feed order is the transaction's
    ``createdAt`` (ms), then the order transactions were recorded, then the
    posting's place in its transaction; a backdated transaction is inserted at
    its ``createdAt``, as ASTRAL would list it.
    """

    def __init__(self, clock: SimClock, *, seed: int) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._rng = random.Random(seed * 17 + 3)  # noqa: S311 -- reproducible ids
        self.locations: list[SimLocation] = []
        self.variants: dict[str, AstralVariant] = {}
        self._feed: list[AstralPosting] = []
        self._feed_keys: list[FeedKey] = []
        self._txns: list[AstralTransaction] = []
        self._txn_keys: list[tuple[int, int]] = []
        self._postings_by_id: dict[str, AstralPosting] = {}
        self._txn_by_id: dict[str, AstralTransaction] = {}
        self._by_variant: dict[str, list[AstralPosting]] = {}
        self._balances: dict[AccountKey, int] = {}
        self._seq = 0

    def _uuid7(self, epoch: float) -> str:
        # Time-ordered ids like ASTRAL's own (018fc37f-...), from a seeded generator.
        value = (int(epoch * 1000) & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= self._rng.getrandbits(12) << 64
        value |= 0b10 << 62
        value |= self._rng.getrandbits(62)
        return str(uuid.UUID(int=value))

    def _record(
        self,
        movement: str,
        legs: list[Leg],
        *,
        related_id: str | None,
        metadata: Mapping[str, str] | None = None,
        created_at: float | None = None,
    ) -> AstralTransaction:
        if not legs:
            raise ValueError("a transaction needs postings")
        if sum(leg.quantity for leg in legs) != 0:
            raise AssertionError("postings of a transaction must sum to zero (L13125)")
        with self.lock:
            when = self.clock.now() if created_at is None else created_at
            self._seq += 1
            millis = int(when * 1000)
            txn_id = self._uuid7(when)
            postings = tuple(
                AstralPosting(
                    id=self._uuid7(when),
                    transaction_id=txn_id,
                    location_id=leg.location_id,
                    variant_id=leg.variant_id,
                    status=leg.status,
                    quantity=leg.quantity,
                    movement=movement,
                    unit_multiplier=self.variants[leg.variant_id].unit_multiplier,
                    lot=leg.lot,
                    key=(millis, self._seq, index),
                    created_at=when,
                )
                for index, leg in enumerate(legs)
            )
            txn = AstralTransaction(
                id=txn_id,
                related_id=related_id or txn_id,
                created_at=when,
                metadata=dict(metadata or {"movement": movement}),
                postings=postings,
                key=(millis, self._seq),
            )
            at = bisect.bisect_right(self._txn_keys, txn.key)
            self._txn_keys.insert(at, txn.key)
            self._txns.insert(at, txn)
            self._txn_by_id[txn.id] = txn
            for posting in postings:
                at = bisect.bisect_right(self._feed_keys, posting.key)
                self._feed_keys.insert(at, posting.key)
                self._feed.insert(at, posting)
                self._postings_by_id[posting.id] = posting
                per_variant = self._by_variant.setdefault(posting.variant_id, [])
                bisect.insort(per_variant, posting, key=lambda p: p.key)
                account = (posting.location_id, posting.status, posting.variant_id, posting.lot)
                self._balances[account] = self._balances.get(account, 0) + posting.quantity
            return txn

    def location(self, location_id: str) -> SimLocation | None:
        return next((loc for loc in self.locations if loc.id == location_id), None)

    def balances(self) -> dict[AccountKey, int]:
        with self.lock:
            return dict(self._balances)

    def posting(self, posting_id: str) -> AstralPosting | None:
        return self._postings_by_id.get(posting_id)

    def transaction(self, txn_id: str) -> AstralTransaction | None:
        return self._txn_by_id.get(txn_id)

    def feed_postings(self) -> tuple[Sequence[AstralPosting], Sequence[FeedKey]]:
        """The postings in feed order and their sort keys: live lists, read under ``lock``.

        Not copied: a page of a 100 000-posting feed must not cost a copy of it.
        """
        return self._feed, self._feed_keys

    def feed_transactions(self) -> tuple[Sequence[AstralTransaction], Sequence[tuple[int, int]]]:
        """Transactions in feed order and their sort keys: live lists, read under ``lock``."""
        return self._txns, self._txn_keys

    def single_balances(
        self, variant_id: str, *, before: FeedKey | None = None, until: float | None = None
    ) -> dict[tuple[str, str, LotKey], int]:
        """(location, status, lot) -> batches of a single variant, void excluded.

        ``before``: only postings sorting before that feed key (the opening
        state of a page, L13548); ``until``: only transactions created at or
        before that second (``stateAt``, L13218-13221).
        """
        with self.lock:
            rows: dict[tuple[str, str, LotKey], int] = {}
            if before is None and until is None:
                for (loc, st, vid, lk), qty in self._balances.items():
                    if vid == variant_id and st != "void":
                        rows[(loc, st, lk)] = qty
                return rows
            for posting in self._by_variant.get(variant_id, []):
                if before is not None and posting.key >= before:
                    break
                if until is not None and int(posting.created_at) > until:
                    continue
                if posting.status == "void":
                    continue
                row = (posting.location_id, posting.status, posting.lot)
                rows[row] = rows.get(row, 0) + posting.quantity
            return rows


def scan(
    count: int,
    start: int,
    step: int,
    match: Callable[[int], bool],
    limit: int,
) -> Iterator[int]:
    """Indices from ``start`` walking by ``step`` whose item matches, at most ``limit``."""
    index = start
    found = 0
    while 0 <= index < count and found < limit:
        if match(index):
            found += 1
            yield index
        index += step
