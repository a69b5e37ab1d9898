"""A running ``syncd run`` fed garbage: it keeps running, says so, and recovers.

The sandbox simulators serve on loopback (threads of this process); the
daemon is a real subprocess (tests/integration/daemon/_support.py). Once it
has published, the warehouse (Active Ants), FashionTrade and the Ankorstore
order listing start answering truncated JSON (``malformed_json`` faults)
while a stock change waits behind the garbage. Throughout, the status
socket answers; every one of the three sources shows its error and is named
as failing in the health reasons, and health is ``degraded`` -- not
``failing``: no source has been stale long enough to block a channel. When
the faults clear the sources recover on their own, the hidden change is
published, health is ``ok`` again and the ledger is sound.

(An order feed's failed listing returns a result rather than raising -- it
records the pages it did read -- and the daemon counts that as a failed
poll like any other, long before the feed goes stale.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    DaemonProcess,
    daemon,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

GARBAGE = {
    "activeants": "/v2/stock/bulk",
    "fashiontrade": "/orders",
    "ankorstore": "/api/v1/orders",
}
"""Simulator -> the path prefix whose answers are cut in half."""
FAULTED_SOURCES = {"activeants", "fashiontrade", "ankorstore_orders"}


def _erring(reply: dict[str, Any]) -> set[str]:
    """Sources whose status row shows an error."""
    return {s["name"] for s in reply["sources"] if s["last_error"]}


async def _ledger_problems(path: Path) -> list[str]:
    async with await Ledger.open(path) as ledger:
        return await ledger.check_invariants()


def test_a_daemon_fed_garbage_keeps_answering_reports_degraded_and_recovers() -> None:
    world = SandboxWorld.create(variants=16, seed=11)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        with daemon(config, directory) as running:
            wait_until(running.answers, what="the status socket")
            wait_until(running.settled, what="the first publication")
            singles = [
                v.sku for v in world.catalog.variants if "fabric" in v.channels and v.at_activeants
            ]
            sku = max(singles, key=world.fabric.inventory)
            assert world.fabric.inventory(sku) > 0

            for api, prefix in GARBAGE.items():
                world.faults[api].arm("malformed_json", count=-1, path_prefix=prefix)
            # A stock read already past the fault when it was armed could still carry the
            # change; Active Ants is read one request at a time, so once one garbage answer
            # went out, none is left in flight.
            wait_until(
                lambda: world.faults["activeants"].fired.get("malformed_json", 0) > 0,
                what="a garbage Active Ants answer",
            )
            world.activeants.set_stock(sku, 0)  # a change that only garbage carries now

            wait_until(
                lambda: _erring(running.ask({"cmd": "status"})) == FAULTED_SOURCES,
                what="the sources' errors in the status",
            )
            _still_answering(running, seconds=1.5)
            reply = running.ask({"cmd": "status"})
            assert reply["health"] == "degraded", reply["reasons"]
            assert any(
                reason.startswith("source activeants failing") and "not JSON" in reason
                for reason in reply["reasons"]
            ), reply["reasons"]
            named = {
                name
                for name in FAULTED_SOURCES
                for reason in reply["reasons"]
                if reason.startswith(f"source {name} failing")
            }
            assert named == FAULTED_SOURCES, reply["reasons"]
            assert _erring(reply) == FAULTED_SOURCES  # astral and fabric_orders go on
            assert world.fabric.inventory(sku) > 0  # nothing was read, so nothing changed

            for api in GARBAGE:
                world.faults[api].clear()
            wait_until(lambda: world.fabric.inventory(sku) == 0, what="the hidden change")
            wait_until(
                lambda: running.ask({"cmd": "status"})["health"] == "ok",
                what="health back to ok",
            )
            assert running.events("source.recovered")
            assert "Traceback" not in running.log()
            assert running.stop()[0] == 0
        assert anyio.run(_ledger_problems, directory / "ledger.db") == []


def _still_answering(running: DaemonProcess, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert running.answers()
        time.sleep(0.1)
