"""The push planner: the one place that decides what happens to a channel's pending values.

Pure (no I/O, no clock), in the manner of vdirsyncer's ``_get_actions``: the
engine gathers a channel's :class:`PushFacts` (:mod:`syncd.engine.facts`),
:func:`plan_push` turns them into actions, and one executor carries them out
and records them (:mod:`syncd.engine.execute`). The daemon's pusher,
`syncd once` and `syncd once --dry-run` all plan through this function, so a
dry run prints exactly the actions a real run would execute.

The decision, in order (ARCHITECTURE.md, "Planner", "Safety interlocks"):

1. a channel fed by a stale source pushes nothing (:class:`Block`): its
   numbers could oversell;
2. a cycle that would zero or change too large a share of the channel is
   held for an operator's confirmation (:class:`Hold`); values an operator
   already confirmed are not counted again (the facts count only the rest);
3. a value outside ``0 .. MAX_UNITS`` is never sent (:class:`Park`): the
   channel boundary is the one place a pushed quantity is validated, against
   the same bound sources check at ingest (:data:`syncd.model.MAX_UNITS`);
4. increases wait (:class:`Wait`) while the channel lowers its figure itself
   on an order and its own order feed is overdue (fabric: an increase
   computed before its newest orders would tell it too much), and an
   increase from nothing shown waits for a second consistent source read
   (``confirm_increase_after_zero``);
5. the rest is sent (:class:`Send`) decreases first, then values the channel
   never confirmed, then increases, oldest first within a class (the order the
   ledger selects them in), in batches of the channel's maximum (Ankorstore:
   50 operations per ``POST /api/v1/operations``, seed 000 L638, L12866), so
   N changes need ceil(N / 50) requests; what the rate budget cannot take
   now is deferred (:class:`Defer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from syncd.channels.updates import Move, PlannedUpdate, classify
from syncd.model import MAX_UNITS, OutboxRow
from syncd.safety import SafetyPolicy, assess, increase_needs_second_read

HOLD_SAMPLE = 20
"""Pending changes quoted in a held cycle's record, for the operator who confirms it."""


@dataclass(frozen=True, slots=True)
class PushFacts:
    """Everything the planner needs to know about one channel, gathered by the engine."""

    channel: str
    candidates: tuple[OutboxRow, ...]
    """Pending rows in the ledger's planner order (class, then oldest first)."""
    pending: int
    """All pending rows of the channel (the candidates may be the first few only)."""
    changes: int
    """Pending rows not covered by a confirmation that change a confirmed value."""
    zeroes: int
    """Pending rows not covered by a confirmation that leave buyers nothing."""
    published: int
    """Variants the channel publishes: the base of the mass-change shares."""
    per_request: int
    budget: int | None
    """Requests the channel may send now; None plans without a limit (a dry run)."""
    stale: tuple[str, ...] = ()
    """The channel's stale source feeds, each with why."""
    orders_overdue: tuple[str, ...] = ()
    """The channel's own order feeds that are overdue (only for a channel that
    lowers its figure itself on an order)."""
    single_read: frozenset[str] = frozenset()
    """SKUs whose current value was computed from one source read only."""
    resends: tuple[OutboxRow, ...] = ()
    """Acknowledged values to write again unchanged (the channel moved its own figure)."""
    open_hold: int | None = None
    """The channel's held cycle still waiting for a confirmation, if any."""
    beyond: int = 0
    """Pending rows behind the candidates, left for a later round (at least 1 when any)."""


@dataclass(frozen=True, slots=True)
class Send:
    """Write one batch: one request's worth of absolute values."""

    updates: tuple[PlannedUpdate, ...]


@dataclass(frozen=True, slots=True)
class Hold:
    """Push nothing; record a held cycle for an operator to confirm (once)."""

    reasons: tuple[str, ...]
    zeroes: int
    changes: int
    published: int
    sample: tuple[str, ...]
    existing: int | None
    """The open hold this cycle is already recorded as; None records a new one."""


@dataclass(frozen=True, slots=True)
class Block:
    """Push nothing, for a reason no confirmation can lift (a stale source)."""

    reasons: tuple[str, ...]
    pending: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Leave these increases for a later round, for ``reason``."""

    skus: tuple[str, ...]
    reason: str
    why: str
    """``orders`` (the channel's own order feed is overdue) or ``second_read``."""
    more: int = 0
    """Further pending increases, behind the rows this round read, that wait too."""

    @property
    def count(self) -> int:
        return len(self.skus) + self.more


@dataclass(frozen=True, slots=True)
class Park:
    """Never send this value; keep it parked with ``reason`` until unparked."""

    sku: str
    seq: int
    quantity: int
    reason: str


@dataclass(frozen=True, slots=True)
class Defer:
    """Values the rate budget cannot take now: the next round sends them."""

    count: int


Action = Send | Hold | Block | Wait | Park | Defer


def order_key(row: OutboxRow) -> tuple[int, datetime, str]:
    """The planner order: class first (decreases first), then oldest first, then SKU.

    The ledger selects pending rows in the same order through an index, so a
    round reads only the rows it sends.
    """
    return (int(classify(row)), row.updated_at, row.sku)


def batches(
    updates: Sequence[PlannedUpdate], per_request: int
) -> tuple[tuple[PlannedUpdate, ...], ...]:
    """Fill each request up to the channel's per-request maximum, in order."""
    if per_request < 1:
        raise ValueError("per_request must be at least 1")
    return tuple(
        tuple(updates[start : start + per_request]) for start in range(0, len(updates), per_request)
    )


def updates_in_order(rows: Sequence[OutboxRow]) -> list[PlannedUpdate]:
    """The rows as updates in planner order (decreases first, then oldest first)."""
    return [
        PlannedUpdate(
            sku=row.sku,
            quantity=row.desired,
            seq=row.seq,
            previous=row.acknowledged,
            move=classify(row),
        )
        for row in sorted(rows, key=order_key)
    ]


def batch_rows(
    rows: Sequence[OutboxRow], per_request: int, max_requests: int | None = None
) -> tuple[tuple[PlannedUpdate, ...], ...]:
    """The send part of a plan, without interlocks: order, batch, keep what the budget allows."""
    planned = batches(updates_in_order(rows), per_request)
    return planned if max_requests is None else planned[: max(0, max_requests)]


def plan_push(facts: PushFacts, policy: SafetyPolicy) -> tuple[Action, ...]:
    """What to do with the channel's pending values now (see the module docstring)."""
    if not facts.candidates and not facts.resends and not facts.beyond:
        return ()
    verdict = assess(
        changes=facts.changes,
        zeroes=facts.zeroes,
        published=facts.published,
        policy=policy,
        stale_sources=facts.stale,
    )
    if verdict.blocked:
        return (Block(reasons=verdict.reasons, pending=facts.pending + len(facts.resends)),)
    if verdict.hold:
        sample = tuple(
            f"{row.sku}: {row.acknowledged} -> {row.desired}"
            for row in facts.candidates[:HOLD_SAMPLE]
        )
        return (
            Hold(
                reasons=verdict.reasons,
                zeroes=verdict.zeroes,
                changes=verdict.changes,
                published=verdict.published,
                sample=sample,
                existing=facts.open_hold,
            ),
        )
    parks: list[Park] = []
    for_orders: list[str] = []
    for_second_read: list[str] = []
    sendable: list[OutboxRow] = []
    for row in facts.candidates:
        if row.acknowledged == row.desired:
            continue
        if not 0 <= row.desired <= MAX_UNITS:
            parks.append(Park(row.sku, row.seq, row.desired, _out_of_bounds(row.desired)))
            continue
        increase = row.acknowledged is None or row.desired > row.acknowledged
        if increase and facts.orders_overdue:
            for_orders.append(row.sku)
        elif row.sku in facts.single_read and increase_needs_second_read(
            row, policy=policy, consistent_reads=1
        ):
            for_second_read.append(row.sku)
        else:
            sendable.append(row)
    planned = {row.sku for row in sendable}
    # A value written again unchanged is planned like a first publication: the
    # channel's figure is not what syncd confirmed any more.
    sendable += [
        replace(row, acknowledged=None)
        for row in facts.resends
        if row.sku not in planned and 0 <= row.desired <= MAX_UNITS
    ]
    all_batches = batches(updates_in_order(sendable), facts.per_request)
    beyond = facts.beyond
    waiting_beyond = 0
    if facts.orders_overdue and facts.candidates and classify(facts.candidates[-1]) >= Move.UNKNOWN:
        # The rows read reached the increases: every row behind them is one too, and waits.
        waiting_beyond, beyond = beyond, 0
    kept = all_batches if facts.budget is None else all_batches[: max(0, facts.budget)]
    actions: list[Action] = [*parks, *(Send(batch) for batch in kept)]
    if for_orders or waiting_beyond:
        actions.append(
            Wait(
                skus=tuple(for_orders),
                reason=(
                    f"{len(for_orders) + waiting_beyond} increase(s) wait for the channel's "
                    f"own orders: order feed overdue: {', '.join(facts.orders_overdue)}"
                ),
                why="orders",
                more=waiting_beyond,
            )
        )
    if for_second_read:
        actions.append(
            Wait(
                skus=tuple(for_second_read),
                reason=(
                    f"{len(for_second_read)} increase(s) from zero wait for a second "
                    "consistent read"
                ),
                why="second_read",
            )
        )
    deferred = sum(len(batch) for batch in all_batches[len(kept) :]) + beyond
    if deferred:
        actions.append(Defer(deferred))
    return tuple(actions)


def _out_of_bounds(quantity: int) -> str:
    if quantity < 0:
        return f"refused: negative quantity {quantity}"
    return f"refused: quantity {quantity} above the largest syncd sends ({MAX_UNITS})"


def describe(action: Action, channel: str) -> dict[str, Any]:
    """One action as plain data: what `syncd once --json` prints, planned or executed."""
    match action:
        case Send(updates):
            return {
                "action": "send",
                "channel": channel,
                "updates": [
                    {
                        "sku": u.sku,
                        "quantity": u.quantity,
                        "previous": u.previous,
                        "move": u.move.name.lower(),
                    }
                    for u in updates
                ],
            }
        case Hold():
            return {"action": "hold", "channel": channel, "reasons": list(action.reasons)}
        case Block():
            return {"action": "block", "channel": channel, "reasons": list(action.reasons)}
        case Wait():
            return {
                "action": "wait",
                "channel": channel,
                "why": action.why,
                "skus": list(action.skus),
                "more": action.more,
            }
        case Park():
            return {
                "action": "park",
                "channel": channel,
                "sku": action.sku,
                "quantity": action.quantity,
                "reason": action.reason,
            }
        case Defer():
            return {"action": "defer", "channel": channel, "count": action.count}


def moved_down(update: PlannedUpdate) -> bool:
    """True for a value that lowers (or may lower) what the channel shows."""
    return update.move < Move.INCREASE
