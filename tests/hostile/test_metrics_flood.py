"""1 100 connections to `metrics_port` while `syncd run` may hold only 1 024 descriptors.

Before the endpoint had a cap, about 1 000 connections ended the daemon: EMFILE
escaped the accept loop. Now a flood costs a bounded number of descriptors,
the daemon stays up, `syncd status` answers and a scrape still gets through.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import daemon, short_dir, wait_until, write_config

pytestmark = pytest.mark.integration

DAEMON_NOFILE = 1024
"""What syncd.service sets (LimitNOFILE=1024)."""
FLOOD = 1100


def _limit_descriptors() -> None:
    """In the daemon's child process, before exec: `ulimit -n 1024`."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (DAEMON_NOFILE, DAEMON_NOFILE))


@pytest.fixture
def room_for_the_flood() -> None:
    """This test process itself must hold 1 100 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FLOOD + 400
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the test needs {wanted} descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _scrape(port: int) -> dict[str, float]:
    """One /metrics scrape, as {sample: value}; {} when the endpoint is busy (503)."""
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.HTTPError:
        return {}
    if reply.status_code != 200:
        return {}
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
        if not sample.labels
    }


@pytest.mark.usefixtures("room_for_the_flood")
def test_a_connection_flood_under_ulimit_1024_leaves_the_daemon_up_and_answering() -> None:
    world = SandboxWorld.create(variants=20, seed=5)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        text = config.read_text(encoding="utf-8")
        # Port 0: the kernel picks a free port and the daemon logs it (a port probed free
        # here could be taken by another process before the daemon binds it).
        config.write_text(
            text.replace("[daemon]\n", "[daemon]\nmetrics_port = 0\n", 1), encoding="utf-8"
        )
        with daemon(config, directory, preexec_fn=_limit_descriptors) as process:
            wait_until(process.answers, timeout=60, what="the daemon")
            wait_until(lambda: bool(process.events("metrics.listening")), what="metrics.listening")
            port = int(process.events("metrics.listening")[0]["port"])
            before: dict[str, float] = {}

            def first_scrape() -> bool:
                before.update(_scrape(port))
                return bool(before)

            wait_until(first_scrape, timeout=60, what="the metrics endpoint")
            # The limit really applies to the daemon (the endpoint reports its own).
            assert before["process_max_fds"] == DAEMON_NOFILE

            flood: list[socket.socket] = []
            try:
                for n in range(FLOOD):
                    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                    if n % 2:
                        # Half ask for /metrics and never read; half never say anything.
                        conn.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                    flood.append(conn)

                # All 1 100 still open on this side: the daemon is alive and answers.
                assert process.proc.poll() is None, process.log()[-3000:]
                started = time.monotonic()
                status = subprocess.run(
                    [sys.executable, "-m", "syncd", "status", "--socket", str(process.socket)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                elapsed = time.monotonic() - started
                assert status.returncode in (0, 1, 2), status.stderr  # 3 would be "no answer"
                assert "syncd" in status.stdout
                # Generous (a loaded CI machine): a daemon stuck behind the flood would
                # not answer at all -- the client's own deadline makes that exit 3.
                assert elapsed < 60

                # A scrape still gets through the flood, and the daemon's descriptors
                # stayed far from the limit it runs under.
                figures: dict[str, float] = {}

                def scraped() -> bool:
                    figures.update(_scrape(port))
                    return bool(figures)

                wait_until(scraped, timeout=60, what="a scrape through the flood")
                assert figures["process_open_fds"] < DAEMON_NOFILE - 200
            finally:
                for conn in flood:
                    conn.close()

            wait_until(process.answers, timeout=60, what="the daemon after the flood")
            assert process.proc.poll() is None
            assert "Traceback" not in process.log()
            assert process.stop()[0] == 0
