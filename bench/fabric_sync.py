"""fabric at its rate: how long a first sync of N SKUs takes, and that it never exceeds the rate.

The real :class:`~syncd.channels.fabric.FabricChannel` with the example
config's ``[channels.fabric]`` (``budget_share = 0.8``, ``readback =
true``) and ``[apis.fabric] requests_per_minute = 60`` pushes every SKU
once to the real fabric simulator (:mod:`syncd.sandbox.fabric`, which
answers a 61st request within any 60 s with ``429`` and ``Retry-After``).
Time is not waited out: syncd runs on a :class:`~syncd.clock.FakeClock`
and the simulator judges its rate window on the same clock, over an
in-process ASGI transport, so an hour of traffic takes seconds and the
minutes reported are the ones a real run would take.

The loop is the daemon's: the pusher asks the channel how many batches fit
(``requests_available``), sends them, and when none fits waits for the
rate limiter to free a slot (``budget_available``). The fabric order feed
shares the API's budget, polled every ``poll_interval`` (120 s) as the
daemon would. Counted: virtual minutes until every SKU is acknowledged,
requests the simulator accepted, 429s, and the most requests in any 60 s.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import anyio
import httpx
from _common import Row, load_average, progress

from syncd.channels.fabric import FabricChannel
from syncd.channels.updates import Move, PlannedUpdate
from syncd.clock import FakeClock
from syncd.config.sections import FabricChannelSection, OrderSourceSection
from syncd.http.budget import Window
from syncd.http.presets import fabric_client
from syncd.sandbox import fabric as fabric_sim
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.fabric_state import FabricState
from syncd.sandbox.faults import FaultPlan
from syncd.sandbox.limits import SimClock

NAME = "fabric_sync"
RATE = 60
"""``[apis.fabric] requests_per_minute`` in ``config/syncd.example.toml``."""
BASE = "http://fabric.bench"


class DrivenSimClock(SimClock):
    """The simulator's clock, read from syncd's fake clock: both sides share one time."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._fake = clock

    def now(self) -> float:
        return self._fake.wall()

    def advance(self, seconds: float) -> None:
        raise RuntimeError("the bench moves time through syncd's FakeClock")


@dataclass(frozen=True, slots=True)
class Sync:
    skus: int
    budget_share: float
    minutes: float
    acknowledged: int
    requests: int
    writes: int
    throttled: int
    peak_per_minute: int


def _peak(sent: list[float], seconds: float) -> int:
    best, first = 0, 0
    for i, t in enumerate(sent):
        while sent[first] <= t - seconds:
            first += 1
        best = max(best, i - first + 1)
    return best


async def first_sync(skus: int, budget_share: float) -> Sync:
    catalog = generate_catalog(skus, seed=11, channel_share=1.0, bundle_share=0.0, prepacks=0)
    # Every task reaches its own wait before time moves (the simulator runs in-process:
    # one request takes many event-loop turns).
    clock = FakeClock(start=0.0, wall_start=time.time(), settle=2_000)
    state = FabricState(catalog, clock=DrivenSimClock(clock), rate_limit=RATE)
    app = fabric_sim.create_app(state, FaultPlan("fabric"))
    accepted: list[float] = []
    throttled = 0

    async def counted(scope: object, receive: object, send: object) -> None:
        nonlocal throttled

        async def watch(message: dict[str, object]) -> None:
            nonlocal throttled
            if message.get("type") == "http.response.start":
                if message.get("status") == 429:
                    throttled += 1
                else:
                    accepted.append(clock.monotonic())
            await send(message)  # type: ignore[operator]

        await app(scope, receive, watch)  # type: ignore[arg-type]

    client = fabric_client(
        base_url=BASE,
        token_url=f"{BASE}/auth/token/",
        client_id=state.client_id,
        client_secret=state.client_secret,
        clock=clock,
        windows=(Window(RATE, 60.0),),
        transport=httpx.ASGITransport(app=counted),  # type: ignore[arg-type]
    )
    model = catalog.to_model()
    section = FabricChannelSection(locations=["activeants"], budget_share=budget_share)
    channel = FabricChannel(
        client,
        model,
        section,
        brand_id=str(state.brand_id),
        retailer_id=str(state.retailer_id),
        clock=clock,
    )
    published = sorted(catalog.published("fabric"))
    pending = [
        PlannedUpdate(sku=sku, quantity=5, seq=1, previous=None, move=Move.UNKNOWN)
        for sku in published
    ]
    acknowledged = 0
    orders_path = f"/v1/brands/{state.brand_id}/orders/"
    poll_every = float(OrderSourceSection.model_fields["poll_interval"].default)

    async def order_feed() -> None:
        while True:
            await client.get_json(orders_path, params={"status": "open"})
            await clock.sleep(poll_every)

    started = clock.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(order_feed)
        while pending:
            batches = channel.requests_available()
            if batches == 0:
                await channel.budget_available()
                continue
            take = batches * channel.per_request
            round_, pending = pending[:take], pending[take:]
            for start in range(0, len(round_), channel.per_request):
                result = await channel.push(round_[start : start + channel.per_request])
                acknowledged += len(result.acknowledged)
                pending += [u for u, _ in result.failed]
        minutes = (clock.monotonic() - started) / 60.0
        tg.cancel_scope.cancel()
    await client.aclose()
    writes = sum(state.counters.snapshot()["writes"].values())
    return Sync(
        skus=len(published),
        budget_share=budget_share,
        minutes=minutes,
        acknowledged=acknowledged,
        requests=len(accepted),
        writes=writes,
        throttled=throttled,
        peak_per_minute=_peak(sorted(accepted), 60.0),
    )


def _row(sync: Sync, label: str) -> Row:
    share = math.floor(RATE * sync.budget_share)
    expected = sync.skus / share
    shipped = sync.budget_share < 1.0
    met = (
        sync.acknowledged == sync.skus
        and sync.throttled == 0
        and sync.peak_per_minute <= RATE
        and sync.minutes <= 1.1 * expected
    )
    return Row(
        f"fabric first sync of {sync.skus:,} SKUs at {RATE} requests/min, {label}",
        f"{sync.minutes:.1f} min ({sync.acknowledged:,} acknowledged; {sync.requests:,} requests: "
        f"{sync.writes:,} writes + {sync.requests - sync.writes:,} reads; "
        f"{sync.throttled} x 429; at most {sync.peak_per_minute} in any 60 s)",
        f"about N / rate = {expected:.1f} min at {share}/min" + ("" if shipped else " (info)"),
        met if shipped else None,
        values={
            "minutes": sync.minutes,
            "requests": float(sync.requests),
            "throttled": float(sync.throttled),
            "peak_per_minute": float(sync.peak_per_minute),
        },
    )


async def run(quick: bool) -> list[Row]:
    skus = 300 if quick else 3000
    rows = []
    for share, label in ((0.8, "shipped budget_share 0.8"), (1.0, "budget_share 1.0")):
        wall = time.monotonic()
        sync = await first_sync(skus, share)
        progress(
            NAME, f"{label}: {sync.minutes:.1f} virtual min in {time.monotonic() - wall:.0f} s"
        )
        rows.append(_row(sync, label))
    rows[0].notes.append(
        "virtual time (FakeClock, the simulator's rate window on the same clock); "
        "with budget_share 1.0 the token request, which the simulator counts against "
        "the same 60/min and syncd's limiter does not, can draw one 429 (waited out); "
        f"load average {load_average()}"
    )
    return rows
