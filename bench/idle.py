"""Idle cost: requests and CPU per hour of syncd with nothing to do, at 100 000 variants.

syncd watches the sandbox from a steady state (:func:`_daemon.settle`:
every value published and acknowledged) while no stock changes, with the
**shipped default intervals**: Active Ants every 60 s (a full read daily),
ASTRAL every 30 s (reconciled hourly), order feeds every 120 s (the
FashionTrade sweep daily), push rounds every 30 s, a read-back of each
channel hourly. An hour is not waited out; it is put together from three
measurements, each of syncd's real code:

1. **background** -- a real ``syncd run`` (its own process) with every
   interval at a million seconds: after its start-up it only keeps itself
   alive (heartbeat, ``STATUS=`` line). Its CPU per second, from ``/proc``,
   counts 3 600 times per hour.
2. **frequent work** -- the same daemon with polls and push rounds ``K``
   times more often, and the simulators' and syncd's rate limits ``K`` times
   higher; the hourly and daily jobs stay off. Over a window of ``W``
   seconds it does the polling of ``K x W`` seconds: requests (counted at
   the simulators) and CPU above the background are divided by ``K``.
3. **scheduled jobs** -- each hourly and daily job run once through the
   daemon's own code in the benchmark process (``Scheduler.read_back`` of
   each channel, an ASTRAL poll that reconciles, an Active Ants poll that
   makes the full read, a FashionTrade poll that sweeps), each counted as
   often per hour as its default interval says. Their CPU is that of the
   threads syncd runs in (the event loop and SQLite's), not the
   simulators'. A channel's hourly read-back is measured as the daemon
   runs it: after the start-up read-back (not counted). fabric's hourly
   read-back reads only the items fabric changed since the last read, and
   the whole list once a day (``FULL_READ_EVERY_S``): that daily full read
   costs what the start-up read-back costs, counted once per day.

Read-backs use the largest page sizes the documents give: Ankorstore's
variant list documents no ``page[limit]`` maximum, and syncd asks for 100,
the largest ``perPage`` in any documented sample (seed 000 L3106);
fabric's lists document no page-size parameter at all (brief seed-fabric
2.4), so syncd sends none and takes fabric's pages as they come.

There is no target in issue 7 for idle cost; each figure is also given as
a share of what it is spent from (the API's hourly budget, one CPU core).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _simpatch
import anyio
from _common import Row, describe_problems, load_average, progress, scratch_dir
from _daemon import DaemonProcess, settle
from _rig import requests_by_api, scale_client_rates, scale_sim_rates, set_in_section

from syncd.assembly import assemble
from syncd.channels.fabric import FULL_READ_EVERY_S
from syncd.clock import SystemClock
from syncd.config import Config, load_config
from syncd.config.sections import (
    ActiveAntsSourceSection,
    AnkorstoreChannelSection,
    AstralSourceSection,
    DaemonSection,
    FabricChannelSection,
    FashionTradeSourceSection,
    OrderSourceSection,
)
from syncd.daemon.scheduler import Scheduler
from syncd.ledger.store import Ledger
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld
from syncd.status.metrics import Metrics

NAME = "idle"
MANAGES_PROCESSES = True
NEVER = 1_000_000.0
"""Seconds: an interval no measurement reaches."""
DUE = 0.001
"""Seconds: an interval that is always due (a job run on purpose)."""


@dataclass(frozen=True, slots=True)
class Plan:
    variants: int
    speedup: float
    quiet_s: float
    window_s: float


FULL = Plan(variants=100_000, speedup=30.0, quiet_s=180.0, window_s=120.0)
"""The quiet window is long because the background is lumpy: a pause of a few seconds
every few minutes (most likely a full garbage collection of the 600 MB process) is in a
30 s window or not, which moved the figure between 8 and 215 CPU s/h on the same code."""
QUICK = Plan(variants=300, speedup=600.0, quiet_s=0.5, window_s=2.0)
SEED = 31


def _default(model: type[object], field: str) -> float:
    value = model.model_fields[field].default  # type: ignore[attr-defined]
    return float(value)


FREQUENT: dict[str, dict[str, float]] = {
    "daemon": {"cycle_interval": _default(DaemonSection, "cycle_interval")},
    "sources.activeants": {
        "poll_interval": _default(ActiveAntsSourceSection, "poll_interval"),
        "stale_after": _default(ActiveAntsSourceSection, "stale_after"),
    },
    "sources.astral": {
        "poll_interval": _default(AstralSourceSection, "poll_interval"),
        "stale_after": _default(AstralSourceSection, "stale_after"),
    },
    **{
        f"sources.{name}": {
            "poll_interval": _default(OrderSourceSection, "poll_interval"),
            "stale_after": _default(OrderSourceSection, "stale_after"),
        }
        for name in ("ankorstore_orders", "fabric_orders", "fashiontrade")
    },
}
"""Shipped defaults of what runs every few seconds to minutes (``stale_after`` keeps its margin)."""
FASHIONTRADE_LINES = {"lines_max_age": _default(FashionTradeSourceSection, "lines_max_age")}

SCHEDULED: dict[str, tuple[str, str, float]] = {
    "ankorstore read-back": (
        "channels.ankorstore",
        "readback_interval",
        _default(AnkorstoreChannelSection, "readback_interval"),
    ),
    "fabric read-back": (
        "channels.fabric",
        "readback_interval",
        _default(FabricChannelSection, "readback_interval"),
    ),
    "fabric full read (daily)": ("channels.fabric", "readback_interval", FULL_READ_EVERY_S),
    "ASTRAL reconciliation": (
        "sources.astral",
        "reconcile_interval",
        _default(AstralSourceSection, "reconcile_interval"),
    ),
    "Active Ants full read": (
        "sources.activeants",
        "full_reconcile_interval",
        _default(ActiveAntsSourceSection, "full_reconcile_interval"),
    ),
    "FashionTrade sweep": (
        "sources.fashiontrade",
        "sweep_interval",
        _default(FashionTradeSourceSection, "sweep_interval"),
    ),
}
"""Job -> (section, key, shipped default interval in seconds)."""


def _with(toml: str, values: dict[str, dict[str, float]]) -> str:
    for section, keys in values.items():
        for key, value in keys.items():
            toml = set_in_section(toml, section, key, repr(value))
    return toml


def _scheduled(value: float) -> dict[str, dict[str, float]]:
    found: dict[str, dict[str, float]] = {}
    for section, key, _ in SCHEDULED.values():
        found.setdefault(section, {})[key] = value
    return found


def configs(base: str, speedup: float) -> dict[str, str]:
    """The TOML of each measurement, from the sandbox's config (rates already scaled)."""
    frequent = {s: {k: v / speedup for k, v in keys.items()} for s, keys in FREQUENT.items()}
    frequent["sources.fashiontrade"] |= {k: v / speedup for k, v in FASHIONTRADE_LINES.items()}
    quiet = {
        s: {k: 2 * NEVER if k == "stale_after" else NEVER for k in keys}
        for s, keys in FREQUENT.items()
    }
    return {
        "quiet": _with(_with(base, quiet), _scheduled(NEVER)),
        "frequent": _with(_with(base, frequent), _scheduled(NEVER)),
        "jobs": _with(_with(base, frequent), _scheduled(DUE)),
    }


# --- measuring -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cost:
    seconds: float
    cpu: float
    requests: dict[str, int]


QUIET_CPU = 0.05
"""CPU seconds per second below which the quiet daemon counts as done with its start."""


def _wait_quiet(world: SandboxWorld, daemon: DaemonProcess, still: float, timeout: float) -> None:
    """Wait until no simulator has seen a request for ``still`` seconds, and the daemon
    spent less than :data:`QUIET_CPU` of a core over them.

    The start-up read-back's last page is not its end: comparing 100 000 values with
    the ledger takes seconds more, and that is start-up work, not the background.
    """
    deadline = time.monotonic() + timeout
    seen, since, cpu_since = requests_by_api(world), time.monotonic(), daemon.cpu_seconds()
    while True:
        if time.monotonic() > deadline:
            raise RuntimeError("the quiet daemon kept sending requests or computing")
        time.sleep(0.2)
        cpu = daemon.cpu_seconds()  # raises if the daemon died
        now = requests_by_api(world)
        elapsed = time.monotonic() - since
        if now != seen or (elapsed >= still and (cpu - cpu_since) / elapsed >= QUIET_CPU):
            seen, since, cpu_since = now, time.monotonic(), cpu
        elif elapsed >= still:
            return


def _window(world: SandboxWorld, daemon: DaemonProcess, seconds: float) -> Cost:
    before, cpu, started = requests_by_api(world), daemon.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    cpu = daemon.cpu_seconds() - cpu
    elapsed = time.monotonic() - started
    after = requests_by_api(world)
    return Cost(elapsed, cpu, {api: after[api] - before[api] for api in after})


def _read_back_at_start(daemon: DaemonProcess) -> set[str]:
    """Channels whose start-up read-back the daemon has finished (clean or not)."""
    done = set()
    for name in ("channel.readback_clean", "channel.drift"):
        done |= {str(e.get("channel")) for e in daemon.events(name) if e.get("startup")}
    return done


def syncd_cpu_seconds() -> float:
    """CPU of the threads syncd runs in here: this (event loop) thread and SQLite's workers.

    The simulators' threads (``sandbox-server``) are left out.
    """
    total = time.thread_time()
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name and thread.ident is not None:
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


async def _job(world: SandboxWorld, run: Callable[[], Awaitable[Any]]) -> Cost:
    before, cpu, started = requests_by_api(world), syncd_cpu_seconds(), time.monotonic()
    await run()
    after = requests_by_api(world)
    return Cost(
        time.monotonic() - started,
        syncd_cpu_seconds() - cpu,
        {api: after[api] - before[api] for api in after},
    )


class IdleHourClock(SystemClock):
    """The system clock, its wall ``ahead`` seconds in the future while ``ahead`` is set.

    The steady state was written to the simulators moments before the jobs run;
    a read-back of "what changed since the last read" would count those writes,
    which in a daemon happened hours earlier. Reading with syncd's wall an hour
    ahead of the simulators' is what an idle hour later looks like: fabric shows
    every item as last changed an hour ago.
    """

    def __init__(self) -> None:
        self.ahead = 0.0

    def wall(self) -> float:
        return super().wall() + self.ahead


async def scheduled_jobs(world: SandboxWorld, config: Config) -> dict[str, Cost]:
    """Run each hourly and daily job once through syncd's own code; what each cost."""
    costs: dict[str, Cost] = {}
    clock = IdleHourClock()
    async with await Ledger.open(config.daemon.database, clock=clock) as ledger:
        assembly = assemble(config, ledger, clock=ledger.clock)
        try:
            scheduler = Scheduler(assembly, Metrics(), cycle_interval=NEVER)
            sources = {source.name: source for source in assembly.sources}
            clock.ahead = 3600.0
            for channel in assembly.channels:
                # The daemon reads every channel in full at start; the hourly
                # read-backs come after that.
                startup = await _job(world, lambda c=channel: scheduler.read_back(c, startup=True))
                if channel == "fabric":
                    costs["fabric full read (daily)"] = startup
                costs[f"{channel} read-back"] = await _job(
                    world, lambda c=channel: scheduler.read_back(c)
                )
                progress(NAME, f"{channel} read-back measured")
            clock.ahead = 0.0
            for job, source in (
                ("ASTRAL reconciliation", "astral"),
                ("Active Ants full read", "activeants"),
                ("FashionTrade sweep", "fashiontrade"),
            ):
                costs[job] = await _job(world, lambda s=source: sources[s].poll(ledger))
                progress(NAME, f"{job} measured")
        finally:
            await assembly.aclose()
    return costs


# --- the benchmark ---------------------------------------------------------------------


@dataclass(slots=True)
class Measured:
    background: Cost
    frequent: Cost
    jobs: dict[str, Cost]
    notes: list[str]


def run(quick: bool) -> list[Row]:
    plan = QUICK if quick else FULL
    _simpatch.apply()
    world = SandboxWorld.create(catalog=generate_catalog(plan.variants, seed=SEED))
    scale_sim_rates(world, plan.speedup)
    progress(NAME, f"sandbox of {plan.variants:,} variants built")
    with scratch_dir("syncd-bench-idle-") as directory, world.threaded():
        written = world.write_config(directory)
        base = scale_client_rates(
            written.read_text(encoding="utf-8"), load_config(written), plan.speedup
        )
        paths: dict[str, Path] = {}
        for name, text in configs(base, plan.speedup).items():
            paths[name] = directory / f"{name}.toml"
            paths[name].write_text(text, encoding="utf-8")
        config = load_config(paths["jobs"])
        settled = anyio.run(settle, world, config, NAME)
        jobs = anyio.run(scheduled_jobs, world, config)
        socket = Path(config.daemon.status_socket)
        with DaemonProcess(paths["quiet"], directory / "quiet.log", socket) as daemon:
            daemon.wait_ready(timeout=900.0)
            _wait_quiet(world, daemon, still=min(5.0, plan.quiet_s), timeout=900.0)
            progress(NAME, f"quiet daemon: measuring {plan.quiet_s:g} s")
            background = _window(world, daemon, plan.quiet_s)
        with DaemonProcess(paths["frequent"], directory / "frequent.log", socket) as daemon:
            startup_s = daemon.wait_ready(timeout=900.0)
            # Nor is the start-up read-back of every channel (a full listing, counted
            # above as the daily full read): the window opens once each is done.
            channels = set(config.channels.enabled())
            daemon.wait_for(
                lambda: _read_back_at_start(daemon) >= channels,
                timeout=900.0,
                what="the start-up read-backs",
            )
            # The first polls after a start are not idle polling: let them pass.
            time.sleep(max(1.0, 3 * _default(OrderSourceSection, "poll_interval") / plan.speedup))
            progress(NAME, f"sped-up daemon: measuring {plan.window_s:g} s")
            frequent = _window(world, daemon, plan.window_s)
            peak_rss = daemon.peak_rss_mb()
            problems = describe_problems(daemon.problems())
    notes = [
        f"daemon peak RSS {peak_rss:.0f} MB; daemon ready {startup_s:.0f} s after start; steady "
        f"state prepared in {settled.seconds:.0f} s; daemon warnings/errors: {problems}; "
        f"load average {load_average()}",
    ]
    return _rows(plan, config, Measured(background, frequent, jobs, notes))


def _hourly_budget(config: Config, speedup: float) -> dict[str, float]:
    """Requests per hour each API allows syncd (the config's limits were scaled by ``speedup``,
    except Ankorstore's, which syncd accepts only up to the documented ones: see
    :func:`_rig.scale_client_rates`)."""
    budget: dict[str, float] = {}
    for name, section in config.apis.present().items():
        per_minute = getattr(section, "requests_per_minute", None)
        per_hour = getattr(section, "requests_per_hour", None)
        candidates = [v for v in (per_hour, per_minute and per_minute * 60) if v]
        if candidates:
            budget[name] = float(min(candidates)) / (1.0 if name == "ankorstore" else speedup)
    return budget


def _rows(plan: Plan, config: Config, m: Measured) -> list[Row]:
    k = plan.speedup
    background_rate = m.background.cpu / m.background.seconds
    frequent_cpu = max(0.0, m.frequent.cpu - background_rate * m.frequent.seconds)
    per_hour = 3600.0 / (m.frequent.seconds * k)
    requests = {api: n * per_hour for api, n in m.frequent.requests.items()}
    cpu = {"background": background_rate * 3600.0, "frequent work": frequent_cpu * per_hour}
    job_notes = []
    for job, cost in m.jobs.items():
        _, _, interval = SCHEDULED[job]
        times = 3600.0 / interval
        for api, n in cost.requests.items():
            requests[api] += n * times
        cpu[job] = cost.cpu * times
        job_notes.append(
            f"{job} every {interval / 3600:g} h: {sum(cost.requests.values()):,} requests, "
            f"{cost.cpu:.1f} s CPU each"
        )
    total = sum(requests.values())
    budgets = _hourly_budget(config, k)
    shares = ", ".join(
        f"{api} {n:,.0f} ({n / budgets[api]:.1%} of {budgets[api]:,.0f}/h)"
        for api, n in requests.items()
        if api in budgets and n
    )
    cpu_total = sum(cpu.values())
    size = f"{plan.variants:,} variants"
    method = (
        f"an hour put together, not waited out: background over {m.background.seconds:.0f} s "
        f"(every interval {NEVER:g} s), polls and push rounds sped up {k:g}x over "
        f"{m.frequent.seconds:.0f} s, each scheduled job run once"
    )
    return [
        Row(
            f"idle requests/hour at {size}",
            f"{total:,.0f}/h: {shares}",
            "none set (info)",
            None,
            notes=[method, "; ".join(job_notes), *m.notes],
            values={"requests_per_hour": total} | {f"{a}_per_hour": n for a, n in requests.items()},
        ),
        Row(
            f"idle CPU/hour at {size}",
            f"{cpu_total:,.0f} s/h = {cpu_total / 3600:.1%} of one core ("
            + ", ".join(f"{part} {seconds:,.1f} s" for part, seconds in cpu.items())
            + ")",
            "none set (info)",
            None,
            values={"cpu_s_per_hour": cpu_total} | {f"cpu_{p}": s for p, s in cpu.items()},
        ),
    ]
