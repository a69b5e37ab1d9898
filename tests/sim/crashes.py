"""Process "crashes" at chosen points, and the ledger wrapper that stages them.

A crash is a :class:`Crash` raised at a named point. It derives from
``BaseException`` on purpose: syncd catches ``Exception`` where one failing
source or batch must not stop the others (``syncd once``, the engine's push),
and a crash must not be caught there -- a killed process does not get to
record that its push failed. The harness then abandons every object of the
"process" (engine, sources, channels, clients, ledger connection) and builds
fresh ones over the same SQLite file, as a restart would.

Points (ARCHITECTURE.md invariant 3, issue 7 part 1):

- ``fetch_before_commit``: a source fetched a page and dies before recording it;
- ``after_source_commit``: a source's record committed, then the process died;
- ``recompute_before_commit``: desired values computed, not yet in the outbox;
- ``commit_before_push``: desired values committed, the push not yet logged;
- ``sent_before_request``: the push logged as sent, the request never left;
- ``applied_before_ack``: the channel applied the write (its reply may even
  have arrived) but the acknowledgement was never recorded;
- ``after_write_applied`` (staged by the network, :mod:`tests.sim.network`):
  the channel applied the write and the reply never reached syncd.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from syncd.allocation import Value
from syncd.clock import Clock
from syncd.ledger.connection import Database
from syncd.ledger.outbox import PushItem, Reply
from syncd.ledger.store import Ledger
from syncd.model import (
    ChannelRule,
    CursorUpdate,
    OrderObservation,
    SnapshotDraft,
    TransactionDraft,
)

LEDGER_POINTS = (
    "fetch_before_commit",
    "after_source_commit",
    "recompute_before_commit",
    "commit_before_push",
    "sent_before_request",
    "applied_before_ack",
)
NETWORK_POINT = "after_write_applied"
POINTS = (*LEDGER_POINTS, NETWORK_POINT)


class Crash(BaseException):
    """The simulated process died at ``point``."""

    def __init__(self, point: str) -> None:
        super().__init__(f"process crashed at {point}")
        self.point = point


@dataclass(slots=True)
class CrashPlan:
    """At most one armed crash: fires on the ``countdown``-th time ``point`` is reached."""

    point: str | None = None
    countdown: int = 0
    fired: str | None = None

    def arm(self, point: str, countdown: int) -> None:
        if point not in POINTS:
            raise ValueError(f"unknown crash point {point!r}")
        self.point, self.countdown, self.fired = point, max(1, countdown), None

    def disarm(self) -> None:
        self.point, self.countdown = None, 0

    def reach(self, point: str) -> None:
        """Called at every crash point; raises :class:`Crash` when the armed one is due."""
        if point != self.point:
            return
        self.countdown -= 1
        if self.countdown <= 0:
            self.fired = point
            self.disarm()
            raise Crash(point)


class CrashingLedger(Ledger):
    """The real ledger, with crash points staged around its writes."""

    def __init__(self, db: Database, plan: CrashPlan, clock: Clock) -> None:
        super().__init__(db, clock=clock)
        self.plan = plan

    @classmethod
    async def open_with(cls, path: Path, plan: CrashPlan, clock: Clock) -> CrashingLedger:
        return cls(await Database.open(path), plan, clock)

    # --- sources -------------------------------------------------------------

    async def record(self, draft: TransactionDraft) -> bool:
        self.plan.reach("fetch_before_commit")
        recorded = await super().record(draft)
        self.plan.reach("after_source_commit")
        return recorded

    async def record_snapshot(self, draft: SnapshotDraft) -> bool:
        self.plan.reach("fetch_before_commit")
        recorded = await super().record_snapshot(draft)
        self.plan.reach("after_source_commit")
        return recorded

    async def record_orders(
        self,
        source: str,
        key: str,
        observed_at: datetime,
        orders: Sequence[OrderObservation],
        *,
        complete: bool,
        cursor: CursorUpdate | None = None,
        channels: Collection[str] = (),
    ) -> bool:
        self.plan.reach("fetch_before_commit")
        recorded = await super().record_orders(
            source,
            key,
            observed_at,
            orders,
            complete=complete,
            cursor=cursor,
            channels=channels,
        )
        self.plan.reach("after_source_commit")
        return recorded

    # --- engine --------------------------------------------------------------

    async def write_desired(
        self,
        values: Sequence[Value],
        rules: Iterable[ChannelRule],
        txn: int,
        at: datetime,
        *,
        complete: bool = False,
    ) -> int:
        self.plan.reach("recompute_before_commit")
        return await super().write_desired(values, rules, txn, at, complete=complete)

    async def mark_sent(
        self, channel: str, items: Sequence[PushItem], request_id: str | None, at: datetime
    ) -> None:
        self.plan.reach("commit_before_push")
        await super().mark_sent(channel, items, request_id, at)
        self.plan.reach("sent_before_request")

    async def mark_acknowledged(
        self,
        channel: str,
        items: Sequence[PushItem],
        request_id: str | None,
        reply: Reply,
        at: datetime,
    ) -> None:
        self.plan.reach("applied_before_ack")
        await super().mark_acknowledged(channel, items, request_id, reply, at)
