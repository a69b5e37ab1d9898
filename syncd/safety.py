"""Safety interlocks: when syncd refuses to publish what it computed.

Pure decisions over plain data; the push planner (:mod:`syncd.engine.plan`)
asks :func:`assess` and turns its verdict into a block or a hold.

What protects the brand here (ARCHITECTURE.md, "Safety interlocks"):

- **Stale sources**: a channel fed by a source that has not succeeded for
  longer than its ``stale_after`` publishes nothing (its numbers could be
  hours old and oversell).
- **Mass zeroing**: a cycle that would take more than ``max_zero_share`` of a
  channel's published variants to zero is held until an operator confirms
  it. One bad read (an empty page, a truncated file, a wrong location
  filter) looks exactly like this, and the damage -- a catalog that shows
  "sold out" on a wholesale marketplace -- is costly and public.
- **Mass change**: likewise when more than ``max_change_share`` would change
  at once.
- Small catalogs (fewer than ``min_catalog_for_share_check`` variants) skip
  the share checks: three variants out of five is not a signal.
- **Increases after a zero** can require two consistent computations before
  they go out, so a one-off glitch that briefly shows stock does not
  advertise goods that are not there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from syncd.model import OutboxRow


@dataclass(frozen=True, slots=True)
class SafetyPolicy:
    max_zero_share: float = 0.2
    max_change_share: float = 0.5
    min_catalog_for_share_check: int = 20
    confirm_increase_after_zero: bool = True
    block_on_stale_source: bool = True


@dataclass(frozen=True, slots=True)
class Assessment:
    hold: bool
    blocked: bool
    """True when nothing may be pushed at all (stale source); not confirmable."""
    reasons: tuple[str, ...]
    zeroes: int
    changes: int
    published: int

    @property
    def ok(self) -> bool:
        return not self.hold and not self.blocked


def _exceeds(count: int, total: int, share: float) -> bool:
    # ``share`` of the catalog is allowed; one more is a hold. Rounding the
    # allowance down keeps a 20% limit on 21 variants at 4, never 5.
    return count > math.floor(total * share + 1e-9)


def is_change(row: OutboxRow) -> bool:
    """A pending row that changes a value the channel confirmed.

    A first publication (nothing acknowledged yet) is not a "change" of a
    known value; a zero is dangerous either way, so zeroes count both.
    """
    return row.acknowledged is not None and row.desired != row.acknowledged


def is_zeroing(row: OutboxRow) -> bool:
    """A pending row that leaves buyers nothing to order where they could order some.

    Judged on what buyers could order: for a channel that subtracts its own
    orders (Ankorstore) ``desired`` also carries those orders' units, and a
    pool emptied by a bad read leaves exactly them.
    """
    return row.sellable == 0 and (row.acknowledged is None or row.acknowledged > row.own_reserved)


def assess(
    *,
    changes: int,
    zeroes: int,
    published: int,
    policy: SafetyPolicy,
    stale_sources: Sequence[str] = (),
    confirmed: bool = False,
) -> Assessment:
    """Decide whether a channel's pending changes may be pushed now.

    ``changes`` and ``zeroes`` count the pending rows not yet covered by an
    operator's confirmation (:func:`is_change`, :func:`is_zeroing`; the
    ledger counts them in SQL); ``published`` is how many variants the
    channel publishes in total. ``confirmed`` is set when an operator
    confirmed the held cycle.
    """
    reasons: list[str] = []
    blocked = False
    if policy.block_on_stale_source and stale_sources:
        blocked = True
        reasons.append("stale source(s): " + ", ".join(sorted(stale_sources)))
    hold = False
    if published >= policy.min_catalog_for_share_check and not confirmed:
        if _exceeds(zeroes, published, policy.max_zero_share):
            hold = True
            reasons.append(
                f"would set {zeroes} of {published} variants to zero "
                f"(limit {policy.max_zero_share:.0%})"
            )
        if _exceeds(changes, published, policy.max_change_share):
            hold = True
            reasons.append(
                f"would change {changes} of {published} variants (limit {policy.max_change_share:.0%})"
            )
    return Assessment(
        hold=hold,
        blocked=blocked,
        reasons=tuple(reasons),
        zeroes=zeroes,
        changes=changes,
        published=published,
    )


def increase_needs_second_read(
    row: OutboxRow, *, policy: SafetyPolicy, consistent_reads: int
) -> bool:
    """True when an increase from zero must wait for another consistent computation."""
    if not policy.confirm_increase_after_zero:
        return False
    shown_nothing = row.acknowledged is not None and row.acknowledged <= row.own_reserved
    return shown_nothing and row.sellable > 0 and consistent_reads < 2
