"""`syncd demo`: the daemon against its built-in sandbox, through a believable day.

Everything runs in one process: the four simulated hosts (Ankorstore with
ASTRAL, Active Ants, fabric, FashionTrade) on loopback ports, and the real
daemon (`syncd run`'s code, with its ledger, status socket and interlocks)
configured against them. A scripted day moves stock at the warehouse, takes
orders on every channel, ships some, restocks, and sells a bundle's component
out, while a progress line every few seconds shows source freshness, pushes,
queue depth, the Ankorstore rate budget and 429s.

The first publication zeroes every sold-out SKU of the generated catalog,
which the mass-zero interlock holds -- as it should. The demo confirms it the
way an operator would (`syncd confirm`) and says so.

With ``--for SECONDS`` the day runs that long; then syncd gets up to
``SETTLE`` seconds to catch up, and the demo compares what each simulated
channel shows with what syncd computed (the outbox's desired values) and
exits 0 only if every channel converged and no API answered 429.

The demo's files (config, throw-away credentials, ledger, log) live in a
temporary directory that is removed when it exits, unless ``--keep``. The
commands it suggests are spelled the way it was started
(``.venv/bin/syncd status ...`` from ``make demo``), so they work as printed.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from syncd.config import load_config
from syncd.daemon.runtime import Daemon
from syncd.logs import configure_logging
from syncd.sandbox.world import SandboxWorld
from syncd.status.client import StatusUnreachable, request

PROGRESS_EVERY = 5.0
SETTLE = 30.0
"""Longest wait, after the day, for the channels to show what syncd computed.

Usually a few seconds (a poll and a push); a first publication held for
confirmation also waits for the operator's next look (``PROGRESS_EVERY``)."""


def self_command(argv0: str | None = None) -> str:
    """How to run this syncd again from the same shell: ``syncd``, ``.venv/bin/syncd`` ...

    ``make demo`` starts ``.venv/bin/syncd``, which is usually not on
    ``$PATH``: a suggested ``syncd status`` would not work as printed.
    """
    first = sys.argv[0] if argv0 is None else argv0
    if first.endswith("__main__.py") or not first:
        return f"{shlex.quote(_short(sys.executable))} -m syncd"
    on_path = shutil.which("syncd")
    if "/" not in first or (
        on_path is not None and Path(on_path).resolve() == Path(first).resolve()
    ):
        return "syncd"
    return shlex.quote(_short(first))


def _short(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    try:
        relative = Path(path).absolute().relative_to(Path.cwd())
    except ValueError:
        return path
    return str(relative) if relative.parts and "/" in str(relative) else f"./{relative}"


@dataclass(slots=True)
class DayLog:
    events: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    def note(self, elapsed: float, text: str) -> None:
        line = f"[{elapsed:6.1f}s] {text}"
        self.events.append(line)
        print(line, flush=True)


class Day:
    """The scripted day: one business event at a time, seeded for reproducibility."""

    def __init__(self, world: SandboxWorld, seed: int) -> None:
        self.world = world
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible story, not security
        catalog = world.catalog
        self.warehouse = [v.sku for v in catalog.variants if v.at_activeants]
        self.on_ankorstore = [
            v.sku for v in catalog.variants if "ankorstore" in v.channels and v.at_activeants
        ]
        self.on_fabric = [
            v.sku for v in catalog.variants if "fabric" in v.channels and v.at_activeants
        ]
        self.ankorstore_orders: list[tuple[str, str, int]] = []
        self.fabric_orders: list[tuple[int, str, int]] = []
        self.step = 0

    def _stocked(self, skus: list[str], minimum: int) -> str | None:
        state = self.world.activeants
        candidates = [s for s in skus if state.product(s).available >= minimum]
        return self.rng.choice(candidates) if candidates else None

    def next_event(self) -> str:
        self.step += 1
        kind = self.step % 7
        world = self.world
        if kind == 1:
            sku = self.rng.choice(self.warehouse)
            delta = self.rng.choice((-3, -2, -1, 2, 5))
            product = world.activeants.product(sku)
            delta = max(delta, -product.available)
            world.activeants.move_stock(sku, delta)
            return f"warehouse: {sku} {delta:+d} units (stock count)"
        if kind == 2:
            wanted = self._stocked(self.on_ankorstore, 12)
            if wanted is None:
                return "ankorstore: no order (nothing in stock)"
            listing = world.ankorstore.listing(wanted)
            if (
                listing.available_quantity is None
                or listing.available_quantity < listing.unit_multiplier
            ):
                return f"ankorstore: retailer wanted {wanted}, none shown yet"
            order = world.ankorstore.place_order({wanted: 1})
            self.ankorstore_orders.append((order.id, wanted, listing.unit_multiplier))
            return f"ankorstore: order {order.id[:8]} for 1 pack of {wanted}"
        if kind == 3:
            pick = self._stocked(self.on_fabric, 5)
            if pick is None or world.fabric.inventory(pick) < 2:
                return "fabric: no order (nothing shown)"
            fabric_order = world.fabric.place_order({pick: 2})
            self.fabric_orders.append((fabric_order.order_id, pick, 2))
            return f"fabric: order {fabric_order.order_id} for 2 x {pick}"
        if kind == 4:
            ft_sku = self._stocked(self.warehouse, 8)
            if ft_sku is None:
                return "fashiontrade: no order"
            barcode = world.catalog.by_sku[ft_sku].barcode
            world.fashiontrade.place_order([(barcode, 3)])
            return f"fashiontrade: wholesale order for 3 x {ft_sku}"
        if kind == 5:
            # The warehouse ships a channel order: Active Ants takes it over
            # (external reference = the order ref), ships it, and the channel
            # marks it shipped -- the same units leave both books.
            if self.ankorstore_orders:
                order_id, sku, units = self.ankorstore_orders.pop(0)
                world.activeants.add_order(order_id, {sku: units}, channel="ankorstore")
                world.activeants.ship_order(order_id)
                world.ankorstore.ship_order(order_id)
                return f"ankorstore: order {order_id[:8]} shipped by the warehouse"
            if self.fabric_orders:
                fabric_id, sku, units = self.fabric_orders.pop(0)
                reference = f"fabric-{fabric_id}"
                world.activeants.add_order(reference, {sku: units}, channel="fabric")
                world.activeants.ship_order(reference)
                world.fabric.ship_lines(fabric_id)
                return f"fabric: order {fabric_id} shipped by the warehouse"
            return "shipping: nothing to ship"
        if kind == 6:
            sku = self.rng.choice(self.warehouse)
            world.activeants.move_stock(sku, 48)
            return f"warehouse: restock of {sku} (+48 units received)"
        bundle = self.rng.choice(world.catalog.bundles)
        component = next(c for c in sorted(bundle.components) if c in world.catalog.by_sku)
        if world.catalog.by_sku[component].at_activeants:
            product = world.activeants.product(component)
            world.activeants.move_stock(component, -product.available)
            return f"warehouse: {component} sold out -> bundle {bundle.sku} runs out too"
        return f"warehouse: {component} is stocked at ASTRAL; no change"


def _desired(database: Path) -> dict[tuple[str, str], tuple[int, str]]:
    """The outbox: (channel, sku) -> (desired value, status), read without the daemon's help."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT channel, sku, desired, status FROM outbox").fetchall()
    return {(str(c), str(s)): (int(d), str(st)) for c, s, d, st in rows}


def convergence(world: SandboxWorld, database: Path) -> tuple[int, list[str]]:
    """How many (channel, SKU) values match, and the ones that do not."""
    matched = 0
    problems: list[str] = []
    for (channel, sku), (desired, status) in sorted(_desired(database).items()):
        if status == "parked":
            continue  # refused by the channel for a reason shown in `syncd status`
        if channel == "ankorstore":
            shown = world.ankorstore.listing(sku).available_quantity
        else:
            shown = world.fabric.inventory(sku)
        if shown == desired:
            matched += 1
        else:
            problems.append(f"{channel}/{sku}: shows {shown}, syncd computed {desired}")
    return matched, problems


def rate_limited(world: SandboxWorld) -> int:
    others = (world.activeants.counters, world.fabric.counters, world.fashiontrade.counters)
    return world.ankorstore.counters.rate_limited + sum(sum(c.throttled.values()) for c in others)


def _progress(status: dict[str, Any], elapsed: float) -> str:
    sources = status.get("sources", [])
    fresh = sum(1 for s in sources if not s.get("stale"))
    parts = [
        f"[{elapsed:6.1f}s] health={status.get('health')} sources fresh {fresh}/{len(sources)}"
    ]
    for channel in status.get("channels", []):
        budget = ""
        for window in channel.get("rate_limit", [])[:1]:
            budget = (
                f" budget {window.get('remaining')}/{window.get('limit')}/{window.get('window')}"
            )
        parts.append(
            f"{channel.get('name')}: pushed {channel.get('variants_pushed', 0)} in "
            f"{channel.get('pushes', 0)} req, queue {channel.get('queue_depth', 0)}, "
            f"429s {channel.get('rate_limited', 0)}{budget}"
        )
    return " | ".join(parts)


async def _operator(socket: Path, day: DayLog, started: float, syncd: str) -> None:
    """Confirm held cycles and print progress, as someone watching `syncd status` would."""
    while True:
        await anyio.sleep(PROGRESS_EVERY)
        try:
            status = await request(socket, {"cmd": "status"})
        except StatusUnreachable:
            continue
        elapsed = time.monotonic() - started
        for channel in status.get("channels", []):
            for hold in channel.get("held", []):
                reply = await request(
                    socket,
                    {"cmd": "confirm", "channel": channel["name"], "hold_id": hold["hold_id"]},
                )
                if reply.get("ok"):
                    day.confirmed.append(channel["name"])
                    day.note(
                        elapsed,
                        f"operator: confirmed held cycle {hold['hold_id']} on {channel['name']} "
                        f"({hold.get('reason')}) -- `{syncd} confirm --socket {socket} "
                        f"{channel['name']} {hold['hold_id']}`",
                    )
        print(_progress(status, elapsed), flush=True)


async def _drive(
    world: SandboxWorld, day_log: DayLog, seed: int, until: float, started: float
) -> None:
    day = Day(world, seed)
    await anyio.sleep(3.0)  # let the first reads and the first publication happen
    while time.monotonic() < until:
        text = day.next_event()
        day_log.note(time.monotonic() - started, text)
        await anyio.sleep(1.5)


async def _run(args: argparse.Namespace, workdir: Path) -> int:
    world = SandboxWorld.create(variants=args.variants, seed=args.seed)
    day_log = DayLog()
    started = time.monotonic()
    duration: float | None = args.duration
    stop_events = started + (duration if duration is not None else 1e12)
    syncd = self_command()
    async with world.running():
        # Orders move within seconds in the demo's day: re-read Ankorstore's
        # reservedQuantity before every push instead of trusting a minute-old one.
        config_path = world.write_config(
            workdir, cycle_interval=1.0, poll_interval=1.0, reserved_max_age=0.5
        )
        config = load_config(config_path)
        configure_logging("json", stream=(workdir / "syncd.log").open("a", encoding="utf-8"))
        kept = "kept" if args.keep else "removed on exit; --keep keeps them"
        print(f"syncd demo: {args.variants} variants, simulators on loopback")
        print(f"  files in {workdir} ({kept})")
        print(f"  config {config_path}  |  log {workdir / 'syncd.log'}")
        print(f"  in another terminal: {syncd} status --socket {config.daemon.status_socket}")
        print(f"                       {syncd} explain --config {config_path} SKU")
        daemon = Daemon(config, config_path, env={})
        exit_code = 0
        async with anyio.create_task_group() as tg:

            async def run_daemon() -> None:
                nonlocal exit_code
                exit_code = await daemon.run()
                tg.cancel_scope.cancel()

            tg.start_soon(run_daemon)
            tg.start_soon(_operator, Path(config.daemon.status_socket), day_log, started, syncd)
            tg.start_soon(_drive, world, day_log, args.seed, stop_events, started)
            if duration is not None:
                await anyio.sleep(max(0.0, stop_events - time.monotonic()))
                print(
                    f"[{time.monotonic() - started:6.1f}s] day over after {duration:g} s; "
                    f"letting syncd settle (at most {SETTLE:.0f} s)",
                    flush=True,
                )
                deadline = time.monotonic() + SETTLE
                problems: list[str] = ["not checked"]
                matched = 0
                while time.monotonic() < deadline:
                    await anyio.sleep(2.0)
                    matched, problems = convergence(world, Path(config.daemon.database))
                    if not problems:
                        break
                # The daemon stops the way systemd stops it: SIGTERM, drain, exit 0.
                os.kill(os.getpid(), signal.SIGTERM)
        throttled = rate_limited(world)
        ankorstore_writes = world.ankorstore.counters.write_requests
        fabric_writes = sum(world.fabric.counters.writes.values())
        print(
            f"pushes: ankorstore {ankorstore_writes} bulk request(s) "
            f"({world.ankorstore.counters.updated_variants} variant updates), "
            f"fabric {fabric_writes} write(s); 429 responses: {throttled}"
        )
        if duration is None:
            return exit_code
        if problems:
            print(f"NOT converged: {len(problems)} value(s) differ", file=sys.stderr)
            for line in problems[:20]:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"converged: every channel shows what syncd computed ({matched} values)")
        if throttled:
            print(f"but {throttled} request(s) were answered 429", file=sys.stderr)
            return 1
        if not ankorstore_writes or not fabric_writes:
            print("but a channel received no push", file=sys.stderr)
            return 1
        return exit_code


def cli_demo(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        print("syncd demo: --for takes a number of seconds above 0", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    try:
        return anyio.run(_run, args, workdir)
    finally:
        if args.keep:
            print(f"syncd demo: files kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
