"""Throughput: variant updates per minute pushed to Ankorstore, against 600 req/min x 50.

The real path with the pipe kept full: a catalog larger than the run can
push gets new stock levels in the ledger, the engine recomputes, and the
push loop does what the daemon's pusher does -- one ``push_channel`` round
(the rate budget decides how many batches), and, when the budget deferred
work, a wait until the channel's limiter frees a slot
(``Channel.budget_available``, what the pusher waits on).

**How the rate is measured.** The simulator admits at most 600 requests in
any sliding 60 s, so a burst at the start of a run would inflate a plain
"updates / elapsed" figure. Instead, for every API request ``i`` after the
first 600, the 600 requests ending at ``i`` took ``t[i] - t[i-600]``
seconds and carried ``U`` operations: the sustained rate is ``U`` over that
span. A client at the ceiling needs exactly 60 s per 600 requests of 50
operations (30 000 updates per minute). The table reports the mean over
every such span of the run (reads count as requests carrying nothing).

Scenarios (each its own simulator, clients and ledger), each after the
start-up read-back every run of syncd begins with (the daemon's pusher and
`syncd once` send nothing before it; it also tells the channel every
variant's pack and always-in-stock flag, so no write needs a read first):

- ``budget_share = 1.0`` (the channel may spend the whole budget -- nothing
  else uses the Ankorstore API during the run), everything else default;
- informational: the shipped defaults (``budget_share = 0.8``);
- informational: ``budget_share = 1.0`` with the channel cold (no read-back:
  every batch's first write of a variant is preceded by one ``filter[id][]``
  read), which no run of syncd does any more.

``--quick`` runs the first scenario only, for a few seconds, with both the
simulator's and syncd's windows scaled to 10 requests per second (the same
600/min ceiling) so the sustained spans fit in seconds.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import push_round
from _common import Row, failed_row, progress
from _rig import (
    ANKORSTORE_CEILING_PER_MIN,
    PERMISSIVE,
    Exchange,
    TrafficLog,
    activeants_snapshot,
    rule_for,
    sandbox,
    set_in_section,
)

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.engine import Engine
from syncd.http.budget import Window
from syncd.http.presets import with_slack
from syncd.http.ratelimit import RateLimiter
from syncd.integrations import build_channels
from syncd.ledger.store import Ledger
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.limits import SlidingWindows
from syncd.sandbox.limits import Window as SimWindow
from syncd.sandbox.world import SandboxWorld

NAME = "throughput"
TARGET = 0.95
QUICK_SCALE = 60
"""``--quick``: rate windows this many times shorter (same requests per second)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    label: str
    budget_share: float | None
    warm: bool
    counted: bool


SCENARIOS = (
    Scenario("budget_share=1.0, defaults otherwise", 1.0, warm=True, counted=True),
    Scenario("shipped defaults (budget_share=0.8)", None, warm=True, counted=False),
    Scenario("budget_share=1.0, cold: no start-up read-back", 1.0, warm=False, counted=False),
)


@dataclass(frozen=True, slots=True)
class Measured:
    per_minute: float
    spans: int
    requests: int
    reads: int
    updates: int
    rate_limited: int
    seconds: float


def sustained_rate(calls: list[Exchange], window: int) -> tuple[float, int]:
    """Mean updates per minute over every run of ``window`` consecutive requests."""
    rates = []
    for i in range(window, len(calls)):
        span = calls[i].at - calls[i - window].at
        updates = sum(c.operations for c in calls[i - window + 1 : i + 1] if c.status < 300)
        if span > 0:
            rates.append(updates / span * 60.0)
    return (sum(rates) / len(rates) if rates else math.nan), len(rates)


async def _measure(scenario: Scenario, quick: bool, tmp: Path) -> Measured:
    # The simulator's window admits 600 requests at once and 600 more a minute
    # later: 90 s at the ceiling can carry 1 200+ requests of 50, so the
    # catalog must hold more than 60 000 changes or the pipe runs dry.
    variants = 3_000 if quick else 120_000
    duration = 4.0 if quick else 90.0
    scale = QUICK_SCALE if quick else 1
    per_window = 600 // scale
    catalog = generate_catalog(
        variants, seed=5, channel_share=1.0, bundle_share=0.0, prepacks=0, pack_share=0.0
    )
    world = SandboxWorld.create(catalog=catalog)
    if quick:
        world.ankorstore.rate = SlidingWindows(
            [SimWindow(per_window, 60.0 / scale, "minute")], world.clock
        )

    def edit(toml: str) -> str:
        if scenario.budget_share is not None:
            toml = set_in_section(toml, "channels.ankorstore", "budget_share", "1.0")
        return toml

    async with sandbox(tmp, world, edit=edit) as rig:
        client = rig.clients.get("ankorstore")
        assert client is not None
        if quick:
            client.limiter = RateLimiter(
                with_slack([Window(per_window, 60.0 / scale)], 2.0 / scale),
                clock=rig.clock,
                name="ankorstore",
            )
        traffic = TrafficLog()
        traffic.attach(client.http)
        channel = build_channels(rig.config, rig.clients, rig.clock)["ankorstore"]
        assert isinstance(channel, AnkorstoreChannel)
        async with await Ledger.open(tmp / "ledger.db") as ledger:
            engine = Engine(
                ledger,
                rig.config.catalog_model(),
                [rule_for(rig.config, "ankorstore")],
                {"ankorstore": channel},
                policies={"ankorstore": PERMISSIVE},
                feeds=[],
            )
            skus = [v.sku for v in catalog.variants]
            levels = {sku: 50 + i % 500 for i, sku in enumerate(skus)}
            await ledger.record_snapshot(activeants_snapshot("levels", levels))
            await engine.recompute()
            if scenario.warm:
                # The start-up read-back is not what is measured: it runs with the
                # rate limits lifted (on both sides), then both start afresh, as
                # if its requests had left the windows.
                limits, sim_rate = client.limiter.windows, world.ankorstore.rate
                unlimited = [Window(10**9, 60.0)]
                client.limiter = RateLimiter(unlimited, clock=rig.clock, name="ankorstore")
                world.ankorstore.rate = SlidingWindows(
                    [SimWindow(10**9, 60.0, "minute")], world.clock
                )
                await channel.read_live()
                client.limiter = RateLimiter(limits, clock=rig.clock, name="ankorstore")
                world.ankorstore.rate = SlidingWindows(list(sim_rate.windows), world.clock)
            first = len(traffic.exchanges)
            progress(NAME, f"{scenario.label}: pushing for {duration:g} s")
            started = time.monotonic()
            deadline = started + duration
            while time.monotonic() < deadline:
                cycle = await engine.push_channel("ankorstore", max_rounds=1)
                if cycle.pending == 0:
                    raise RuntimeError("the pipe ran dry: make the catalog larger")
                if cycle.deferred or cycle.requests == 0:
                    # As the daemon's pusher: go again the moment a rate slot is free.
                    with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                        await channel.budget_available()
            seconds = time.monotonic() - started
        calls = traffic.api_calls(first)
        per_minute, spans = sustained_rate(calls, per_window)
        if not spans and seconds > 0:
            # Fewer requests than one window holds (a starved quick run): the plain rate.
            per_minute = sum(c.operations for c in calls if c.status < 300) / seconds * 60.0
        return Measured(
            per_minute=per_minute,
            spans=spans,
            requests=len(calls),
            reads=sum(1 for c in calls if c.method == "GET"),
            updates=sum(c.operations for c in calls if c.status < 300),
            rate_limited=world.ankorstore.counters.rate_limited,
            seconds=seconds,
        )


async def run(quick: bool) -> list[Row]:
    # The cost of one round with a deep queue first: it is what caps the rate below.
    rows = await push_round.run(quick)
    for scenario in SCENARIOS[:1] if quick else SCENARIOS:
        label = f"throughput, {scenario.label}"
        try:
            with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
                m = await _measure(scenario, quick, Path(tmp))
        except Exception as exc:  # one scenario failing must not hide the others' numbers
            failed = failed_row(label, f"{type(exc).__name__}: {exc}")
            rows.append(failed if scenario.counted else replace(failed, met=None))
            continue
        ratio = m.per_minute / ANKORSTORE_CEILING_PER_MIN
        met = ratio >= TARGET and m.rate_limited == 0
        rows.append(
            Row(
                label,
                f"{ratio:.2f} ({m.per_minute:,.0f} updates/min of 30,000; {m.rate_limited} x 429)",
                ">= 0.95, zero 429",
                met if scenario.counted else None,
                notes=[
                    f"{m.seconds:.0f} s of pushing, {m.requests} requests ({m.reads} reads), "
                    f"{m.updates} updates; mean over {m.spans} spans of "
                    f"{600 // (QUICK_SCALE if quick else 1)} consecutive requests"
                ],
                values={"ratio": ratio, "per_minute": m.per_minute, "rate_limited": m.rate_limited},
            )
        )
    return rows
