"""`syncd run` end to end: systemd notifications, reloads, a clean stop, a restart, one instance.

One daemon subprocess against the sandbox simulators goes through a whole
life: READY/STATUS/WATCHDOG, a second instance refused, a SIGHUP with a
good config (the new fabric buffer is published), a SIGHUP with a bad one
(rejected and logged, the old config keeps running), a stock change and a
SIGTERM while it may be in flight, then a restart that must converge the
channels to exactly what the ledger says they should show.
"""

from __future__ import annotations

import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    POLL_S,
    daemon,
    notify_socket,
    set_channel_keys,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=40, seed=5)
    with sandbox.threaded():
        yield sandbox


def fabric_values(world: SandboxWorld) -> dict[str, int]:
    return {sku: world.fabric.inventory(sku) for sku in world.catalog.published("fabric")}


async def ledger_view(path: Path) -> tuple[dict[str, int], int, dict[str, dict[str, int]]]:
    """Desired fabric values, rows still pending on any channel, explanation inputs."""
    async with await Ledger.open(path) as ledger:
        desired = {row.sku: row.desired for row in await ledger.outbox_rows("fabric")}
        pending = len(await ledger.pending("fabric")) + len(await ledger.pending("ankorstore"))
        inputs = {}
        for sku in desired:
            stored = await ledger.explanation("fabric", sku)
            inputs[sku] = dict((stored or {}).get("inputs", {}))
    return desired, pending, inputs


def test_a_daemon_lifetime(world: SandboxWorld) -> None:
    with short_dir() as directory, notify_socket(directory) as notify:
        config = write_config(world, directory)
        database = directory / "ledger.db"
        with daemon(config, directory, notify=notify.path) as first:
            wait_until(lambda: notify.saw("READY=1"), what="READY=1")
            assert first.answers()
            assert stat.S_IMODE(first.socket.stat().st_mode) == 0o660
            wait_until(lambda: notify.saw("WATCHDOG=1"), what="WATCHDOG=1")
            wait_until(first.settled, what="first publication")
            wait_until(lambda: notify.saw("STATUS=ok: 5 sources fresh"), what="STATUS=ok")
            before = fabric_values(world)

            second = subprocess.run(
                [sys.executable, "-m", "syncd", "run", "--config", str(config)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert second.returncode == 1
            assert f"another syncd is running on {database} (pid {first.pid})" in second.stderr
            assert first.answers()

            # SIGHUP with a good config: the new buffer is published.
            set_channel_keys(config, "fabric", "buffer = 2\n")
            first.signal(signal.SIGHUP)
            expected = {sku: max(0, value - 2) for sku, value in before.items()}
            wait_until(lambda: fabric_values(world) == expected, what="the new buffer")
            assert notify.saw("RELOADING=1")
            assert first.events("daemon.reloaded")

            # SIGHUP with a bad config: rejected with the reason, the old one runs on.
            good = config.read_text(encoding="utf-8")
            set_channel_keys(config, "fabric", "percentage = 150\n")
            first.signal(signal.SIGHUP)
            wait_until(lambda: bool(first.events("daemon.reload_rejected")), what="rejection")
            [rejected] = first.events("daemon.reload_rejected")
            assert any("channels.fabric.percentage" in p for p in rejected["problems"])
            reply = first.ask({"cmd": "status"})
            assert any(r.startswith("config reload rejected") for r in reply["reasons"])
            assert fabric_values(world) == expected
            config.write_text(good, encoding="utf-8")

            # Stock moves; stop while the change may be on its way to the channels.
            singles = [
                v.sku for v in world.catalog.variants if "fabric" in v.channels and v.at_activeants
            ]
            changed = {sku: world.activeants.product(sku).available + 7 for sku in singles[:5]}
            for sku, level in changed.items():
                world.activeants.set_stock(sku, level)
            anyio.run(anyio.sleep, POLL_S * 1.5)
            code, elapsed = first.stop()
            assert code == 0
            assert elapsed < 10
            assert notify.saw("STOPPING=1")
            assert not first.socket.exists()

        with daemon(config, directory) as again:
            wait_until(again.answers, what="the restarted daemon")

            def computed_from_the_change() -> bool:
                # A restarted daemon finds its sources' last successes in the ledger and
                # may look settled before it has read anything; the first daemon may have
                # stopped before reading the change. Wait until syncd's values are
                # computed from it, then until they are all acknowledged.
                for sku, level in changed.items():
                    reply = again.ask({"cmd": "explain", "sku": sku, "channel": "fabric"})
                    entries = reply.get("channels") or [{}]
                    if entries[0].get("inputs", {}).get("activeants/available/") != level:
                        return False
                return True

            wait_until(computed_from_the_change, what="the change read after restart")
            wait_until(again.settled, what="convergence after the restart")
            assert again.stop()[0] == 0

        desired, pending, inputs = anyio.run(ledger_view, database)
    assert pending == 0
    assert fabric_values(world) == desired  # the channel shows exactly what syncd computed
    for sku, level in changed.items():
        assert inputs[sku]["activeants/available/"] == level  # the change made it through
