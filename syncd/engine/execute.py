"""Carrying out the planner's actions and recording every one of them.

The only code that writes to a channel or records a push decision in the
ledger: a :class:`~syncd.engine.plan.Send` is marked sent before the request
(so a crash mid-request leaves a record to resend from), then acknowledged,
parked or failed per item as the channel answered; a
:class:`~syncd.engine.plan.Hold` is recorded once for an operator to
confirm; a :class:`~syncd.engine.plan.Park` keeps a value the channel could
never take out of every later round. Every reply is recorded: acknowledged
only when the channel confirmed it, parked with the reason when the channel
refuses a value resending cannot fix, failed (retried next round) otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from syncd.channels.base import Channel, PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.engine.plan import Action, Block, Defer, Hold, Park, Send, Wait, moved_down
from syncd.ledger.store import Ledger

log = structlog.get_logger("syncd.engine")


@dataclass(slots=True)
class ChannelCycle:
    """What one push of one channel did (logs, status, `syncd once`)."""

    channel: str
    pending: int = 0
    planned: int = 0
    acknowledged: int = 0
    parked: int = 0
    failed: int = 0
    deferred: int = 0
    waiting: int = 0
    """Increases held back for a second read or an overdue order feed."""
    waiting_reasons: list[str] = field(default_factory=list)
    requests: int = 0
    held_id: int | None = None
    blocked: str | None = None
    reasons: list[str] = field(default_factory=list)
    remaining: int | None = None
    """Rows still pending once the push ended (None when it sent nothing).

    Counted from the ledger, not from the replies: a reply for a value
    superseded while it was in flight acknowledges nothing current."""
    actions: list[Action] = field(default_factory=list)
    """Every action planned (a dry run) or executed, in order."""

    @property
    def settled(self) -> bool:
        """True when nothing is left to push and nothing is blocked or held."""
        return (
            self.blocked is None
            and self.held_id is None
            and self.failed == 0
            and self.deferred == 0
            and self.waiting == 0
            and self.pending == self.acknowledged + self.parked
            and not self.remaining
        )


class Executor:
    """Executes one channel's actions against the channel and the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        now: Callable[[], datetime],
        stamp: Callable[[], Awaitable[datetime]],
        settled: Callable[[str, Sequence[str]], None],
    ) -> None:
        self.ledger = ledger
        self._now = now
        self._stamp = stamp
        self._settled = settled
        """Told which SKUs' values reached the channel (acknowledged or parked)."""

    async def run(
        self, channel: str, sender: Channel, actions: Sequence[Action], cycle: ChannelCycle
    ) -> None:
        """Carry out one round's actions, adding what happened to ``cycle``."""
        cycle.waiting = 0
        cycle.waiting_reasons = []
        cycle.deferred = 0
        for action in actions:
            cycle.actions.append(action)
            match action:
                case Send(updates):
                    result = await self._send(channel, sender, updates)
                    self._settled(
                        channel,
                        [u.sku for u in result.acknowledged] + [u.sku for u, _ in result.parked],
                    )
                    cycle.planned += len(updates)
                    cycle.requests += result.requests
                    cycle.acknowledged += len(result.acknowledged)
                    cycle.parked += len(result.parked)
                    cycle.failed += len(result.failed)
                case Hold():
                    cycle.reasons = list(action.reasons)
                    cycle.held_id = action.existing
                    if cycle.held_id is None:
                        cycle.held_id = await self._record_hold(channel, action)
                case Block():
                    cycle.reasons = list(action.reasons)
                    cycle.blocked = "; ".join(action.reasons)
                    log.warning(
                        "push.blocked",
                        channel=channel,
                        reasons=cycle.reasons,
                        pending=action.pending,
                    )
                case Wait():
                    cycle.waiting += action.count
                    cycle.waiting_reasons.append(action.reason)
                    if action.why == "orders":
                        log.warning(
                            "push.increases_wait_for_orders",
                            channel=channel,
                            increases=action.count,
                            reason=action.reason,
                        )
                case Park():
                    await self.ledger.mark_parked(
                        channel, action.sku, action.seq, action.reason, self._now()
                    )
                    self._settled(channel, [action.sku])
                    cycle.parked += 1
                    log.warning(
                        "push.parked", channel=channel, sku=action.sku, reason=action.reason
                    )
                case Defer(count):
                    cycle.deferred = count

    async def _record_hold(self, channel: str, hold: Hold) -> int:
        payload = {
            "zeroes": hold.zeroes,
            "changes": hold.changes,
            "published": hold.published,
            "sample": list(hold.sample),
        }
        hold_id = await self.ledger.hold_cycle(
            channel, "; ".join(hold.reasons), payload, await self._stamp()
        )
        log.warning("push.held", channel=channel, hold_id=hold_id, reasons=list(hold.reasons))
        return hold_id

    async def _send(
        self, channel: str, sender: Channel, batch: Sequence[PlannedUpdate]
    ) -> PushResult:
        items = [(u.sku, u.seq, u.quantity) for u in batch]
        await self.ledger.mark_sent(channel, items, None, self._now())
        try:
            result = await sender.push(batch)
        except Exception as exc:  # one failing batch never stops the channel
            log.exception("push.failed", channel=channel, updates=len(batch))
            await self.ledger.mark_failed(
                channel, items, None, f"{type(exc).__name__}: {exc}", self._now()
            )
            return PushResult(failed=[(u, str(exc)) for u in batch], requests=1)
        request_id = ",".join(result.request_ids) or None
        now = self._now()
        if result.acknowledged:
            await self.ledger.mark_acknowledged(
                channel,
                [(u.sku, u.seq, u.quantity) for u in result.acknowledged],
                request_id,
                result.reply or None,
                now,
            )
        for update, reason in result.parked:
            await self.ledger.mark_parked(channel, update.sku, update.seq, reason, now)
            log.warning("push.parked", channel=channel, sku=update.sku, reason=reason)
        if result.failed:
            await self.ledger.mark_failed(
                channel,
                [(u.sku, u.seq, u.quantity) for u, _ in result.failed],
                request_id,
                "; ".join(sorted({reason for _, reason in result.failed}))[:500],
                now,
            )
        log.info(
            "push.sent",
            channel=channel,
            variants=len(batch),
            decreases=sum(1 for u in batch if moved_down(u)),
            acknowledged=len(result.acknowledged),
            parked=len(result.parked),
            failed=len(result.failed),
            request_id=request_id,
        )
        return result
