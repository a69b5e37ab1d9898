"""Scale: full recompute, steady-state cost and peak RSS at 1 000 / 10 000 / 100 000 variants.

Each size is measured in a fresh process (``python bench/scale.py --child
DIR``) so its peak RSS (``ru_maxrss``) is its own. The parent prepares, per
size, what a running daemon would have on disk: a sandbox catalog with 10%
bundles (some nested), the config that describes it (both channels), and a
ledger holding Active Ants levels, ASTRAL lots in units and open orders.

The child loads the config like the daemon does, then measures, in wall
and CPU seconds (CPU includes SQLite's thread):

- *separately*, on one copy of the ledger, channel by channel as the engine
  does: reading the pools and open reservations (``Ledger.allocation_inputs``),
  ``compute_channel`` over the whole catalog (pure), and
  ``Ledger.write_desired`` of the result into an empty outbox;
- *together*, on a second copy: ``Engine.recompute(full=True)`` on a first
  start (empty outbox), then again on a restart (same values), then the
  steady state: an incremental pass after 1% of the Active Ants levels
  changed, and a pass with nothing changed (what an idle engine costs).

The target is on the first-start full recompute at 100 000 variants
(under 2 s) and peak RSS (under 200 MB); linear growth is judged on the
same full recompute: each 10x step may cost at most 10^1.1 = 12.6x.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from _common import Row, progress, quiet_logs

from syncd.allocation import Value, compute_channel
from syncd.bundles import CatalogIndex, catalog_index
from syncd.config import load_config
from syncd.engine import Engine
from syncd.ledger.store import Ledger
from syncd.model import (
    ChannelRule,
    OrderObservation,
    SnapshotDraft,
    StockStatus,
)
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.world import SandboxWorld

NAME = "scale"
MANAGES_PROCESSES = True
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (300, 1_000, 3_000)
TARGET_SECONDS = 2.0
TARGET_RSS_MB = 200.0
CHILD_TIMEOUT_S = 600
_NOWHERE = "http://127.0.0.1:9"

T = TypeVar("T")


# --- parent: prepare a size on disk ---------------------------------------------------


def _snapshots(catalog: SandboxCatalog) -> list[SnapshotDraft]:
    now = datetime.now(UTC)
    activeants = {
        (StockStatus.AVAILABLE, v.sku, ""): v.activeants_stock
        for v in catalog.variants
        if v.at_activeants
    }
    astral: dict[tuple[StockStatus, str, str], int] = {}
    for v in catalog.variants:
        if not v.at_astral:
            continue
        units = v.astral_batches * v.astral_unit_multiplier
        lots = [lot.number for lot in v.lots] or [""]
        share, rest = divmod(units, len(lots))
        for position, lot in enumerate(lots):
            astral[StockStatus.AVAILABLE, v.sku, lot] = share + (rest if position == 0 else 0)
    return [
        SnapshotDraft("activeants", "seed", now, "activeants", activeants, complete=True),
        SnapshotDraft(
            "astral", "seed", now, f"astral:{catalog.astral_location_id}", astral, complete=True
        ),
    ]


def _orders(catalog: SandboxCatalog, seed: int = 3) -> list[OrderObservation]:
    """Open orders on about 2% of the variants (reservations the allocation subtracts)."""
    rng = random.Random(seed)  # a reproducible workload
    now = datetime.now(UTC)
    orders = []
    for index, variant in enumerate(catalog.variants):
        if rng.random() < 0.02:
            orders.append(
                OrderObservation(
                    channel=rng.choice(("ankorstore", "fabric")),
                    order_ref=f"O{index}",
                    status="confirmed",
                    observed_at=now,
                    open_lines={variant.sku: rng.randint(1, 4)},
                    location="activeants",
                )
            )
    return orders


async def _seed_ledger(path: Path, catalog: SandboxCatalog) -> None:
    async with await Ledger.open(path) as ledger:
        for draft in _snapshots(catalog):
            await ledger.record_snapshot(draft)
        await ledger.record_orders(
            "orders", "seed", datetime.now(UTC), _orders(catalog), complete=False
        )


def prepare(size: int, directory: Path) -> Path:
    catalog = generate_catalog(size, seed=17, bundle_share=0.1)
    # ``write_config`` needs a world for its credentials; the simulators'
    # own state is never used here (nothing in the child talks HTTP), so a
    # one-variant world carries the large catalog instead of building
    # simulators for all of it.
    world = SandboxWorld.create(variants=1)
    world.catalog = catalog
    world.urls = dict.fromkeys(("ankorstore", "activeants", "fabric", "fashiontrade"), _NOWHERE)
    config = world.write_config(directory)
    anyio.run(_seed_ledger, directory / "seed.db", catalog)
    return config


# --- child: measure ---------------------------------------------------------------------


async def _timed(step: Callable[[], Awaitable[T]]) -> tuple[T, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    value = await step()
    return value, {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _separately(
    ledger: Ledger, index: CatalogIndex, rules: list[ChannelRule]
) -> dict[str, Any]:
    """The three steps of a full recompute, timed one by one (their data dies on return)."""
    out: dict[str, Any] = {}

    steps = ("read", "allocate", "set_desired")
    for step in steps:
        out[step] = {"wall": 0.0, "cpu": 0.0}
    out["desired"] = 0
    for rule in rules:  # one channel at a time, as the engine does

        async def read(rule: ChannelRule = rule) -> Any:
            return await ledger.allocation_inputs(rule.locations)

        (txn, pools, held), reading = await _timed(read)

        async def allocate(rule: ChannelRule = rule, pools: Any = pools, held: Any = held) -> Any:
            return compute_channel(pools, held, index, rule)

        values, spent = await _timed(allocate)
        out["desired"] += len(values)
        del pools, held

        async def write(
            rule: ChannelRule = rule, values: list[Value] = values, txn: int = txn
        ) -> int:
            return await ledger.write_desired(values, [rule], txn, datetime.now(UTC), complete=True)

        _, written = await _timed(write)
        for step, times in zip(steps, (reading, spent, written), strict=True):
            out[step] = {k: out[step][k] + times[k] for k in ("wall", "cpu")}
        del values
    return out


async def _child(directory: Path) -> dict[str, Any]:
    quiet_logs(directory / "child.log")
    out: dict[str, Any] = {}

    async def load() -> Any:
        return load_config(directory / "syncd.toml")

    config, out["config_load"] = await _timed(load)
    catalog = config.catalog_model()
    rules = config.channel_rules()
    out["skus"] = len(catalog.variants)
    out["rss_after_config_mb"] = _rss_mb()
    shutil.copy(directory / "seed.db", directory / "a.db")
    shutil.copy(directory / "seed.db", directory / "b.db")

    async with await Ledger.open(directory / "a.db") as ledger:
        out |= await _separately(ledger, catalog_index(catalog), rules)

    async with await Ledger.open(directory / "b.db") as ledger:
        engine = Engine(ledger, catalog, rules, {}, policies={}, feeds=[])
        _, out["full_first_start"] = await _timed(partial(engine.recompute, full=True))
        _, out["full_restart"] = await _timed(partial(engine.recompute, full=True))
        singles = [s for s in catalog.variants if s not in catalog.bundles]
        changed = singles[::100]
        draft = SnapshotDraft(
            "activeants",
            "steady",
            datetime.now(UTC),
            "activeants",
            {(StockStatus.AVAILABLE, sku, ""): 1000 + i for i, sku in enumerate(changed)},
        )
        await ledger.record_snapshot(draft)
        out["steady_changed"] = len(changed)
        _, out["steady_1pct"] = await _timed(engine.recompute)
        _, out["steady_idle"] = await _timed(engine.recompute)
    out["peak_rss_mb"] = _rss_mb()
    return out


def _measure(size: int, root: Path) -> dict[str, Any]:
    directory = root / str(size)
    directory.mkdir()
    prepare(size, directory)
    progress(NAME, f"{size:,} variants prepared; measuring in a fresh process")
    completed = subprocess.run(
        [sys.executable, __file__, "--child", str(directory)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"size {size}: {completed.stderr.strip().splitlines()[-1:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    shutil.rmtree(directory)
    return result


def run(quick: bool) -> list[Row]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    with tempfile.TemporaryDirectory(prefix="syncd-bench-scale-") as tmp:
        results = {size: _measure(size, Path(tmp)) for size in sizes}
    rows: list[Row] = []
    for size, r in results.items():
        rows += _size_rows(size, r, judged=size == FULL_SIZES[-1] and not quick)
    rows.append(_growth_row(sizes, results))
    return rows


def _size_rows(size: int, r: dict[str, Any], *, judged: bool) -> list[Row]:
    """Full recompute, steady state and peak RSS of one size; targets only at 100 000."""
    full = r["full_first_start"]
    parts = (
        f"read {r['read']['wall']:.2f} + compute {r['allocate']['wall']:.2f} "
        f"+ write {r['set_desired']['wall']:.2f} s"
    )
    label = f"scale {size:,} variants"
    return [
        Row(
            f"{label} (+10% bundles): full recompute",
            f"{full['wall']:.2f} s wall = {full['wall'] / TARGET_SECONDS:.2f} of 2 s "
            f"({full['cpu']:.2f} s CPU)",
            "< 2 s at 100,000" if judged else "-",
            full["wall"] < TARGET_SECONDS if judged else None,
            notes=[
                f"{r['skus']:,} SKUs, {r['desired']:,} desired values; first start (empty "
                f"outbox) timed step by step: {parts}; restart (values unchanged) "
                f"{r['full_restart']['wall']:.2f} s; config load {r['config_load']['wall']:.2f} s"
            ],
            values={"full_wall": full["wall"], "full_cpu": full["cpu"]},
        ),
        Row(
            f"{label}: steady state",
            f"{r['steady_changed']:,} SKUs changed: {r['steady_1pct']['cpu'] * 1000:.0f} ms CPU; "
            f"nothing changed: {r['steady_idle']['cpu'] * 1000:.1f} ms CPU",
            "-",
            None,
            values={
                "steady_cpu": r["steady_1pct"]["cpu"],
                "idle_pass_cpu": r["steady_idle"]["cpu"],
            },
        ),
        Row(
            f"{label}: peak RSS",
            f"{r['peak_rss_mb']:.0f} MB = {r['peak_rss_mb'] / TARGET_RSS_MB:.2f} of 200 MB",
            "< 200 MB at 100,000" if judged else "-",
            r["peak_rss_mb"] < TARGET_RSS_MB if judged else None,
            notes=[f"{r['rss_after_config_mb']:.0f} MB once the config and catalog were loaded"],
            values={"peak_rss_mb": r["peak_rss_mb"]},
        ),
    ]


def _growth_row(sizes: tuple[int, ...], results: dict[int, dict[str, Any]]) -> Row:
    """Each step of the full recompute may cost at most (size step)^1.1."""
    steps = list(itertools.pairwise(sizes))
    factors = [
        (results[b]["full_first_start"]["wall"] / results[a]["full_first_start"]["wall"], a, b)
        for a, b in steps
    ]
    allowed = [(b / a) ** 1.1 for a, b in steps]
    return Row(
        "scale: growth of full recompute",
        ", ".join(f"{f:.1f}x for {b / a:.3g}x size ({a:,}->{b:,})" for f, a, b in factors),
        "linear (<= size^1.1)",
        all(f <= limit for (f, _, _), limit in zip(factors, allowed, strict=True)),
        values={f"growth_{a}_{b}": f for f, a, b in factors},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="internal: one scale measurement")
    parser.add_argument("--child", required=True, type=Path)
    args = parser.parse_args()
    print(json.dumps(anyio.run(_child, args.child)))


if __name__ == "__main__":
    main()
