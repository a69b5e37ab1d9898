"""Drift read-back through the daemon's own loops, against the sandbox over loopback.

A :class:`~syncd.daemon.scheduler.Scheduler` runs every loop of a sandbox
assembly in this process (sources, engine, pushers, read-back), as
`syncd run` does. Someone then edits stock directly on the channels; the
read-back must notice. Under ``drift_policy = "report"`` the edited value
stays and the daemon's health says so; under ``"overwrite"`` syncd's value
comes back -- but never on top of an order the channel counted first.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from syncd.daemon.api_counters import ApiCounters
from syncd.daemon.scheduler import Scheduler, readback_intervals
from syncd.daemon.service import DaemonInfo, StatusService
from syncd.model import now_utc
from syncd.sandbox.world import SandboxWorld
from syncd.status.metrics import Metrics
from tests.integration._cycle_support import Rig, rig, single_skus

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

INTERVAL = 0.25
POLL = 0.5
"""Sources poll less often than the pushers and read-backs run: they only need to keep up."""
KEYS = f"confirm_increase_after_zero = false\nreadback_interval = {INTERVAL}\n"


async def eventually(check: Callable[[], object], *, timeout: float = 30.0, what: str = "") -> None:
    """Wait until ``check()`` (sync or async) is truthy; generous, for a loaded machine."""
    try:
        with anyio.fail_after(timeout):
            while True:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what or check}") from None


@asynccontextmanager
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Rig, Scheduler]]:
    """Every loop running; fabric under ``overwrite``, Ankorstore under ``report``."""
    world = SandboxWorld.create(variants=24, seed=8)
    policies = {
        "fabric": 'drift_policy = "overwrite"\n',
        "ankorstore": 'drift_policy = "report"\n',
    }
    async with (
        world.running(),
        rig(
            world,
            tmp_path,
            channel_keys=KEYS,
            per_channel=policies,
            poll_interval=POLL,
            cycle_interval=INTERVAL,
        ) as syncd,
    ):
        scheduler = Scheduler(
            syncd.assembly,
            Metrics(),
            cycle_interval=INTERVAL,
            readback_intervals=readback_intervals(syncd.assembly),
            debounce=0.05,
        )
        async with anyio.create_task_group() as tg:
            await tg.start(scheduler.run)
            await eventually(syncd.settled, what="the first publication")
            yield syncd, scheduler
            await scheduler.drain(5.0)


def status_service(scheduler: Scheduler) -> StatusService:
    return StatusService(
        scheduler=lambda: scheduler,
        metrics=scheduler.metrics,
        api_counters=ApiCounters(),
        info=DaemonInfo(
            config_path="syncd.toml", started_at=now_utc(), started_monotonic=time.monotonic()
        ),
        cache_ttl=0.0,
    )


async def test_drift_is_reported_or_overwritten_as_each_channel_is_configured(
    tmp_path: Path,
) -> None:
    async with daemon(tmp_path) as (syncd, scheduler):
        world = syncd.world
        raised, lowered, ordered = single_skus(world, "fabric", count=3, minimum=3)
        [edited] = single_skus(world, "ankorstore", count=1, minimum=1)
        rows = await syncd.rows("fabric")
        ack = {sku: rows[sku].desired for sku in (raised, lowered, ordered)}
        assert all(rows[sku].acknowledged == ack[sku] for sku in ack)
        seq = {sku: rows[sku].seq for sku in ack}
        edited_stock = (world.ankorstore.listing(edited).stock_quantity or 0) + 40

        # Someone edits the numbers by hand on both channels, and fabric makes a sale.
        world.ankorstore.set_stock(edited, edited_stock)
        world.fabric.submit_inventory(raised, ack[raised] + 9)  # offers more than syncd allows
        world.fabric.submit_inventory(lowered, 0)  # offers less
        world.fabric.place_order({ordered: 2})  # fabric lowers its own number

        # report (Ankorstore): the read-back finds it, health says so, the edit stands.
        await eventually(
            lambda: [d.sku for d in scheduler.channels["ankorstore"].drift] == [edited],
            what="drift reported on Ankorstore",
        )
        reply = await status_service(scheduler).status()
        assert reply["health"] == "degraded"
        assert (
            "channel ankorstore: 1 variant(s) show a different number than syncd pushed"
            in reply["reasons"]
        )
        # overwrite (fabric): syncd's values come back.
        await eventually(
            lambda: (
                world.fabric.inventory(raised) == ack[raised]
                and world.fabric.inventory(lowered) == ack[lowered]
            ),
            what="syncd's values back on fabric",
        )
        await eventually(syncd.settled, what="the sale published")
        await eventually(lambda: not scheduler.channels["fabric"].drift, what="no fabric drift")
        rounds = scheduler.channels["ankorstore"].rounds
        await eventually(lambda: scheduler.channels["ankorstore"].rounds >= rounds + 3)

        assert world.ankorstore.listing(edited).stock_quantity == edited_stock
        assert [d.sku for d in scheduler.channels["ankorstore"].drift] == [edited]
        assert scheduler.metrics.get("drift_restored", channel="ankorstore") == 0
        # The restores are ordinary pushes of the unchanged value, in the push log.
        for sku in (raised, lowered):
            latest = (await syncd.ledger.push_log("fabric", sku, limit=1))[0]
            assert (latest.status, latest.quantity, latest.seq) == (
                "acknowledged",
                ack[sku],
                seq[sku],
            )
        assert scheduler.metrics.get("drift_restored", channel="fabric") >= 2
        # The sale was ingested and published as such, never overwritten with the old value.
        row = (await syncd.rows("fabric"))[ordered]
        assert row.desired == ack[ordered] - 2 == world.fabric.inventory(ordered)
        pushed = await syncd.ledger.push_log("fabric", ordered)
        assert [
            e.quantity for e in pushed if e.status == "acknowledged" and e.seq == seq[ordered]
        ] == [ack[ordered]]
