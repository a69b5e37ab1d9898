"""Time one push round's reads of the outbox queue: the next rows in planner order, the figures.

Run by hand (not in CI)::

    .venv/bin/python bench/outbox_queue.py [--variants 150000 --pending 120000 --take 500]

It fills a real ledger file through the ledger's own writes: ``--variants``
values published and acknowledged, then ``--pending`` of them changed (a
quarter to zero, a quarter lower, half higher) plus a few never acknowledged.
Then it times, as CPU and wall time (best and median of ``--repeat`` runs):

- ``next_pending(take)``: the next rows in planner order, off the
  ``outbox_queue`` index; also with the increases left out and ``take`` SKUs
  skipped (a second batch in the same round);
- ``pending_figures``: the interlock's counts over every pending row, without
  and with a confirmation time;
- for comparison, what a round did before: the whole queue read into rows
  (``pending()``) and sorted in planner order (``syncd.engine.plan.order_key``),
  and read again to count the interlock's figures (``syncd.safety``).

Results are printed as a table; nothing is asserted (the unit tests check that
the queries use the index, ``tests/unit/ledger/test_outbox_queue.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from syncd.engine.plan import order_key
from syncd.ledger.store import Ledger
from syncd.model import Desired, Explanation, PushedValue
from syncd.safety import is_change, is_zeroing

CHANNEL = "ankorstore"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _desired(sku: str, quantity: int) -> Desired:
    explanation = Explanation(
        channel=CHANNEL,
        sku=sku,
        inputs={"activeants/available": quantity},
        steps=(),
        result=quantity,
    )
    return Desired(CHANNEL, sku, quantity, explanation)


async def fill(ledger: Ledger, variants: int, pending: int, seed: int) -> dict[str, float]:
    """Publish, acknowledge, then change ``pending`` values; returns the write times."""
    rng = random.Random(seed)
    skus = [f"SKU-{i:07d}" for i in range(variants)]
    first = {sku: rng.randint(1, 40) for sku in skus}
    times: dict[str, float] = {}
    start = time.perf_counter()
    await ledger.set_desired([_desired(sku, q) for sku, q in first.items()], T0)
    times["publish"] = time.perf_counter() - start
    start = time.perf_counter()
    await ledger.mark_acknowledged(
        CHANNEL, [PushedValue(sku, 1, q) for sku, q in first.items()], "r", None, T0
    )
    times["acknowledge"] = time.perf_counter() - start
    unknown = max(1, pending // 50)
    changed = rng.sample(skus, pending - unknown)
    rows = []
    for n, sku in enumerate(changed):
        old = first[sku]
        kind = n % 4
        quantity = 0 if kind == 0 else (max(0, old - 1) if kind == 1 else old + rng.randint(1, 9))
        if quantity == old:
            quantity = old + 1
        rows.append(_desired(sku, quantity))
    rows += [_desired(f"NEW-{i:07d}", rng.randint(0, 9)) for i in range(unknown)]
    # Spread over an hour of recomputes, so "oldest first" has work to do.
    rng.shuffle(rows)
    start = time.perf_counter()
    step = max(1, len(rows) // 60)
    for minute, begin in enumerate(range(0, len(rows), step)):
        await ledger.set_desired(rows[begin : begin + step], T0 + timedelta(minutes=1 + minute))
    times["change"] = time.perf_counter() - start
    return times


async def measure(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float, float]:
    """(best CPU s, median CPU s, median wall s) of ``repeat`` runs."""
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        await fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), statistics.median(cpu), statistics.median(wall)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with await Ledger.open(Path(tmp) / "ledger.sqlite") as ledger:
            writes = await fill(ledger, args.variants, args.pending, args.seed)
            figures = await ledger.pending_figures(CHANNEL, confirmed_until=None)
            first = await ledger.next_pending(CHANNEL, args.take)
            skip = {row.sku for row in first}
            confirmed = T0 + timedelta(minutes=30)

            async def old_round() -> None:
                rows = sorted(await ledger.pending(CHANNEL), key=order_key)[: args.take]
                queue = await ledger.pending(CHANNEL)
                sum(1 for row in queue if is_change(row)) + sum(
                    1 for row in queue if is_zeroing(row)
                )
                assert len(rows) == args.take

            cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                (f"next_pending({args.take})", lambda: ledger.next_pending(CHANNEL, args.take)),
                (
                    f"next_pending({args.take}, increases=False, skip {len(skip)})",
                    lambda: ledger.next_pending(CHANNEL, args.take, increases=False, skip=skip),
                ),
                (
                    "pending_figures(confirmed_until=None)",
                    lambda: ledger.pending_figures(CHANNEL, confirmed_until=None),
                ),
                (
                    "pending_figures(confirmed_until=30 min in)",
                    lambda: ledger.pending_figures(CHANNEL, confirmed_until=confirmed),
                ),
                ("before: pending() sorted, pending() counted", old_round),
            ]
            print(
                f"outbox: {args.variants:,} variants published, {figures.pending:,} pending "
                f"({figures.changes:,} changes, {figures.zeroes:,} zeroes); "
                f"writes: publish {writes['publish']:.2f} s, acknowledge "
                f"{writes['acknowledge']:.2f} s, changes {writes['change']:.2f} s"
            )
            print("| read | best CPU | median CPU | median wall |")
            print("|---|---|---|---|")
            for name, fn in cases:
                repeat = args.repeat if not name.startswith("before") else max(3, args.repeat // 5)
                best, median, wall = await measure(fn, repeat)
                print(
                    f"| {name} | {best * 1000:.1f} ms | {median * 1000:.1f} ms "
                    f"| {wall * 1000:.1f} ms |"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--variants", type=int, default=150_000)
    parser.add_argument("--pending", type=int, default=120_000)
    parser.add_argument("--take", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main(parser.parse_args()))
