"""The deterministic simulation: one seed, one world, one random schedule, every invariant.

In the spirit of TigerBeetle's VOPR: everything that varies comes from one
``random.Random(seed)`` -- the catalog, the schedule of world events, faults,
clock jumps and crashes -- and time is one fake clock shared by syncd and the
simulators. syncd gets that clock the way production gets the system's:
:func:`~syncd.assembly.assemble` and the ledger take it as their
:class:`~syncd.clock.Clock`, whose ``rng`` streams (back-off jitter, request
ids, record keys) are seeded from the seed too. Nothing of syncd is patched,
so a seed replays byte for byte (``test_a_seed_replays_byte_for_byte``).

syncd runs for real: :func:`syncd.assembly.assemble` builds the clients,
sources, channels and engine from the config the sandbox writes, over a real
SQLite ledger file; only the transports are swapped for the simulated network
(:mod:`tests.sim.network`), the ledger for :class:`~tests.sim.crashes.CrashingLedger`
(a subclass that stages crashes) and each source is wrapped in
:class:`TimedSource` (a delegating wrapper that notes when reads succeed).
A "cycle" is what ``syncd once`` does: read every source, recompute, push
every channel (an operator confirms held cycles most of the time); a
"read-back" is the daemon's drift check (:meth:`syncd.scheduler.Scheduler.read_back`),
under ``drift_policy = "protect"`` (the default) for half the seeds,
``"overwrite"`` or ``"report"`` for a quarter each.

Every start of syncd (the first, after a crash, after a restore) does what
the daemon does: it reads each channel back (``read_back(startup=True)``)
before anything is pushed to it; a channel whose start-up read fails gets
nothing pushed until a later attempt succeeds. Besides world events, faults,
clock jumps and crashes, a seed may back the ledger up (SQLite's backup API,
or a checkpoint and a file copy), later put that older copy in place of the
live ledger and restart, or lose the WAL (the process dies and the ``-wal``
file is gone: everything committed since the last checkpoint vanishes).
Syncd's wall clock also steps back and forward (``SYNCD_SIM_WALL_STEPS=0``
turns that off, to tell its effects apart) (:mod:`tests.sim.simclock`); whatever the clock does, a channel fed by
a source not read for longer than its ``stale_after`` (monotonic time) is
never written, and one whose sources were all read within it is never
blocked as stale.

After every step :class:`~tests.sim.checks.Invariants` runs. After the last
step every fault is healed, parked items are unparked, and ONE cycle runs
(sources read, recompute, push, with the start-up read-back first if syncd
was restarted): every channel must then show what the oracle
(:mod:`tests.sim.oracle`) computes from the simulators' final state. Then
cycles (each followed by a read-back) run until two in a row change nothing,
and the comparison is made again; every outbox value must carry its
explanation. A difference recognised as documented behaviour or a
reported, unfixed bug (:mod:`tests.sim.known`) is recorded instead of
failing the seed, unless ``SYNCD_SIM_STRICT=1``.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from syncd.assembly import Assembly, assemble
from syncd.config import Config, load_config
from syncd.engine import ChannelCycle
from syncd.ledger.store import Ledger
from syncd.metrics import Metrics
from syncd.model import FeedState, OutboxRow
from syncd.once import _needs_second_read as needs_second_read
from syncd.once import read_sources
from syncd.sandbox import activeants, ankorstore, fabric, fashiontrade
from syncd.sandbox.activeants_state import ActiveAntsState
from syncd.sandbox.ankorstore_state import AnkorstoreState
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.fabric_state import FabricState
from syncd.sandbox.fashiontrade_state import FashionTradeState
from syncd.sandbox.faults import FaultPlan
from syncd.sandbox.world import APIS, SandboxWorld
from syncd.scheduler import Scheduler
from syncd.sources.base import PollResult, Source
from tests.sim.checks import Invariants, superseded_sends
from tests.sim.crashes import POINTS, Crash, CrashingLedger, CrashPlan
from tests.sim.events import WorldDriver
from tests.sim.known import CHANNEL_MOVED, HANDOVER_PENDING, KNOWN, KnownIssue, strict
from tests.sim.network import NET_KINDS, NetFault, Network
from tests.sim.oracle import (
    ALL_CHANNELS,
    expected,
    offers,
    open_orders,
    shown,
    warehouse_pools,
)
from tests.sim.simclock import SimTime

MIN_VARIANTS = 8
MAX_VARIANTS = 20
MIN_STEPS = 8
MAX_STEPS = 18
SETTLE_CYCLES = 16
SETTLE_STEP = 60.0
"""Cycles allowed to converge after healing, one every ``SETTLE_STEP`` simulated
seconds (enough to outlast the HTTP layer's 300 s cooldown of a rejected API key);
two quiet ones in a row end it."""
POLL_INTERVAL = 30.0
WALL_STEPS = os.environ.get("SYNCD_SIM_WALL_STEPS", "1") not in ("", "0")
"""Step syncd's wall clock back and forward (on unless ``SYNCD_SIM_WALL_STEPS=0``)."""
STEPS = (
    ("world", 40),
    ("cycle", 22),
    ("poll", 5),
    ("push", 4),
    ("clock", 9),
    ("wall", 4 if WALL_STEPS else 0),
    ("net", 7),
    ("sim_fault", 3),
    ("revoke", 2),
    ("crash", 7),
    ("restart", 1),
    ("readback", 3),
    ("backup", 2),
    ("restore", 2),
    ("wal_loss", 1),
)
"""Step kinds and their weights: mostly the world moving and syncd cycling, with
faults, clock jumps, crashes, clean restarts and damaged ledgers in between."""
FINAL_WAIT = 301.0
"""Simulated seconds between healing and the one cycle after the last event: long
enough to outlast the HTTP layer's 300 s cooldown of a rejected API key."""
ANKORSTORE_ORDER_EVENTS = frozenset({"ankorstore_place", "ankorstore_advance", "ankorstore_flash"})
"""World events that only move Ankorstore orders (invariant 8 in checks.py)."""
_STALE = re.compile(r"stale source\(s\): ([^;]*)")
HOLD_CONFIRM_SHARE = 0.7
"""How often the simulated operator confirms a held cycle during the run (always at the end)."""


def reproduce_command(seed: int, *, strict: bool = False) -> str:
    """The one line that replays ``seed`` with its full trace."""
    env = "SYNCD_SIM_STRICT=1 " if strict else ""
    return f"PYTHONHASHSEED=0 {env}SYNCD_SIM_SEED={seed} .venv/bin/pytest tests/sim -k seed -s"


class SimulationFailure(AssertionError):
    """A seed broke an invariant or did not converge; the message says how to replay it."""

    def __init__(self, seed: int, problem: str, trace: list[str]) -> None:
        tail = "\n".join(f"  {line}" for line in trace[-40:])
        super().__init__(
            f"simulation seed {seed} failed: {problem}\n"
            f"last steps:\n{tail}\n"
            f"reproduce: {reproduce_command(seed, strict=strict())}"
        )
        self.seed = seed
        self.problem = problem


@dataclass(slots=True)
class SimReport:
    """What one seed did, for the soak summary and the determinism test."""

    seed: int
    variants: int
    steps: int
    crashes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    writes: int = 0
    settle_cycles: int = 0
    unparked: int = 0
    final: dict[tuple[str, str], int] = field(default_factory=dict)
    known: dict[str, list[str]] = field(default_factory=dict)
    """Known issues met (id -> what was seen); see known.py."""
    trace: list[str] = field(default_factory=list)
    traffic: list[str] = field(default_factory=list)
    """Every request syncd made and its outcome (only when recording, see Simulation)."""
    ledger: list[str] = field(default_factory=list)
    """Every row of the final ledger file (only when recording): see :func:`dump_ledger`."""

    def recording(self) -> bytes:
        """The trace, traffic and ledger as one byte string: what a replay must reproduce."""
        return "\n".join([*self.trace, "--", *self.traffic, "--", *self.ledger]).encode()


@dataclass(slots=True)
class _Process:
    """One running syncd: its ledger connection and everything assembled around it."""

    ledger: CrashingLedger
    assembly: Assembly
    scheduler: Scheduler


class Simulation:
    """One seed (see the module docstring)."""

    def __init__(
        self,
        seed: int,
        directory: Path,
        *,
        drift_policy: str | None = None,
        record: bool = False,
    ) -> None:
        """``record``: keep the network's traffic and the final ledger in the report."""
        self.seed = seed
        # Not for security: the seed is the whole point.
        self.rng = random.Random(seed)
        self.directory = directory
        self.time = SimTime(seed=seed)
        self.world = self._world()
        self.world.urls = {api: f"https://{api}.sim" for api in APIS}
        # Half the seeds run the shipped default (a higher number is corrected at
        # once, a lower one reported), a quarter each overwrite and report.
        drawn = self.rng.choices(("protect", "overwrite", "report"), (2, 1, 1))[0]
        self.drift_policy = drift_policy or drawn
        self.config: Config = load_config(self._write_config(directory))
        self.apps = _apps(self.world)
        self.crash = CrashPlan()
        self.network = Network(self.world, self.time, self.crash, traffic=[] if record else None)
        self.driver = WorldDriver(self.world, self.rng)
        self.invariants = Invariants(self.world, self.network, self.driver)
        self.report = SimReport(seed=seed, variants=len(self.world.catalog.variants), steps=0)
        self._process: _Process | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._settling = False
        self._verified: set[str] = set()
        """Channels whose start-up read-back succeeded in the running process."""
        self._backup: Path | None = None
        self._read_ok: dict[str, float] = {}
        """Source -> monotonic time its last successful poll ended (any process)."""
        self._read_ok_here: dict[str, float] = {}
        """Source -> monotonic time its last successful poll in this process began."""

    def _world(self) -> SandboxWorld:
        rng = self.rng
        catalog = generate_catalog(
            rng.randint(MIN_VARIANTS, MAX_VARIANTS),
            seed=self.seed,
            bundle_share=rng.choice((0.1, 0.2, 0.3)),
            pack_share=0.25,
            prepacks=3,
        )
        clock = self.time.sim
        return SandboxWorld(
            catalog=catalog,
            clock=clock,
            # Both documented readings of a refused bulk write (all-or-nothing or not).
            ankorstore=AnkorstoreState(catalog, clock=clock, atomic_operations=rng.random() < 0.5),
            activeants=ActiveAntsState(catalog, clock=clock, rate_limit=600),
            fabric=FabricState(catalog, clock=clock, rate_limit=600),
            fashiontrade=FashionTradeState(catalog, clock=clock),
            faults={api: FaultPlan(api) for api in APIS},
        )

    def _write_config(self, directory: Path) -> Path:
        path = self.world.write_config(
            directory, poll_interval=POLL_INTERVAL, cycle_interval=POLL_INTERVAL
        )
        text = path.read_text(encoding="utf-8")
        for channel in ("ankorstore", "fabric"):
            section = f"[channels.{channel}]\n"
            assert section in text, f"the sandbox config has no {section!r}"
            text = text.replace(section, f'{section}drift_policy = "{self.drift_policy}"\n')
        path.write_text(text, encoding="utf-8")
        return path

    # --- the run -------------------------------------------------------------------

    async def __aenter__(self) -> Simulation:
        """Start syncd (a fresh ledger file) on the simulation's timeline."""
        stack = contextlib.AsyncExitStack()
        stack.push_async_callback(self._stop)
        self._stack = stack
        await self._spawn()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def run(self) -> SimReport:
        """The whole seed: random steps, invariants after each, one poll, settle, compare."""
        async with self:
            steps = self.rng.randint(MIN_STEPS, MAX_STEPS)
            self.report.steps = steps
            for number in range(steps):
                await self._step(number)
                await self.check(f"after step {number}")
            await self.one_poll()
            await self.settle()
            await self.compare()
            if self.network.traffic is not None:
                self.report.traffic = self.network.traffic
                self.report.ledger = dump_ledger(self._ledger_path)
        self.report.requests = self.network.requests
        self.report.writes = self.network.writes_applied
        self.report.faults = Counter(self.network.fired)
        return self.report

    def fail(self, problem: str) -> SimulationFailure:
        return SimulationFailure(self.seed, problem, self.report.trace)

    def note(self, line: str) -> None:
        elapsed = self.time.fake.monotonic() - 1_000.0
        self.report.trace.append(f"[{elapsed:7.0f}s] {line}")

    async def check(self, when: str) -> None:
        """Every invariant of checks.py, now; raises :class:`SimulationFailure`."""
        problems = await self.invariants.check(self._proc.ledger, self._proc.assembly.engine)
        if problems:
            raise self.fail(f"{when}: " + "; ".join(problems[:5]))

    # --- syncd processes ---------------------------------------------------------------

    @property
    def ledger(self) -> CrashingLedger:
        """The running syncd's ledger."""
        return self._proc.ledger

    @property
    def _proc(self) -> _Process:
        assert self._process is not None, "syncd is not running"
        return self._process

    async def _spawn(self) -> None:
        # One clock for the whole process, as `syncd run` opens the ledger with its own.
        clock = self.time.fake
        ledger = await CrashingLedger.open_with(self.config.daemon.database, self.crash, clock)
        transports: dict[str, httpx.AsyncBaseTransport] = {
            api: self.network.transport(api, app) for api, app in self.apps.items()
        }
        assembly = assemble(self.config, ledger, clock=clock, transports=transports)
        assembly.sources = [TimedSource(source, self) for source in assembly.sources]
        # The daemon's scheduler, for its drift read-back (its loops never run here);
        # its time and jitter come from the assembly's clock.
        scheduler = Scheduler(assembly, Metrics(), cycle_interval=POLL_INTERVAL)
        self._process = _Process(ledger=ledger, assembly=assembly, scheduler=scheduler)
        self._verified = set()
        self._read_ok_here = {}
        # The daemon reads every channel back before it pushes anything to it.
        for channel in sorted(assembly.channels):
            await self._verify(channel)

    @staticmethod
    async def _feed(ledger: Ledger, name: str) -> FeedState | None:
        return next((f for f in await ledger.feed_states() if f.feed == name), None)

    async def _verify(self, channel: str) -> bool:
        """The start-up read-back of ``channel``; False (nothing pushed yet) when it fails."""
        try:
            await self._proc.scheduler.read_back(channel, startup=True)
        except Exception:  # the daemon's loop logs it and tries again
            return False
        self._verified.add(channel)
        self.invariants.rewound.discard(channel)
        # Every acknowledgement now matches the channel: it was, or was corrected.
        for sku in self.world.catalog.published(channel):
            value = self._written(channel, sku)
            if value is not None:
                self.network.note_sighting(channel, sku, value)
        return True

    def _written(self, channel: str, sku: str) -> int | None:
        """The field syncd writes, as the channel holds it now."""
        if channel == "ankorstore":
            return self.world.ankorstore.listing(sku).stock_quantity
        return self.world.fabric.item(sku).inventory

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # Closing only releases in-memory clients; nothing the next process sees
        # depends on it, and a failure here must not mask the run's own result.
        with contextlib.suppress(Exception):
            await process.assembly.aclose()
        await process.ledger.close()

    async def restart(self, why: str) -> None:
        """Abandon the process (nothing of it runs again) and start a fresh one."""
        self.note(f"restart after {why}")
        await self._stop()
        await self._spawn()

    async def guarded(self, action: Callable[[], Awaitable[str]]) -> str:
        """Run ``action``; a crash abandons the process and starts a new one."""
        try:
            return await action()
        except Crash as crash:
            self.report.crashes[crash.point] += 1
            await self.restart(str(crash))
            return f"crashed: {crash.point}"

    # --- one cycle, as `syncd once` runs it -----------------------------------------

    async def cycle(self) -> str:
        """Read every source, recompute, push every channel (a crash restarts syncd)."""
        return await self.guarded(self._cycle)

    async def _cycle(self, *, as_once: bool = False) -> str:
        """``as_once``: as ``syncd once`` runs it, with the second read an increase from
        zero asks for (``confirm_increase_after_zero``) before the push."""
        assembly = self._proc.assembly
        await read_sources(assembly)
        await assembly.engine.recompute()
        channels = list(assembly.channels)
        if as_once and await needs_second_read(assembly):
            await assembly.engine.note_pending_computed()
            await read_sources(assembly)
            await assembly.engine.recompute()
        if as_once:
            # The daemon pushes every channel at once; one after the other, a channel
            # whose increases wait for its own order feed (fabric: two polls at most)
            # goes first, before a slow push elsewhere makes that read look overdue.
            channels.sort(key=lambda name: not assembly.channels[name].lowers_on_order)
        parts = [await self._push(channel) for channel in channels]
        self.invariants.caught_up = await self._caught_up()
        return "cycle: " + ", ".join(parts)

    async def _caught_up(self) -> bool:
        """Every source read, every Ankorstore value acknowledged (invariant 8)."""
        ledger = self._proc.ledger
        if "ankorstore" not in self._verified:
            return False
        failing = {state.feed for state in await ledger.feed_states() if state.last_error}
        sources = {source.name for source in self._proc.assembly.sources}
        if failing or not sources <= self._read_ok.keys():
            return False
        rows = await ledger.outbox_rows("ankorstore")
        if not all(
            row.status == "acknowledged" and row.acknowledged == row.desired for row in rows
        ):
            return False
        reservations = await ledger.open_reservations()
        self.invariants.accounted = {r.order_ref for r in reservations if r.channel == "ankorstore"}
        return True

    async def _push(self, channel: str) -> str:
        if channel not in self._verified and not await self._verify(channel):
            return f"{channel} waits for its start-up read-back"
        engine = self._proc.assembly.engine
        cycle = await self._push_once(channel)
        if cycle.held_id is not None and (self._settling or self.rng.random() < HOLD_CONFIRM_SHARE):
            await engine.confirm(channel, cycle.held_id)
            cycle = await self._push_once(channel)
        rounds = 1
        while cycle.deferred and rounds < 20:
            # The rate budget is spent: let simulated time pass, as the daemon would.
            rounds += 1
            self.time.advance(5.0)
            cycle = await self._push_once(channel)
        return _describe(cycle)

    async def _push_once(self, channel: str) -> ChannelCycle:
        """One push round, and the staleness rule: judged on monotonic time, whatever the wall."""
        engine = self._proc.assembly.engine
        now = self.time.fake.monotonic()
        writes = self.network.applied_by_channel[channel]
        cycle = await engine.push_channel(channel)
        feeds = engine.feeds_for(channel)
        if self.network.applied_by_channel[channel] > writes:
            stale = [
                feed.name
                for feed in feeds
                if now - self._read_ok.get(feed.name, float("-inf")) > feed.stale_after
            ]
            if stale:
                raise self.fail(
                    f"{channel} written while {', '.join(stale)} had not been read for longer "
                    f"than stale_after (wall clock off by {self.time.fake.wall_offset:+.0f}s)"
                )
        named = _STALE.search(cycle.blocked or "")
        if named:
            blamed = {name.strip() for name in named.group(1).split(",")}
            fresh = [
                feed.name
                for feed in feeds
                if feed.name in blamed
                and now - self._read_ok_here.get(feed.name, float("-inf")) <= feed.stale_after
            ]
            if fresh:
                raise self.fail(
                    f"{channel} blocked as stale although {', '.join(fresh)} was read within "
                    f"stale_after in this process (wall clock off by "
                    f"{self.time.fake.wall_offset:+.0f}s)"
                )
        return cycle

    async def _readback(self) -> str:
        """The daemon's drift read-back of every channel (the start-up one until it succeeded)."""
        parts = []
        for channel in self._proc.assembly.channels:
            if channel not in self._verified:
                verified = await self._verify(channel)
                parts.append(f"{channel} start-up read-back {'done' if verified else 'failed'}")
                continue
            try:
                report = await self._proc.scheduler.read_back(channel)
            except Exception as exc:  # the daemon's loop logs it and tries again later
                parts.append(f"{channel} failed ({type(exc).__name__})")
                continue
            shown_now = {d.sku: d.shown for d in report.drift}
            for sku in report.corrected:
                self.network.note_sighting(channel, sku, shown_now.get(sku))
            drift = report.drift
            fixed = f" ({len(report.corrected)} corrected)" if report.corrected else ""
            parts.append(f"{channel} drift {len(drift)}{fixed}" if drift else f"{channel} clean")
        return f"read-back ({self.drift_policy}): " + ", ".join(parts)

    async def _poll_one(self) -> str:
        assembly = self._proc.assembly
        source = self.rng.choice(assembly.sources)
        try:
            result = await source.poll(assembly.ledger)
        except Exception as exc:
            return f"poll {source.name}: failed ({type(exc).__name__})"
        assembly.engine.note_source_read()
        return f"poll {source.name}: recorded {result.recorded}"

    async def _push_one(self) -> str:
        return await self.push_one(self.rng.choice(sorted(self._proc.assembly.channels)))

    async def push_one(self, channel: str) -> str:
        """Push one channel, without reading any source first."""
        return f"push {await self._push(channel)}"

    # --- steps ---------------------------------------------------------------------------

    async def _step(self, number: int) -> None:
        rng = self.rng
        # Everything takes a little time; without it a change and the read that
        # should see it could share one instant.
        self.time.advance(rng.uniform(0.2, 3.0))
        kinds, weights = zip(*STEPS, strict=True)
        kind = rng.choices(kinds, weights)[0]
        line: str | None
        if kind == "world":
            pools = warehouse_pools(self.world)
            line = self.driver.random_event()
            if self.driver.last_event not in ANKORSTORE_ORDER_EVENTS or _lowered(
                pools, warehouse_pools(self.world)
            ):
                self.invariants.caught_up = False
            if self.driver.fashiontrade_key_revoked and rng.random() < 0.3:
                line = f"{line}; {self.driver.restore_fashiontrade_key()}"
        elif kind == "cycle":
            line = await self.cycle()
        elif kind == "poll":
            line = await self.guarded(self._poll_one)
        elif kind == "push":
            line = await self.guarded(self._push_one)
        elif kind == "clock":
            seconds = rng.choice((rng.uniform(1, 60), rng.uniform(60, 600), rng.uniform(600, 2000)))
            self.time.advance(seconds)
            line = f"clock +{seconds:.0f}s"
        elif kind == "wall":
            seconds = rng.choice((-1, 1)) * rng.choice(
                (rng.uniform(5, 120), rng.uniform(600, 7200))
            )
            self.time.step_wall(seconds)
            line = f"syncd's wall clock stepped {seconds:+.0f}s"
        elif kind == "net":
            line = self._arm_network()
        elif kind == "sim_fault":
            line = self._arm_simulator()
        elif kind == "revoke":
            line = self.driver.revoke()
        elif kind == "crash":
            line = await self._crash_step()
        elif kind == "readback":
            line = await self.guarded(self._readback)
        elif kind == "backup":
            line = self.back_up()
        elif kind == "restore":
            line = await self.restore()
        elif kind == "wal_loss":
            line = await self.lose_wal()
        else:
            await self.restart("a clean stop")
            line = "restarted"
        self.note(f"step {number}: {line or 'nothing applicable'}")

    def _arm_network(self) -> str:
        rng = self.rng
        armed = []
        for _ in range(rng.randint(1, 3)):
            fault = NetFault(
                api=rng.choice(APIS),
                kind=rng.choice(NET_KINDS),
                count=rng.randint(1, 4),
                writes_only=rng.random() < 0.4,
                seconds=rng.choice((1.0, 5.0, 30.0, 120.0)),
            )
            self.network.arm(fault)
            armed.append(
                f"{fault.api}:{fault.kind}x{fault.count}{'(writes)' if fault.writes_only else ''}"
            )
        return "network faults armed: " + ", ".join(armed)

    def _arm_simulator(self) -> str:
        rng = self.rng
        api = rng.choice(APIS)
        kinds = ["status", "malformed_json"]
        if api in ("ankorstore", "activeants"):
            kinds.append("partial_page")
        if api == "ankorstore":
            kinds.append("invalid_operation")
        kind = rng.choice(kinds)
        count = rng.randint(1, 3)
        if kind == "status":
            self.world.faults[api].arm(kind, count=count, status=rng.choice((500, 502, 503)))
        elif kind == "invalid_operation":
            self.world.faults[api].arm(
                kind, count=count, path_prefix="/api/v1/operations", index=rng.randint(0, 3)
            )
        else:
            self.world.faults[api].arm(kind, count=count)
        return f"simulator fault armed: {api}:{kind}x{count}"

    async def _crash_step(self) -> str:
        point = self.rng.choice(POINTS)
        self.crash.arm(point, self.rng.randint(1, 6))
        line = await self.cycle()
        if self.crash.point is not None:
            self.crash.disarm()
            return f"crash at {point} armed, not reached; {line}"
        return line

    # --- damaged ledgers -------------------------------------------------------------

    @property
    def _ledger_path(self) -> Path:
        return Path(self.config.daemon.database)

    def back_up(self, how: str | None = None) -> str:
        """Copy the live ledger aside, as an operator's backup would.

        ``how``: ``"backup"`` (SQLite's backup API) or ``"copy"`` (checkpoint, then
        a file copy); drawn from the seed when None.
        """
        target = self.directory / "ledger-backup.db"
        target.unlink(missing_ok=True)
        live = str(self._ledger_path)
        how = how or ("backup" if self.rng.random() < 0.5 else "copy")
        if how == "backup":
            with (
                contextlib.closing(sqlite3.connect(live)) as source,
                contextlib.closing(sqlite3.connect(str(target))) as copy,
            ):
                source.backup(copy)
            how = "SQLite's backup API"
        else:
            with contextlib.closing(sqlite3.connect(live)) as conn:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                return "ledger checkpoint refused (busy): no backup"
            shutil.copyfile(live, target)
            how = "a checkpoint and a file copy"
        self._backup = target
        return f"ledger backed up ({how})"

    def _rewound(self, why: str) -> None:
        self.invariants.ledger_rewound(set(self.config.channels.enabled()))
        self.note(why)

    def _replace_ledger(self, older: Path) -> None:
        live = self._ledger_path
        for suffix in ("", "-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(older, live)

    async def restore(self) -> str:
        """Stop syncd, put the backup in place of the live ledger, start again."""
        if self._backup is None:
            return "no backup to restore"
        await self._stop()
        self._replace_ledger(self._backup)
        self._rewound("ledger restored from the backup")
        await self.restart("a restore")
        return f"ledger restored from a backup; {self._started()}"

    async def lose_wal(self) -> str:
        """The process dies and the WAL is lost: what the last checkpoint wrote survives."""
        # In WAL mode the main file changes only at a checkpoint: it holds exactly
        # what a lost -wal file would leave behind.
        survivor = self.directory / "ledger-main-file.db"
        shutil.copyfile(self._ledger_path, survivor)
        await self._stop()
        self._replace_ledger(survivor)
        survivor.unlink()
        self._rewound("ledger WAL lost")
        await self.restart("a lost WAL")
        return f"process killed, WAL lost; {self._started()}"

    def _started(self) -> str:
        channels = sorted(self.config.channels.enabled())
        verified = [c for c in channels if c in self._verified]
        return f"restarted, read back at start: {', '.join(verified) or 'none'}"

    # --- the end -------------------------------------------------------------------------

    def _heal(self) -> None:
        self.network.heal()
        for plan in self.world.faults.values():
            plan.clear()
        self.crash.disarm()
        restored = self.driver.restore_fashiontrade_key()
        if restored:
            self.note(restored)

    async def _unpark(self) -> None:
        ledger = self._proc.ledger
        for row in await ledger.outbox_rows():
            if row.status == "parked":
                self.note(f"operator unparks {row.channel}/{row.sku}: {row.reason}")
                await ledger.unpark(row.channel, row.sku)
                self.report.unparked += 1

    async def one_poll(self) -> None:
        """After the last event, one cycle must bring every channel to the oracle's value.

        Faults are healed, parked items unparked and the HTTP layer's cooldowns
        outlasted first; the cycle is what ``syncd once`` does: read every
        source, recompute (and read again when an increase from zero asks for
        its second consistent read), push (a restarted syncd reads its channels
        back before that, as always).
        """
        self._settling = True
        self._heal()
        await self._unpark()
        self.time.advance(FINAL_WAIT)
        line = await self._cycle(as_once=True)
        self.note(f"one poll after the last event: {line}")
        await self.check("after the one poll that follows the last event")
        await self.compare(one_poll=True)

    async def settle(self) -> None:
        """Heal everything, then run cycles until two in a row change nothing.

        "Nothing" means: no write reached a channel, no outbox row is pending
        and every source's last poll succeeded (a source still failing -- an
        API key in its cooldown after a rejection -- is not settled yet).
        """
        self._settling = True
        self._heal()
        await self._unpark()
        quiet = 0
        for number in range(1, SETTLE_CYCLES + 1):
            self.time.advance(SETTLE_STEP)
            writes = self.network.writes_applied
            # Nothing is armed: a crash here would be a bug, not a simulated one.
            line = await self._cycle()
            line = f"{line}; {await self._readback()}"
            self.note(f"settle {number}: {line}")
            await self.check(f"after settle cycle {number}")
            pending = 0
            for channel in self._proc.assembly.channels:
                pending += len(await self._proc.ledger.pending(channel))
            failing = [f.feed for f in await self._proc.ledger.feed_states() if f.last_error]
            calm = not pending and not failing and writes == self.network.writes_applied
            quiet = quiet + 1 if calm else 0
            if quiet >= 2:
                self.report.settle_cycles = number
                return
        raise self.fail(f"did not settle within {SETTLE_CYCLES} cycles after healing")

    async def compare(self, *, one_poll: bool = False) -> None:
        """Every channel must show what the oracle computes from the simulators.

        ``one_poll``: right after the one cycle that follows the last event.
        """
        ledger = self._proc.ledger
        problems = await superseded_sends(ledger)
        rows = {(r.channel, r.sku): r for r in await ledger.outbox_rows()}
        for (channel, sku), outbox in sorted(rows.items()):
            # ARCHITECTURE invariant 5: every number can be explained from the ledger.
            explanation = await ledger.explanation(channel, sku)
            if explanation is None or explanation.get("result") != outbox.desired:
                problems.append(f"{channel}/{sku}: desired {outbox.desired} unexplained")
        want = expected(self.world)
        have = shown(self.world)
        # Every handed-over order still reserving: the documented undersell until a
        # handover is confirmed and the warehouse read again (syncd/sources/handover.py).
        unconfirmed = offers(self.world, open_orders(self.world, keep_handed_over=ALL_CHANNELS))
        for key in sorted(want):
            if have.get(key) == want[key]:
                continue
            row = rows.get(key)
            ledger_view = (
                f"outbox desired {row.desired}, acknowledged {row.acknowledged}, {row.status}"
                if row is not None
                else "no outbox row"
            )
            line = f"shows {have.get(key)}, oracle says {want[key]} ({ledger_view})"
            issue = self._known_final(key, row, want[key], have.get(key), one_poll=one_poll)
            if issue is None and one_poll and unconfirmed[key] <= have.get(key, -1) < want[key]:
                issue = HANDOVER_PENDING
            if issue is not None and self.invariants.note_known(issue, key, line):
                continue
            problems.append(f"{key[0]}/{key[1]} {line}")
        self.report.known = {k: list(v) for k, v in self.invariants.known.items()}
        if problems:
            when = "one poll after the last event" if one_poll else "after settling"
            raise self.fail(f"{when}: " + "; ".join(problems[:8]))
        self.report.final = have

    def _known_final(
        self,
        key: tuple[str, str],
        row: OutboxRow | None,
        want: int,
        have: int | None,
        *,
        one_poll: bool,
    ) -> KnownIssue | None:
        """A final mismatch explained by known.py, or None.

        CHANNEL_MOVED (a documented undersell): syncd computed the oracle's
        number, the channel held it when the write landed, and the channel's
        own orders lowered it since. ``protect`` and ``report`` only report a
        lower number; ``overwrite`` corrects it after a second sighting, so
        under ``overwrite`` it is excused one poll after the last event only.
        """
        tainted = self.invariants.tainted.get(key)
        if tainted:
            return KNOWN[min(tainted)]
        # What syncd may believe the channel holds: its last applied write, or what a
        # later read-back saw (the start-up read-back corrects acknowledgements).
        believed = self.network.believed(key)
        if (
            (one_poll or self.drift_policy != "overwrite")
            and have is not None
            and have < want
            and row is not None
            and believed is not None
            and row.sellable == want
            and row.acknowledged == row.desired
            and believed[0] == row.acknowledged
            and self._own_orders_moved(key, believed[0], since=believed[1])
        ):
            return CHANNEL_MOVED
        return None

    def _own_orders_moved(self, key: tuple[str, str], written: int | None, *, since: float) -> bool:
        """Did the channel's own orders lower what it holds since it held ``written``?"""
        channel, sku = key
        if channel == "ankorstore":
            # Ankorstore lowers stockQuantity itself when it ships an order; an order
            # it merely holds or releases is subtracted or given back by Ankorstore
            # and is never a reason to show less.
            stock = self.world.ankorstore.listing(sku).stock_quantity
            return stock is not None and written is not None and stock < written
        item = self.world.fabric.item(sku)
        return any(
            order.ordered_at >= since and line.inventory_id == item.inventory_id
            for order in self.world.fabric.orders.values()
            for line in order.lines
        )


class TimedSource:
    """A syncd source as the harness sees it: every poll noted on monotonic time.

    Delegates everything to the wrapped source (its name, locations, ages and
    polls are syncd's own); the harness only learns when a read succeeded, for
    its independent staleness check (:meth:`Simulation._push_once`).
    """

    def __init__(self, source: Source, sim: Simulation) -> None:
        self.wrapped = source
        self.name = source.name
        self.locations = source.locations
        self.stale_after = source.stale_after
        self.poll_interval = source.poll_interval
        self._sim = sim

    async def poll(self, ledger: Ledger) -> PollResult:
        sim, name = self._sim, self.name
        before = await sim._feed(ledger, name)
        began = sim.time.fake.monotonic()
        result = await self.wrapped.poll(ledger)
        after = await sim._feed(ledger, name)
        if after is None or after.last_error is None:
            # Lenient (no error left): what "not read for too long" is measured from.
            sim._read_ok[name] = sim.time.fake.monotonic()
        if after is not None and after.last_success not in (None, before and before.last_success):
            # Strict (a success recorded): what "read recently" is measured from.
            sim._read_ok_here[name] = began
        return result

    async def aclose(self) -> None:
        await self.wrapped.aclose()


def dump_ledger(path: Path) -> list[str]:
    """Every row of every table of the ledger at ``path``, one line each, in a stable order.

    OAuth access tokens are masked: the simulators mint them from the OS's
    randomness (see :func:`tests.sim.network.traffic_line`).
    """
    lines: list[str] = []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            rows = []
            for row in cursor:
                values = dict(zip(columns, row, strict=True))
                if "access_token" in values:
                    values["access_token"] = "<credential>"
                rows.append(f"{table} {values!r}")
            lines.extend(sorted(rows))
    return lines


def _apps(world: SandboxWorld) -> dict[str, Any]:
    """The simulator apps, built directly: the simulation records its own traffic."""
    return {
        "ankorstore": ankorstore.create_app(world.ankorstore, world.faults["ankorstore"]),
        "activeants": activeants.create_app(world.activeants, world.faults["activeants"]),
        "fabric": fabric.create_app(world.fabric, world.faults["fabric"]),
        "fashiontrade": fashiontrade.create_app(world.fashiontrade, world.faults["fashiontrade"]),
    }


def _lowered(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> bool:
    """Did any channel's warehouse pool go down for any SKU?"""
    return any(
        units < before.get(channel, {}).get(sku, 0)
        for channel, pool in after.items()
        for sku, units in pool.items()
    )


def _describe(cycle: ChannelCycle) -> str:
    parts = [f"{cycle.channel}"]
    if cycle.blocked:
        parts.append("blocked")
    if cycle.held_id is not None:
        parts.append(f"held#{cycle.held_id}")
    for name in ("acknowledged", "parked", "failed", "deferred", "waiting"):
        value = getattr(cycle, name)
        if value:
            parts.append(f"{name} {value}")
    return " ".join(parts)
