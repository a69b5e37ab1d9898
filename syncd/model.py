"""Plain typed data shared by every layer of syncd.

This module is the contract between the I/O adapters (sources, channels, the
ledger) and the pure computation (allocation, planning). It imports nothing
that performs I/O, so pure modules can depend on it freely.

Quantities are always **units** (single pieces) once they are inside syncd.
Sources that count batches (ASTRAL, seed 000 L13105-13109) convert at the
edge and keep the batch count and multiplier on the posting for the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import NamedTuple

Sku = str
"""The brand's own SKU: the one key every system is mapped to (see `Variant`)."""

LocationId = str
"""A stock location as syncd names it, e.g. ``activeants`` or ``astral:<uuid>``.

Reservation pools use ``reserved:<channel>`` and the counter-account of every
external observation is the ``void`` status of the same location.
"""


class StockStatus(StrEnum):
    """Location statuses, as ASTRAL defines them (seed 000 L13143-13157).

    Only ``available`` is ever sellable. ``void`` is the double-entry
    counter-account for movements syncd observes but cannot explain.
    """

    AVAILABLE = "available"
    RESERVED = "reserved"
    DAMAGED = "damaged"
    QUALITY_CONTROL = "qualityControl"
    BLOCKED = "blocked"
    INCOMING = "incoming"
    VOID = "void"


@dataclass(frozen=True, slots=True, order=True)
class Account:
    """One balance in the ledger: location x status x variant [x lot]."""

    location: LocationId
    status: StockStatus
    sku: Sku
    lot: str = ""


@dataclass(frozen=True, slots=True)
class Posting:
    """A signed change on one account. Immutable once recorded.

    ``batches`` and ``unit_multiplier`` keep the source's own unit when it
    counts batches (ASTRAL); ``quantity`` is always in units.
    """

    account: Account
    quantity: int
    movement: str = "snapshot"
    batches: int | None = None
    unit_multiplier: int = 1
    external_id: str | None = None
    """A source's own id for the posting (ASTRAL posting UUID); unique when set."""


@dataclass(frozen=True, slots=True)
class CursorUpdate:
    """A feed cursor committed in the same transaction as what it covers."""

    feed: str
    value: str


class TransactionKind(StrEnum):
    MOVEMENT = "movement"  # postings observed from a source feed (ASTRAL postings)
    SNAPSHOT = "snapshot"  # absolute levels; differences become adjustments vs void
    RESERVATION = "reservation"  # an order's open quantities changed
    CURSOR = "cursor"  # a page that carried nothing but an advanced cursor


@dataclass(frozen=True, slots=True)
class TransactionDraft:
    """What a source hands to the ledger: postings that must sum to zero.

    ``key`` is the external idempotency key (source + external id or page
    cursor); recording the same ``(source, key)`` twice is a no-op.
    """

    kind: TransactionKind
    source: str
    key: str
    observed_at: datetime
    postings: tuple[Posting, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    cursor: CursorUpdate | None = None


@dataclass(frozen=True, slots=True)
class SnapshotDraft:
    """Absolute stock levels observed at one location.

    The ledger turns each level that differs from its balance into an
    adjustment posted against the location's ``void`` account, so the sum of
    postings always equals the balance and every change keeps a cause.

    ``scope`` lists the SKUs this snapshot speaks for. A full snapshot
    (``complete=True``) also sets every other SKU of the location to zero --
    callers must only pass ``complete=True`` for a read that really covered
    the whole catalog (an empty or partial read must never zero stock).
    """

    source: str
    key: str
    observed_at: datetime
    location: LocationId
    levels: Mapping[tuple[StockStatus, Sku, str], int]
    complete: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    cursor: CursorUpdate | None = None


@dataclass(frozen=True, slots=True)
class OrderObservation:
    """One order as a channel reports it now.

    ``open_lines`` is the quantity (units) per SKU that is committed but not
    yet shipped. An order that shipped, was cancelled or rejected, or that the
    warehouse has taken over (``held_by_warehouse``) reserves nothing.
    """

    channel: str
    order_ref: str
    status: str
    observed_at: datetime
    open_lines: Mapping[Sku, int]
    location: LocationId
    """The stock pool the order will be fulfilled from."""
    held_by_warehouse: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    """An open reservation as the ledger holds it."""

    channel: str
    order_ref: str
    sku: Sku
    quantity: int
    location: LocationId
    since: datetime


# --- catalog --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variant:
    """A sellable variant and its identity in every system syncd talks to."""

    sku: Sku
    activeants_sku: str | None = None
    astral_variant_id: str | None = None
    ankorstore_variant_id: str | None = None
    ankorstore_sku: str | None = None
    fabric_sku: str | None = None
    barcode: str | None = None
    pack_size: int = 1
    """Units per pack a channel sells (Ankorstore ``unitMultiplier``)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A virtual bundle: ``components`` maps component SKU to units per bundle.

    Components may themselves be bundles (nested); the catalog is acyclic.
    """

    sku: Sku
    components: Mapping[Sku, int]


@dataclass(frozen=True, slots=True)
class Prepack:
    """A FashionTrade PREPACK: one ordered prepack expands to these units."""

    code: str
    lines: Mapping[Sku, int]


@dataclass(frozen=True, slots=True)
class Catalog:
    variants: Mapping[Sku, Variant]
    bundles: Mapping[Sku, Bundle] = field(default_factory=dict)
    prepacks: Mapping[str, Prepack] = field(default_factory=dict)


# --- channel rules ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """How one channel's sellable quantity is derived from the stock pool.

    Applied in this order: pool from ``locations`` (``available`` only),
    minus reservations on those locations, bundles, ``buffer`` units held
    back, ``percentage`` of the rest (rounded down), ``cap``, whole packs,
    clamp at zero.
    """

    channel: str
    locations: tuple[LocationId, ...]
    """Location ids or prefixes ending in ``*`` (``astral:*``)."""
    buffer: int = 0
    percentage: float = 100.0
    cap: int | None = None
    pack_rounding: bool = True
    skus: frozenset[Sku] | None = None
    """SKUs published on this channel; ``None`` means every catalog SKU."""
    adds_own_orders: bool = False
    """The channel subtracts its own open orders from what it shows (Ankorstore:
    ``availableQuantity = stockQuantity - reservedQuantity``, seed 000 L1806-1810),
    so the number written is the sellable quantity plus the units of the channel's
    own open orders that the ledger subtracted (see :mod:`syncd.allocation`)."""


# --- allocation output --------------------------------------------------------
#
# Allocation creates one Desired and one Explanation per (channel, SKU) on a
# full recompute -- 220 000 objects for 100 000 variants on two channels --
# and frozen dataclasses cost about four times as much to create. These three
# are therefore plain slotted dataclasses that every caller treats as
# read-only (allocation shares explanation inputs between channels).


@dataclass(slots=True)
class ExplanationStep:  # read-only by convention; see above
    """One rule applied on the way to a published number."""

    rule: str
    before: int
    after: int
    detail: str = ""


@dataclass(slots=True)
class Explanation:  # read-only by convention; see above
    """Why a channel gets the number it gets -- everything `syncd explain` shows."""

    channel: str
    sku: Sku
    inputs: Mapping[str, int]
    """Balance per ``location/status/lot`` and reservation per order ref."""
    steps: tuple[ExplanationStep, ...]
    limiting_component: Sku | None = None
    result: int = 0


@dataclass(slots=True)
class Desired:  # read-only by convention; see above
    """The absolute quantity (units) syncd writes to a channel for a SKU.

    For a channel that subtracts its own orders (``ChannelRule.adds_own_orders``)
    ``quantity`` is the sellable quantity plus ``own_reserved``; elsewhere the two
    are the same number and ``own_reserved`` is 0.
    """

    channel: str
    sku: Sku
    quantity: int
    explanation: Explanation
    own_reserved: int = 0
    """Units of the channel's own open orders included in ``quantity``."""

    @property
    def sellable(self) -> int:
        """What the channel offers once it has subtracted its own orders."""
        return self.quantity - self.own_reserved


MAX_UNITS = 10**12
"""The one bound on a quantity: the largest syncd accepts from a source or sends to a channel.

A trillion units is beyond any warehouse: a bigger count is corrupt or hostile
input (``1e30``, ``10**30``), skipped and reported at ingest
(:mod:`syncd.sources.jsonvalues`) like any other bad value, and never sent
(:mod:`syncd.engine.plan` parks it). Far below the ledger's storage guard
(``syncd.ledger.codec.MAX_QUANTITY``, which keeps sums inside SQLite's 64-bit
integers), so one bad item can never make a whole page unrecordable."""


class PushedValue(NamedTuple):
    """One value handed to a channel, the same identity from the planner to the push log.

    ``(sku, seq)`` names it within its channel (the outbox bumps ``seq`` on
    every change of the desired value, so a seq carries exactly one quantity);
    ``quantity`` is that value. The channel is the scope of the call that
    carries it (every request goes to one channel). A plain tuple, so
    ``(sku, seq, quantity)`` triples are accepted wherever one is expected.
    """

    sku: Sku
    seq: int
    quantity: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    channel: str
    sku: Sku
    desired: int
    acknowledged: int | None
    seq: int
    status: str
    updated_at: datetime
    reason: str | None = None
    own_reserved: int = 0
    """Units of the channel's own open orders included in ``desired`` (see `Desired`)."""

    @property
    def sellable(self) -> int:
        """``desired`` less the channel's own orders: what buyers can order."""
        return self.desired - self.own_reserved

    @property
    def value(self) -> PushedValue:
        """The current desired value, as it is pushed and logged."""
        return PushedValue(self.sku, self.seq, self.desired)


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a source last achieved: used for freshness and staleness."""

    feed: str
    cursor: str | None
    last_success: datetime | None
    last_error: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


def now_utc() -> datetime:
    """The host's wall time: only a default for a ``now=`` no caller left out.

    syncd's own parts read time through their injected :class:`~syncd.clock.Clock`
    (``clock.now()`` is this same reading on the real clock); the assembly passes
    ``clock.now`` wherever ``now=`` is taken.
    """
    return datetime.now(UTC)
