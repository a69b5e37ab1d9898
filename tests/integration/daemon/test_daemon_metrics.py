"""`[daemon] metrics_port`: the same counters as the status socket, as Prometheus text on loopback."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import daemon, short_dir, wait_until, write_config

pytestmark = pytest.mark.integration


def test_a_configured_metrics_port_serves_prometheus_text_on_loopback() -> None:
    world = SandboxWorld.create(variants=20, seed=11)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        text = config.read_text(encoding="utf-8")
        # Port 0: the kernel picks a free port and the daemon logs it (a port probed free
        # here could be taken by another process before the daemon binds it).
        config.write_text(
            text.replace("[daemon]\n", "[daemon]\nmetrics_port = 0\n", 1), encoding="utf-8"
        )
        with daemon(config, directory) as process:
            wait_until(process.answers, what="the daemon")
            wait_until(lambda: bool(process.events("metrics.listening")), what="metrics.listening")
            [listening] = process.events("metrics.listening")
            assert listening["host"] == "127.0.0.1"
            port = int(listening["port"])
            assert port > 0
            wait_until(process.settled, what="first publication")

            bodies: list[str] = []

            def pushes_scraped() -> bool:
                bodies.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text)
                return "syncd_pushes_total" in bodies[-1]

            wait_until(pushes_scraped, what="the pushes in the metrics")
            body = bodies[-1]
            counters = process.ask({"cmd": "metrics"})["counters"]
            assert process.stop()[0] == 0
    families = {family.name: family for family in text_string_to_metric_families(body)}
    # Every family syncd exports is described (none fell through the catalogue)...
    for family in families.values():
        assert family.documentation, family.name
        assert "not described yet" not in family.documentation, family.name
    # ...in base units, with a start time and the process's own figures.
    assert "syncd_start_time_seconds" in families
    assert "syncd_cycle_duration_seconds" in families
    assert "syncd_source_age_seconds" in families
    assert "process_open_fds" in families
    assert not any(name.endswith("_s") for name in families)
    assert families["syncd_pushes"].type == "counter"
    # Both channels pushed, and the scrape agrees with the status socket's counters.
    pushes = {s.labels["channel"]: s.value for s in families["syncd_pushes"].samples}
    for channel in ("ankorstore", "fabric"):
        assert pushes[channel] > 0
        assert pushes[channel] <= counters[f'pushes{{channel="{channel}"}}']
    # A counter with nothing to count yet is there, at zero.
    rate_limited = {s.labels["api"]: s.value for s in families["syncd_http_rate_limited"].samples}
    assert set(rate_limited) >= {"ankorstore", "fabric"}
