"""What an Active Ants bulk read becomes in the ledger. Pure: no I/O, no clock.

Active Ants gives absolute levels, never movements, so every read is a
`SnapshotDraft` on the configured location: the ledger posts each difference
against the location's ``void`` account (an adjustment), which is also what
makes a re-read, a replay or an overlapping ``from`` window harmless (the
window is inclusive, brief seed-activeants G7).

Decisions recorded here:

* **Only the configured stock field is a balance.** It is booked as the
  ``available`` status, not split by lot: the lot list sums to *physical*
  stock (seed 001 L2914, G3), so per-lot available figures would be
  invented. The lot numbers, best-before dates and quantities are kept in
  the transaction's ``lots`` metadata (JSON ``{sku: [[lot, tht, qty]]}``),
  where `syncd explain` shows them.
* **A full read may zero only what it covered.** It is a complete snapshot
  only when it lists every SKU the catalog maps to Active Ants. One that
  lists fewer is recorded as a partial snapshot of what it did list (the
  rest keep their levels) and reported; one with no usable product at all
  records nothing (an empty read never becomes a mass zeroing).
* **A product listed twice in one read records the lower figure.** The
  seed documents a list of products, each with "the product's SKU" (seed
  001 L2895-2900), "a unique value" per product (L2236), and a mutation
  window ``from <= t < to`` (L2888-2893); a second entry for the same SKU
  in one response -- a product mutated twice inside the ``from``
  window, an overlap at a page boundary, or two Active Ants SKUs mapped to
  one brand SKU -- is not a second stock location, and which copy is newer
  is not documented. Taking the first could publish the larger, outdated
  figure (an oversell); the lower one can only undersell until the next
  read lists it once. The repeat is reported (``source.item_skipped``) and
  counted in `syncd status` like any skipped item.
* **An incremental read that lists nothing records nothing**: its ``to``
  is not committed, so the next read simply asks from the same ``from``
  again -- the window ``from <= t < to`` grows, nothing is missed, and an
  idle feed adds no rows to the ledger. Its ``to`` still goes into the
  feed's ``extra`` as ``checked_to`` for freshness.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from syncd.model import CursorUpdate, SnapshotDraft, StockStatus
from syncd.sources.activeants_parse import BulkRead, ProductStock
from syncd.sources.problems import Skipped

UNKNOWN_SKU = "unknown SKU (no catalog variant has this activeants_sku)"
_EXAMPLES = 5


@dataclass(slots=True)
class BulkPlan:
    """The draft to record (if any) and everything to report about the read."""

    draft: SnapshotDraft | None
    full: bool
    complete: bool = False
    refused: str | None = None
    """Why a full read was not recorded at all (the feed is marked failing)."""
    covered: int = 0
    mapped: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def plan_bulk(
    read: BulkRead,
    *,
    full: bool,
    mapping: Mapping[str, str],
    source: str,
    location: str,
    stock_field: str,
    observed_at: datetime,
) -> BulkPlan:
    """Turn a parsed read into a snapshot draft following the rules above.

    ``mapping`` is Active Ants SKU -> brand SKU (``Variant.activeants_sku``).
    """
    skipped = list(read.skipped)
    chosen: dict[str, ProductStock] = {}
    for product in read.products:
        sku = mapping.get(product.aa_sku)
        if sku is None:
            skipped.append(Skipped(product.aa_sku, UNKNOWN_SKU))
        elif sku in chosen:
            kept = min(chosen[sku], product, key=lambda p: p.quantity)
            skipped.append(
                Skipped(
                    product.aa_sku,
                    f"listed twice in one read ({chosen[sku].quantity} and {product.quantity}):"
                    f" the lower, {kept.quantity}, recorded",
                )
            )
            chosen[sku] = kept
        else:
            chosen[sku] = product
    plan = BulkPlan(
        draft=None, full=full, covered=len(chosen), mapped=len(mapping), skipped=skipped
    )
    if not full and read.listed == 0:
        return plan
    if full and not chosen and mapping:
        plan.refused = (
            f"full read listed {read.listed} products, none usable, while the catalog maps"
            f" {len(mapping)} SKUs to Active Ants: nothing recorded"
        )
        plan.problems.append(plan.refused)
        return plan
    if full:
        missing = sorted(set(mapping.values()) - set(chosen))
        plan.complete = not missing
        if missing:
            more = f" and {len(missing) - _EXAMPLES} more" if len(missing) > _EXAMPLES else ""
            plan.problems.append(
                f"full read covered {len(chosen)} of {len(mapping)} mapped SKUs; the others"
                f" keep their last recorded level: {', '.join(missing[:_EXAMPLES])}{more}"
            )
    mode = "full" if full else "incremental"
    plan.draft = SnapshotDraft(
        source=source,
        key=f"bulk:{mode}:{read.to}",
        observed_at=observed_at,
        location=location,
        levels={(StockStatus.AVAILABLE, sku, ""): p.quantity for sku, p in chosen.items()},
        complete=plan.complete,
        metadata=_metadata(read, chosen, mode=mode, stock_field=stock_field),
        cursor=CursorUpdate(feed=source, value=read.to),
    )
    return plan


def _metadata(
    read: BulkRead, chosen: Mapping[str, ProductStock], *, mode: str, stock_field: str
) -> dict[str, str]:
    metadata = {
        "read": mode,
        "from": read.period_from or "",
        "to": read.to,
        "stock_field": stock_field,
        "listed": str(read.listed),
    }
    lots = {
        sku: [[lot.number, lot.best_before or "", lot.quantity] for lot in product.lots]
        for sku, product in sorted(chosen.items())
        if product.lots
    }
    if lots:
        metadata["lots"] = json.dumps(lots, separators=(",", ":"), sort_keys=True)
    return metadata
