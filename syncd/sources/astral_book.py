"""What ASTRAL postings and stock states become in the ledger. Pure: no I/O, no clock.

**Postings** (seed 000 L13129-13131) are immutable signed deltas keyed by
UUID. Each one on a balance status is recorded with its UUID as the
posting's ``external_id``, in **units** (batches x ``unitMultiplier``,
L13107-13109, L13601-13605; batches and multiplier kept on the posting), and
with a mirror posting of the opposite sign on the location's ``void``
account (external id ``<uuid>/void``). ASTRAL's own ``void`` postings are
the counter side that mirror reproduces, so they are not recorded.

Why a mirror per posting rather than ASTRAL's transactions as they are: a
transaction's postings can straddle two pages, and the ledger only accepts
drafts that sum to zero. With a mirror every page is balanced on its own,
and because both halves carry an external id, a replayed page (a crash
before the commit, an overlapping read) drops both halves as duplicates --
a no-op (brief seed-astral 5.3). ``void`` is never stock (L13157) and
``incoming`` is its own status, never ``available`` (L13151).

**Stock states** (L13137-13141) are absolute balances. A state read becomes
one `SnapshotDraft` per location, always partial (``complete=False``), with
explicit zeros for every balance the ledger holds at that location for a
variant the read covered but no longer lists: a variant that was listed is
fully described, and nothing the read did not cover is ever zeroed. The
ledger books each difference as an adjustment against ``void``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from syncd.model import (
    Account,
    CursorUpdate,
    Posting,
    SnapshotDraft,
    StockStatus,
    TransactionDraft,
    TransactionKind,
)
from syncd.sources.astral_parse import FeedPosting, PostingsPage, StateEntity
from syncd.sources.problems import Skipped

UNKNOWN_VARIANT = "unknown productVariantId (no catalog variant has this astral_variant_id)"
DUPLICATE_ID = "posting id listed twice on one page; counted once"
CONFLICTING_ID = (
    "posting id listed twice on one page with different contents; the copy that lowers"
    " sellable stock more is recorded"
)
DUPLICATE_VARIANT = "variant listed twice in one stock state read; the lower balance of each counts"
VOID_SUFFIX = "/void"
_EXAMPLES = 5


def location_name(prefix: str, location_id: str) -> str:
    """``<prefix>:<ASTRAL location uuid>``, e.g. ``astral:3fa85f64-...``."""
    return f"{prefix}:{location_id}"


@dataclass(slots=True)
class PagePlan:
    draft: TransactionDraft | None
    skipped: list[Skipped] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    """Brand SKUs with a posting on this page (reconciliation leaves them out)."""


def plan_page(
    page: PostingsPage,
    mapping: Mapping[str, str],
    *,
    source: str,
    prefix: str,
    after: str | None,
    observed_at: datetime,
) -> PagePlan:
    """The movement draft for one postings page, its cursor committed with it.

    An empty page (``to`` is null, L13297-13300) yields no draft and keeps
    the cursor. A page whose items were all skipped still moves the cursor:
    holding it would re-read the same bad items forever, and the periodic
    state reconciliation books whatever they changed.
    """
    plan = PagePlan(draft=None, skipped=list(page.skipped))
    if page.cursor is None:
        return plan
    postings: list[Posting] = []
    for posting in _one_per_id(page.postings, plan.skipped):
        sku = mapping.get(posting.variant_id)
        if sku is None:
            if posting.status is not StockStatus.VOID:
                plan.skipped.append(Skipped(posting.variant_id, UNKNOWN_VARIANT))
            continue
        plan.touched.add(sku)
        if posting.status is StockStatus.VOID or posting.batches == 0:
            continue
        postings += _mirrored(posting, sku, prefix)
    plan.draft = TransactionDraft(
        kind=TransactionKind.MOVEMENT,
        source=source,
        key=f"postings:{page.cursor}:{_digest(p.id for p in page.postings)}",
        observed_at=observed_at,
        postings=tuple(postings),
        metadata={
            "after": after or "",
            "to": page.cursor,
            "listed": str(page.listed),
            "skipped": str(len(plan.skipped)),
        },
        cursor=CursorUpdate(feed=source, value=page.cursor),
    )
    return plan


def _mirrored(posting: FeedPosting, sku: str, prefix: str) -> tuple[Posting, Posting]:
    location = location_name(prefix, posting.location_id)
    return (
        Posting(
            account=Account(location, posting.status, sku, posting.lot),
            quantity=posting.units,
            movement=posting.movement,
            batches=posting.batches,
            unit_multiplier=posting.unit_multiplier,
            external_id=posting.id,
        ),
        Posting(
            account=Account(location, StockStatus.VOID, sku, posting.lot),
            quantity=-posting.units,
            movement=posting.movement,
            batches=-posting.batches,
            unit_multiplier=posting.unit_multiplier,
            external_id=posting.id + VOID_SUFFIX,
        ),
    )


def _lower(
    first: Mapping[tuple[str, StockStatus, str], int],
    second: Mapping[tuple[str, StockStatus, str], int],
) -> dict[tuple[str, StockStatus, str], int]:
    """Two copies of one variant's state: each balance at the lower of the two.

    A stock state lists each variant once with its balances (seed 000
    L13137-13141: one balance per variant, location, status and lot); a
    second copy in the same read (an overlap between pages of a listing
    that moved while it was read) is not more stock. Adding them would
    double the variant, keeping either could publish the larger, older
    figure; the lower of each balance (a balance one copy omits counts as
    0) can only undersell until the next read or posting.
    """
    return {row: min(first.get(row, 0), second.get(row, 0)) for row in {*first, *second}}


def _sellable_effect(posting: FeedPosting) -> int:
    """How much a posting raises sellable (``available``) stock; other statuses raise nothing."""
    return posting.units if posting.status is StockStatus.AVAILABLE else 0


def _one_per_id(postings: Sequence[FeedPosting], skipped: list[Skipped]) -> list[FeedPosting]:
    """One posting per UUID, in page order; repeats reported.

    One posting, one UUID (seed 000 L13129-13131): a repeat on one page is
    the server's bug, and recording it twice would count its quantity twice.
    Identical copies are one posting. Copies that differ cannot both be
    true; the one that raises ``available`` least is kept, so the repeat
    never publishes the larger figure (the periodic state reconciliation
    books whatever the truth was).
    """
    chosen: dict[str, FeedPosting] = {}
    for posting in postings:
        kept = chosen.get(posting.id)
        if kept is None:
            chosen[posting.id] = posting
        elif kept == posting:
            skipped.append(Skipped(posting.id, DUPLICATE_ID))
        else:
            skipped.append(Skipped(posting.id, CONFLICTING_ID))
            if _sellable_effect(posting) < _sellable_effect(kept):
                chosen[posting.id] = posting
    return list(chosen.values())


def _digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


@dataclass(slots=True)
class StatePlan:
    """Snapshot drafts for one state read, and what to report about it."""

    snapshots: list[SnapshotDraft] = field(default_factory=list)
    cursor_only: TransactionDraft | None = None
    """Commits the cursor when no snapshot carries it (nothing to record)."""
    refused: str | None = None
    covered: int = 0
    mapped: int = 0
    differences: int = 0
    """Balances the read changes: late transactions or drift, booked as adjustments."""
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.refused is None and self.mapped > 0 and self.covered == self.mapped


def plan_state(
    entities: Sequence[StateEntity | Skipped],
    mapping: Mapping[str, str],
    balances: Mapping[Account, int],
    *,
    source: str,
    prefix: str,
    key: str,
    observed_at: datetime,
    exclude: frozenset[str] = frozenset(),
    cursor: CursorUpdate | None = None,
    reason: str,
) -> StatePlan:
    """Snapshot drafts for a state read (see the module docstring).

    ``balances`` are the ledger's current balances for the covered SKUs;
    ``exclude`` names SKUs left out (postings arrived while the state was
    read, so their listed level may or may not include them).
    """
    plan = StatePlan(mapped=len(mapping))
    if not entities and mapping:
        plan.refused = (
            f"stock state listed no variant while the catalog maps {len(mapping)}"
            " to ASTRAL: nothing recorded"
        )
        plan.problems.append(plan.refused)
        return plan
    per_sku: dict[str, dict[tuple[str, StockStatus, str], int]] = {}
    partial: set[str] = set()
    listed: set[str] = set()
    for entity in entities:
        if isinstance(entity, Skipped):
            plan.skipped.append(entity)
            continue
        sku = mapping.get(entity.variant_id)
        if sku is None:
            plan.skipped.append(Skipped(entity.variant_id, UNKNOWN_VARIANT))
            continue
        plan.skipped += entity.skipped
        if sku in exclude:
            listed.add(sku)
            continue
        if entity.skipped:
            partial.add(sku)
        rows: dict[tuple[str, StockStatus, str], int] = {}
        for level in entity.levels:
            row = (location_name(prefix, level.location_id), level.status, level.lot)
            rows[row] = rows.get(row, 0) + level.units
        if sku in listed:
            # The same variant twice in one read: see _lower.
            plan.skipped.append(Skipped(entity.variant_id, DUPLICATE_VARIANT))
            rows = _lower(per_sku[sku], rows)
        listed.add(sku)
        per_sku[sku] = rows
    # Only a fully readable entity speaks for the balances it omits.
    described = set(per_sku) - partial
    levels: dict[str, dict[tuple[StockStatus, str, str], int]] = {}
    for sku, rows in per_sku.items():
        for (location, status, lot), units in rows.items():
            levels.setdefault(location, {})[(status, sku, lot)] = units
    plan.covered = len(listed)
    for account, quantity in balances.items():
        if (
            account.sku in described
            and account.status is not StockStatus.VOID
            and account.location.startswith(f"{prefix}:")
            and quantity != 0
        ):
            levels.setdefault(account.location, {}).setdefault(
                (account.status, account.sku, account.lot), 0
            )
    plan.differences = sum(
        1
        for location, rows in levels.items()
        for (status, sku, lot), level in rows.items()
        if balances.get(Account(location, status, sku, lot), 0) != level
    )
    if plan.covered < plan.mapped:
        missing = sorted(set(mapping.values()) - listed)
        more = f" and {len(missing) - _EXAMPLES} more" if len(missing) > _EXAMPLES else ""
        plan.problems.append(
            f"stock state listed {plan.covered} of {plan.mapped} mapped variants; the others"
            f" keep their last recorded balances: {', '.join(missing[:_EXAMPLES])}{more}"
        )
    locations = sorted(location for location, rows in levels.items() if rows)
    for index, location in enumerate(locations):
        last = index == len(locations) - 1
        plan.snapshots.append(
            SnapshotDraft(
                source=source,
                key=f"{key}:{location}",
                observed_at=observed_at,
                location=location,
                levels=levels[location],
                complete=False,
                metadata={"reason": reason, "read": key, "variants": str(plan.covered)},
                cursor=cursor if last else None,
            )
        )
    if not plan.snapshots and cursor is not None:
        plan.cursor_only = TransactionDraft(
            kind=TransactionKind.CURSOR,
            source=source,
            key=f"{key}:cursor",
            observed_at=observed_at,
            metadata={"reason": reason},
            cursor=cursor,
        )
    return plan
