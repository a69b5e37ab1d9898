"""Push round cost: CPU of one round sending 500 values while 120 000 are queued.

A round must cost what it sends (issue "Performance", item 1): the planner
reads the next ``budget x 50`` pending rows in planner order through an
index and counts the interlock's figures in SQL, so a deep queue does not
make a round slower. Measured on the real engine and ledger (a SQLite file)
with an in-process channel that acknowledges every update at once and allows
10 requests of 50 per round: what is timed is syncd's own work -- gathering
the facts, planning, marking sent and acknowledged -- with no network.

CPU is the process's user + system time (``time.process_time``; the ledger's
SQLite thread included), the median of several rounds after a warm-up one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import anyio
from _common import Row, failed_row, progress
from _rig import PERMISSIVE, activeants_snapshot

from syncd.channels.base import LiveValue, PushResult
from syncd.channels.updates import PlannedUpdate
from syncd.engine import Engine
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, Variant

NAME = "throughput"
TARGET_CPU_S = 0.1
QUEUED = 120_000
BATCHES = 10
PER_REQUEST = 50
ROUNDS = 5


class InstantChannel:
    """Acknowledges every update at once; ``BATCHES`` requests per round."""

    name = "bench"
    per_request = PER_REQUEST
    adds_own_orders = False
    lowers_on_order = False

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        return PushResult(acknowledged=list(batch), requests=1)

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        return {}

    def requests_available(self) -> int:
        return BATCHES

    async def budget_available(self) -> None:
        if self.requests_available() <= 0:
            # A fixed budget never frees a slot: the pusher's timeout or a wake-up ends the wait.
            await anyio.sleep_forever()

    def pack_sizes(self) -> Mapping[str, int]:
        return _NO_PACKS

    async def aclose(self) -> None:
        return None


_NO_PACKS: Mapping[str, int] = {}


async def measure(queued: int, directory: Path) -> tuple[float, int, int]:
    """(median CPU seconds per round, values sent per round, values still queued)."""
    skus = [f"SKU-{i:06d}" for i in range(queued)]
    catalog = Catalog(variants={sku: Variant(sku=sku) for sku in skus}, bundles={})
    async with await Ledger.open(directory / "ledger.db") as ledger:
        await ledger.record_snapshot(activeants_snapshot("levels", {s: 5 for s in skus}))
        engine = Engine(
            ledger,
            catalog,
            [ChannelRule(channel="bench", locations=("activeants",))],
            {"bench": InstantChannel()},
            policies={"bench": PERMISSIVE},
            feeds=[],
        )
        await engine.recompute(full=True)
        await engine.push_channel("bench", max_rounds=1)  # warm-up: caches, statements
        times: list[float] = []
        sent = 0
        for _ in range(ROUNDS):
            started = time.process_time()
            cycle = await engine.push_channel("bench", max_rounds=1)
            times.append(time.process_time() - started)
            sent = cycle.acknowledged
        left, _ = await ledger.outbox_counts("bench")
        return statistics.median(times), sent, left


async def run(quick: bool) -> list[Row]:
    queued = 6_000 if quick else QUEUED
    label = f"push round: {BATCHES * PER_REQUEST} values sent, {queued:,} queued"
    progress(NAME, label)
    try:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            cpu, sent, left = await measure(queued, Path(tmp))
    except Exception as exc:  # a failure is a row, not a crash of the whole run
        return [failed_row(label, f"{type(exc).__name__}: {exc}")]
    return [
        Row(
            label,
            f"{cpu:.3f} s CPU ({sent} sent; {left:,} still queued after {ROUNDS + 1} rounds)",
            f"< {TARGET_CPU_S} s CPU",
            cpu < TARGET_CPU_S and sent == BATCHES * PER_REQUEST,
            notes=[f"median of {ROUNDS} rounds after a warm-up round, process CPU time"],
            values={"cpu_s": cpu, "sent": sent},
        )
    ]
