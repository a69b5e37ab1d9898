"""`[daemon] metrics_port`: the same counters as the status socket, as Prometheus text on loopback."""

from __future__ import annotations

import socket

import httpx
import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import daemon, short_dir, wait_until, write_config

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_configured_metrics_port_serves_prometheus_text_on_loopback() -> None:
    world = SandboxWorld.create(variants=20, seed=11)
    port = _free_port()
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        text = config.read_text(encoding="utf-8")
        config.write_text(
            text.replace("[daemon]\n", f"[daemon]\nmetrics_port = {port}\n", 1), encoding="utf-8"
        )
        with daemon(config, directory) as process:
            wait_until(process.answers, what="the daemon")
            wait_until(process.settled, timeout=20, what="first publication")

            def scraped() -> str:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    return ""

            wait_until(lambda: "syncd_pushes" in scraped(), what="the metrics endpoint")
            body = scraped()
            counters = process.ask({"cmd": "metrics"})["counters"]
            assert process.stop()[0] == 0
    series = dict(line.rsplit(" ", 1) for line in body.splitlines() if not line.startswith("#"))
    assert "# TYPE syncd_pushes_total counter" in body
    # Both channels pushed, and the scrape agrees with the status socket's counters.
    for channel in ("ankorstore", "fabric"):
        scraped_pushes = float(series[f'syncd_pushes_total{{channel="{channel}"}}'])
        assert scraped_pushes > 0
        assert scraped_pushes <= counters[f'pushes{{channel="{channel}"}}']
