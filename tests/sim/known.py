"""Final differences the simulation excuses: documented undersells, and reported bugs.

A final mismatch recognised as one of these does not fail its seed (unless
``SYNCD_SIM_STRICT=1``); it is recorded against its (channel, SKU), every
other check still runs, and the batch tests report each one met as a warning
naming the seeds that reproduce it. Only a channel showing *less* than the
oracle is ever excused: an oversell never is.

Every entry here is a documented, accepted behaviour (``accepted=True``,
with the document that says so); a reported bug awaiting its fix would be
listed with ``accepted=False`` and deleted once fixed, so that its seeds fail
if it comes back. There is none at present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnownIssue:
    id: str
    summary: str
    owner: str
    """Where the behaviour is documented (accepted) or where the fix belongs (a bug)."""
    accepted: bool = True


CHANNEL_MOVED = KnownIssue(
    id="channel-lowered-by-its-own-unseen-order",
    summary=(
        "a channel lowered the written field itself for an order syncd never saw open "
        "(fabric: placed then cancelled between two order polls -- fabric lowered its managed "
        "inventory and does not give it back; Ankorstore: placed then shipped from stock "
        "syncd does not track -- Ankorstore lowered stockQuantity), so it shows less than "
        "syncd acknowledged while syncd's value did not move. Excused as a channel showing "
        'less: drift_policy "protect" (the default) and "report" report a lower number and '
        'do not correct it; "overwrite" corrects it once the same drift is seen again after '
        "a fresh order read, so under overwrite it is excused only one poll after the last "
        "event, not after settling. An Ankorstore order placed and cancelled or rejected "
        "between polls needs no excuse any more: Ankorstore gives back what it took"
    ),
    owner='syncd/channels/drift.py (drift_policy: "protect" reports a lower number)',
)

HANDOVER_PENDING = KnownIssue(
    id="handover-not-confirmed-yet",
    summary=(
        "one poll after the last event, a fabric or FashionTrade order the warehouse took "
        "over still reserves: syncd releases it only once the warehouse lookup confirmed the "
        "handover and a later warehouse stock read succeeded (after a restart: once "
        "re-confirmed), so for a poll or two the order counts twice. Excused only one poll "
        "after the last event, and only down to the value with every handed-over order still "
        "reserving; after settling it must be gone"
    ),
    owner="syncd/sources/handover.py (brand-protecting choices: undersell, never oversell)",
)

KNOWN = {issue.id: issue for issue in (CHANNEL_MOVED, HANDOVER_PENDING)}


FIXED = (
    "ankorstore-stale-reserved: the Ankorstore channel added a reservedQuantity read before "
    "the orders syncd had subtracted (fixed; since issue 13 the push reads no "
    "reservedQuantity at all: stockQuantity = sellable + Ankorstore's own open orders the "
    "ledger subtracted)",
    "channel-moved-by-unseen-order, Ankorstore placed-then-cancelled: an order placed and "
    "cancelled between polls left its units on sale (fixed by the same rule: Ankorstore "
    "subtracts an order syncd has not seen, and gives back only that order's units)",
    "activeants-negative-kept: availableStock below zero was skipped and the last positive "
    "level kept (fixed: recorded as 0)",
    "outbox-unconfirmed-revert: a value back to the acknowledged one after an unconfirmed "
    "send was never pushed again (fixed in syncd/ledger/outbox.py)",
    "channel-moved-after-write, for orders syncd saw: an order cancelled or rejected on a "
    "channel while syncd's value stayed put (clamped at 0, rounded to packs) left the "
    "released units on sale (fixed: the engine writes such SKUs again)",
    "incremental-recompute-misses-bundle-reservations: a recompute after an unrelated change "
    "left out orders for another bundle sharing a component (fixed in Engine._inputs_for)",
)
"""Found by this simulation and fixed since; kept as a record, checked like any bug."""


def strict() -> bool:
    """``SYNCD_SIM_STRICT=1``: known issues fail their seeds like any other violation."""
    return os.environ.get("SYNCD_SIM_STRICT", "") not in ("", "0")
