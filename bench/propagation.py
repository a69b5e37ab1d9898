"""Propagation: from a stock change at Active Ants to the new value on both channels.

A real ``syncd run`` (its own process, the sandbox config with every poll
interval set to ``P`` and push rounds every ``P / 2``, the proportion of the
shipped defaults) runs against the simulators from a steady state
(:func:`_daemon.settle`). The benchmark then changes the stock of single
variants at the Active Ants simulator -- at random moments (a Poisson
stream, so changes land anywhere in the poll cycle) -- and times each one
from the instant the warehouse's number changed to the instant the *later*
of the two channels applied the write carrying the new value (a hook on
the Ankorstore and fabric simulators' stock writes; each write is
acknowledged by syncd the moment its answer arrives). The daemon is
measured as it runs: Active Ants poll, recompute, Ankorstore bulk write
(with its ``reservedQuantity`` re-read) and fabric write plus read-back.

The variants changed are singles stocked only at Active Ants, published on
both channels, sold by the unit and far from zero, so each channel's value
moves by exactly the change; a variant is changed again only once its
previous change has arrived. The target is on p99: at most
``1.1 x P + 1 s`` (a change waits at most one poll interval to be seen).
After the daemon stopped, the ledger is checked: every changed variant's
outbox row is acknowledged on both channels at the value the simulator shows.
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from _common import Row, describe_problems, load_average, percentile, progress, scratch_dir
from _daemon import DaemonProcess, settle
from _rig import rate_limited

from syncd.config import load_config
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld

NAME = "propagation"
MANAGES_PROCESSES = True


@dataclass(frozen=True, slots=True)
class Plan:
    variants: int
    poll: float
    """The configured ``poll_interval`` of every source, seconds (``P``)."""
    changes: int
    rate: float
    """Stock changes per second (mean of the Poisson stream)."""


FULL = Plan(variants=2_000, poll=5.0, changes=1_000, rate=2.5)
QUICK = Plan(variants=300, poll=0.5, changes=10, rate=5.0)
CYCLE_SHARE = 0.5
"""``cycle_interval`` as a share of ``P``: 30 s vs Active Ants' 60 s in the shipped defaults."""
SEED = 23
MIN_LEVEL = 10
"""Variants are only lowered while every figure involved stays at least this far from zero."""


@dataclass(slots=True)
class _Change:
    sku: str
    started: float
    expected: dict[str, int]
    arrived: dict[str, float] = field(default_factory=dict)


class ArrivalLog:
    """Times at which the channel simulators applied the values the benchmark waits for."""

    CHANNELS = ("ankorstore", "fabric")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, _Change] = {}
        self.latencies: list[float] = []
        self.by_channel: dict[str, list[float]] = {c: [] for c in self.CHANNELS}
        self.done_skus: set[str] = set()

    def install(self, world: SandboxWorld) -> None:
        """Wrap the simulators' stock writes; every applied write is seen here."""
        ankorstore, fabric = world.ankorstore, world.fabric
        apply = ankorstore._apply  # every Ankorstore write lands here
        submit = fabric.submit_inventory

        def _apply(change: Any) -> Any:
            listing = apply(change)
            self._seen("ankorstore", listing.sku, listing.available_quantity)
            return listing

        def _submit(key: str | int, value: int) -> Any:
            item = submit(key, value)
            self._seen("fabric", item.brand_sku, item.inventory)
            return item

        ankorstore._apply = _apply  # type: ignore[method-assign]
        fabric.submit_inventory = _submit  # type: ignore[method-assign]

    def expect(self, change: _Change) -> None:
        with self._lock:
            self._waiting[change.sku] = change

    def in_flight(self) -> set[str]:
        with self._lock:
            return set(self._waiting)

    def reset(self) -> None:
        """Forget what arrived so far (the warm-up)."""
        with self._lock:
            self.latencies.clear()
            self.done_skus.clear()
            for values in self.by_channel.values():
                values.clear()

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def _seen(self, channel: str, sku: str, value: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            change = self._waiting.get(sku)
            if change is None or value != change.expected[channel]:
                return
            change.arrived.setdefault(channel, now)
            if len(change.arrived) == len(self.CHANNELS):
                self.latencies.append(max(change.arrived.values()) - change.started)
                for name, at in change.arrived.items():
                    self.by_channel[name].append(at - change.started)
                self.done_skus.add(sku)
                del self._waiting[sku]


def eligible(world: SandboxWorld) -> list[str]:
    """Singles stocked only at Active Ants, on both channels, sold by the unit, in stock.

    In stock on both channels: an increase from an acknowledged zero waits
    for a second consistent read by design (``confirm_increase_after_zero``),
    so a restock from zero takes one more poll interval; that is a safety
    rule, not propagation, and it is left out of the sample.
    """
    return [
        v.sku
        for v in world.catalog.variants
        if v.at_activeants
        and not v.at_astral
        and {"ankorstore", "fabric"} <= v.channels
        and v.pack_size == 1
        and min(_levels(world, v.sku)) >= MIN_LEVEL
    ]


def _levels(world: SandboxWorld, sku: str) -> list[int]:
    """The warehouse's level and what each channel shows (-1 when it shows no number)."""
    available = world.ankorstore.listing(sku).available_quantity
    return [
        world.activeants.product(sku).available,
        -1 if available is None else available,
        world.fabric.inventory(sku),
    ]


def _change_one(world: SandboxWorld, arrivals: ArrivalLog, sku: str, rng: random.Random) -> None:
    """Move one variant's stock by a few units, never closer to zero than ``MIN_LEVEL - 3``."""
    warehouse, ankorstore, fabric = _levels(world, sku)
    delta = rng.choice((-3, -2, -1, 1, 2, 3))
    if delta < 0 and min(warehouse, ankorstore, fabric) < MIN_LEVEL:
        delta = -delta
    expected = {"ankorstore": ankorstore + delta, "fabric": fabric + delta}
    arrivals.expect(_Change(sku=sku, started=time.monotonic(), expected=expected))
    world.activeants.move_stock(sku, delta)


def _drive(
    world: SandboxWorld, arrivals: ArrivalLog, pool: list[str], plan: Plan, rng: random.Random
) -> None:
    """Issue ``plan.changes`` changes as a Poisson stream of ``plan.rate`` per second."""
    issued = 0
    next_at = time.monotonic()
    while issued < plan.changes:
        next_at += rng.expovariate(plan.rate)
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        busy = arrivals.in_flight()
        free = [sku for sku in pool if sku not in busy]
        if not free:
            continue
        _change_one(world, arrivals, rng.choice(free), rng)
        issued += 1


def _acknowledged(database: Path, skus: set[str], world: SandboxWorld) -> list[str]:
    """Changed variants whose outbox row does not acknowledge what the channel shows."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT channel, sku, desired, acknowledged, status FROM outbox")
        outbox = {(c, s): (d, a, st) for c, s, d, a, st in rows}
    wrong = []
    for sku in sorted(skus):
        shown = {
            "ankorstore": world.ankorstore.listing(sku).available_quantity,
            "fabric": world.fabric.inventory(sku),
        }
        for channel, value in shown.items():
            desired, acknowledged, status = outbox[channel, sku]
            if not desired == acknowledged == value or status != "acknowledged":
                wrong.append(f"{channel}/{sku}: {desired=} {acknowledged=} shows {value} {status}")
    return wrong


def run(quick: bool) -> list[Row]:
    plan = QUICK if quick else FULL
    rng = random.Random(SEED)
    world = SandboxWorld.create(catalog=generate_catalog(plan.variants, seed=SEED))
    with (
        scratch_dir("syncd-bench-propagation-") as directory,
        world.threaded(),
    ):
        config_path = world.write_config(
            directory, poll_interval=plan.poll, cycle_interval=plan.poll * CYCLE_SHARE
        )
        config = load_config(config_path)
        settled = anyio.run(settle, world, config, NAME)
        pool = eligible(world)
        arrivals = ArrivalLog()
        arrivals.install(world)
        with DaemonProcess(
            config_path, directory / "daemon.log", Path(config.daemon.status_socket)
        ) as daemon:
            startup_s = daemon.wait_ready(timeout=120.0)
            # Warm-up, not measured: the first push of each channel reads fabric's
            # inventory list and fetches tokens.
            _change_one(world, arrivals, pool[0], rng)
            daemon.wait_for(
                lambda: not arrivals.waiting(), timeout=30 * plan.poll + 30, what="warm-up"
            )
            arrivals.reset()
            progress(NAME, f"{plan.changes} changes at {plan.rate:g}/s, P = {plan.poll:g} s")
            throttled_before = rate_limited(world)
            cpu_before, started = daemon.cpu_seconds(), time.monotonic()
            _drive(world, arrivals, pool, plan, rng)
            deadline = time.monotonic() + 5 * plan.poll + 30
            while arrivals.waiting() and time.monotonic() < deadline:
                time.sleep(0.05)
            seconds = time.monotonic() - started
            cpu = daemon.cpu_seconds() - cpu_before
            warnings = describe_problems(daemon.problems())
            daemon.stop()
            throttled = rate_limited(world) - throttled_before
        wrong = _acknowledged(Path(config.daemon.database), arrivals.done_skus, world)
    return _rows(
        plan,
        arrivals,
        seconds=seconds,
        cpu=cpu,
        throttled=throttled,
        warnings=warnings,
        wrong=wrong,
        startup_s=startup_s,
        settle_s=settled.seconds,
    )


def _rows(
    plan: Plan,
    arrivals: ArrivalLog,
    *,
    seconds: float,
    cpu: float,
    throttled: int,
    warnings: str,
    wrong: list[str],
    startup_s: float,
    settle_s: float,
) -> list[Row]:
    lost = plan.changes - len(arrivals.latencies)
    latencies = arrivals.latencies + [math.inf] * lost
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    limit = 1.1 * plan.poll + 1.0
    notes = [
        f"{plan.changes} changes (Poisson, {plan.rate:g}/s) over {seconds:.0f} s, poll interval "
        f"P = {plan.poll:g} s; {lost} never arrived; max {max(latencies):.2f} s; "
        f"{throttled} x 429; daemon CPU {cpu:.1f} s ({cpu / seconds:.0%} of a core); "
        f"daemon warnings/errors: {warnings}; load average {load_average()}",
        "per channel p50 / p99: "
        + ", ".join(
            f"{name} {percentile(values, 50):.2f} / {percentile(values, 99):.2f} s"
            for name, values in arrivals.by_channel.items()
        ),
        f"steady state prepared in {settle_s:.0f} s; daemon ready {startup_s:.1f} s after start",
    ]
    if wrong:
        notes.append(f"{len(wrong)} outbox rows disagree with the channels, e.g. {wrong[:3]}")
    return [
        Row(
            "propagation p99 (Active Ants -> both channels)",
            f"{p99 / plan.poll:.2f}x P ({p99:.2f} s, P = {plan.poll:g} s)",
            f"<= 1.1x P + 1 s ({limit:.2f} s)",
            p99 <= limit and not wrong,
            notes=notes,
            values={"p99_s": p99, "p50_s": p50, "poll_s": plan.poll, "lost": lost},
        ),
        Row(
            "propagation p50",
            f"{p50 / plan.poll:.2f}x P ({p50:.2f} s)",
            "-",
            None,
            values={"p50_s": p50},
        ),
    ]
