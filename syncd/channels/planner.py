"""The push planner: which outbox rows go out next, in what order, in which batches.

Pure: no I/O, no clock. The pusher asks the ledger for pending rows (the
outbox already keeps only the latest desired value per channel x SKU, so a
superseded value cannot be planned), calls :func:`plan`, and sends the
batches in order.

Ordering protects the brand: **decreases go out before increases**
(ARCHITECTURE.md, "Planner"). A decrease sent late can oversell; an increase
sent late only delays a sale. Rows whose channel value is unknown (never
acknowledged) are treated as possible decreases and go right after the known
decreases. Within a class the largest move goes first, then SKU order, so a
plan is deterministic.

Batching fills each request up to the channel's per-request maximum
(Ankorstore: 50 operations per ``POST /api/v1/operations``, seed 000 L638,
L12866), so N changes need exactly ceil(N / 50) requests -- the physical
minimum the benchmarks compare against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from syncd.model import OutboxRow


class Move(IntEnum):
    """Push priority classes, lowest value first."""

    TO_ZERO = 0
    DECREASE = 1
    UNKNOWN = 2
    INCREASE = 3


@dataclass(frozen=True, slots=True)
class PlannedUpdate:
    """One SKU's absolute value to send, tagged with the outbox seq it came from."""

    sku: str
    quantity: int
    seq: int
    previous: int | None
    move: Move


@dataclass(frozen=True, slots=True)
class Plan:
    batches: tuple[tuple[PlannedUpdate, ...], ...]
    deferred: int
    """Rows left for a later round because the request budget ran out."""

    @property
    def updates(self) -> int:
        return sum(len(batch) for batch in self.batches)


def classify(row: OutboxRow) -> Move:
    if row.acknowledged is None:
        return Move.UNKNOWN
    if row.desired < row.acknowledged:
        return Move.TO_ZERO if row.desired == 0 else Move.DECREASE
    return Move.INCREASE


def _order_key(update: PlannedUpdate) -> tuple[int, int, str]:
    magnitude = (
        abs(update.quantity - update.previous) if update.previous is not None else update.quantity
    )
    return (int(update.move), -magnitude, update.sku)


def plan(rows: Sequence[OutboxRow], *, per_request: int, max_requests: int | None = None) -> Plan:
    """Order and batch the rows that need pushing.

    Rows whose desired value equals the acknowledged one are skipped (nothing
    to do); a negative desired value is refused outright -- it would be a bug
    upstream, and nothing negative is ever pushed.
    """
    if per_request < 1:
        raise ValueError("per_request must be at least 1")
    updates: list[PlannedUpdate] = []
    for row in rows:
        if row.desired < 0:
            raise ValueError(f"refusing to plan a negative quantity for {row.channel}/{row.sku}")
        if row.acknowledged is not None and row.desired == row.acknowledged:
            continue
        updates.append(
            PlannedUpdate(
                sku=row.sku,
                quantity=row.desired,
                seq=row.seq,
                previous=row.acknowledged,
                move=classify(row),
            )
        )
    updates.sort(key=_order_key)
    batches = tuple(
        tuple(updates[start : start + per_request]) for start in range(0, len(updates), per_request)
    )
    if max_requests is not None:
        kept = batches[: max(0, max_requests)]
        deferred = sum(len(batch) for batch in batches[len(kept) :])
        return Plan(batches=kept, deferred=deferred)
    return Plan(batches=batches, deferred=0)
