"""Fakes shared by the daemon unit tests: scripted sources, a recording channel, an assembly.

The engine and the ledger are real (a SQLite file in tmp_path): the fakes
stand in only for the remote APIs, so what the tests see is what the daemon
would do with them.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from syncd.assembly import Assembly, feed_infos
from syncd.channels.base import LiveValue, PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.config import Config
from syncd.engine import Engine
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, SnapshotDraft, StockStatus, Variant, now_utc
from syncd.safety import SafetyPolicy
from syncd.sources.base import PollResult
from syncd.wiring import ApiClients

SKUS = tuple(f"S{i:02d}" for i in range(30))


def catalog() -> Catalog:
    return Catalog(variants={sku: Variant(sku=sku) for sku in SKUS})


class FakeSource:
    """Records a snapshot of ``levels`` at ``location`` each poll; can fail on demand.

    ``fail`` > 0 makes that many polls raise; ``pages`` > 1 reports
    ``caught_up=False`` until the last page. ``partial_error`` makes each
    poll record, then return with that error (an order listing that failed
    part-way) until it is set back to None.
    """

    _keys = itertools.count(1)

    def __init__(
        self,
        name: str = "activeants",
        *,
        location: str = "activeants",
        levels: dict[str, int] | None = None,
        poll_interval: float = 0.05,
        stale_after: float = 600.0,
        fail: int = 0,
        always_fail: bool = False,
        pages: int = 1,
        delay: float = 0.0,
    ) -> None:
        self.name = name
        self.locations: tuple[str, ...] = (location,)
        self.location = location
        self.levels = dict(levels if levels is not None else dict.fromkeys(SKUS, 10))
        self.poll_interval = poll_interval
        self.stale_after = stale_after
        self.fail = fail
        self.always_fail = always_fail
        self.pages = pages
        self.delay = delay
        self.poll_times: list[float] = []
        self.closed = False
        self._page = 0
        self.record = True
        self.partial_error: str | None = None

    async def poll(self, ledger: Ledger) -> PollResult:
        self.poll_times.append(anyio.current_time())
        if self.delay:
            await anyio.sleep(self.delay)
        if self.always_fail or self.fail > 0:
            self.fail -= 1
            raise RuntimeError(f"{self.name} answered 503")
        self._page += 1
        caught_up = self._page % self.pages == 0
        recorded = 0
        at = now_utc()
        if self.record:
            changed = await ledger.record_snapshot(
                SnapshotDraft(
                    source=self.name,
                    key=f"{self.name}-{next(self._keys)}",
                    observed_at=at,
                    location=self.location,
                    levels={(StockStatus.AVAILABLE, sku, ""): q for sku, q in self.levels.items()},
                )
            )
            recorded = int(changed)
        if self.partial_error is not None:
            await ledger.mark_feed(self.name, error=self.partial_error)
            return PollResult(
                feed=self.name, recorded=recorded, caught_up=caught_up, error=self.partial_error
            )
        await ledger.mark_feed(self.name, success_at=at)
        return PollResult(feed=self.name, recorded=recorded, caught_up=caught_up)

    async def aclose(self) -> None:
        self.closed = True


class FakeChannel:
    """Shows what it is sent; can refuse SKUs, fail, be slow, or drift."""

    def __init__(self, name: str = "fabric", *, per_request: int = 50) -> None:
        self.name = name
        self.per_request = per_request
        self.shown: dict[str, int] = {}
        self.batches: list[list[PlannedUpdate]] = []
        self.refuse: dict[str, str] = {}
        self.raise_on_push = False
        self.push_delay = 0.0
        self.budget = 1_000
        self.packs: Mapping[str, int] = {}
        self.adds_own_orders = False
        self.lowers_on_order = name == "fabric"
        self.closed = False
        self.pushes_started = 0
        self.pushes_finished = 0
        self.reads = 0
        self.read_error: Exception | None = None

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        self.pushes_started += 1
        if self.push_delay:
            await anyio.sleep(self.push_delay)
        self.batches.append(list(batch))
        if self.raise_on_push:
            raise RuntimeError(f"{self.name} is down")
        result = PushResult(requests=1, request_ids=[f"{self.name}-{len(self.batches)}"])
        for update in batch:
            if update.sku in self.refuse:
                result.parked.append((update, self.refuse[update.sku]))
            else:
                self.shown[update.sku] = update.quantity
                result.acknowledged.append(update)
        self.pushes_finished += 1
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        self.reads += 1
        if self.read_error is not None:
            raise self.read_error
        wanted = self.shown if skus is None else {s: self.shown[s] for s in skus if s in self.shown}
        return {sku: LiveValue(sku, qty, written=qty) for sku, qty in wanted.items()}

    def requests_available(self) -> int:
        return self.budget

    async def budget_available(self) -> None:
        if self.requests_available() <= 0:
            # A fixed budget never frees a slot: the pusher's timeout or a wake-up ends the wait.
            await anyio.sleep_forever()

    def pack_sizes(self) -> Mapping[str, int]:
        return self.packs

    async def aclose(self) -> None:
        self.closed = True


def make_assembly(
    ledger: Ledger,
    sources: Sequence[Any],
    channels: Sequence[FakeChannel],
    *,
    config: Config | None = None,
    policy: SafetyPolicy | None = None,
    now: Callable[[], datetime] = now_utc,
) -> Assembly:
    policies = {c.name: policy or SafetyPolicy(confirm_increase_after_zero=False) for c in channels}
    engine = Engine(
        ledger,
        catalog(),
        [
            ChannelRule(channel=c.name, locations=("activeants",), pack_rounding=False)
            for c in channels
        ],
        {c.name: c for c in channels},
        policies=policies,
        feeds=feed_infos(list(sources)),
        now=now,
    )
    return Assembly(
        config=config or Config(),
        ledger=ledger,
        clients=ApiClients(),
        sources=list(sources),
        channels={c.name: c for c in channels},
        engine=engine,
        clock=ledger.clock,
        policies=policies,
    )


T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def wait_for(
    predicate: Callable[[], bool], *, timeout: float = 60.0, step: float = 0.01
) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds.

    The deadline is generous on purpose: a passing test returns as soon as the
    condition holds, and a loaded CI machine may need many times longer than
    an idle one to get there.
    """
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(step)


class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def saw(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for line in self.lines())

    def lines(self) -> list[str]:
        return [line for m in self.drain() for line in m.split("\n")]

    def close(self) -> None:
        self.sock.close()
