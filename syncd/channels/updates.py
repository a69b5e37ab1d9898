"""What a channel is given to write: one absolute value per SKU, tagged with its priority.

The engine's planner (:mod:`syncd.engine.plan`) decides which values go out
and in which batches; a channel adapter only receives :class:`PlannedUpdate`
items and writes them. The identity of a pushed value, from the planner to
the push log, is ``(channel, sku, seq)``: ``seq`` is the outbox's number for
that desired value, so a reply for a value superseded while it was in flight
acknowledges nothing current.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from syncd.model import OutboxRow


class Move(IntEnum):
    """Push priority classes, lowest value first.

    A decrease sent late can oversell; an increase sent late only delays a
    sale (ARCHITECTURE.md, "Planner"). A value the channel never confirmed may
    be a decrease, so it goes right after the known decreases.
    """

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


def classify(row: OutboxRow) -> Move:
    if row.acknowledged is None:
        return Move.UNKNOWN
    if row.desired < row.acknowledged:
        return Move.TO_ZERO if row.desired == 0 else Move.DECREASE
    return Move.INCREASE
