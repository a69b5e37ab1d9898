"""A token endpoint answering 200 MB, and a server dripping a byte every 4 s.

Real `syncd run` processes against the sandbox, with one API pointed at a
hostile loopback server (tests/hostile/_servers.py). The daemon must stop
reading at its cap or its deadline, report the failing source in `syncd
status` with the API, the path and which limit, and go on serving the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.hostile._servers import HostileServer
from tests.hostile._support import failing_with, peak_rss_mb, set_api_key, source
from tests.integration.daemon._support import daemon, wait_until, write_config

pytestmark = pytest.mark.integration

TOKEN_BOMB = 200 * 1024 * 1024


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=40, seed=14)
    with sandbox.threaded():
        yield sandbox


def test_a_200_mb_token_answer_is_cut_at_the_cap_and_reported(
    world: SandboxWorld, directory: Path
) -> None:
    with HostileServer("zeros", size=TOKEN_BOMB) as bomb:
        config = write_config(world, directory)
        set_api_key(config, "fabric", "auth_url", f'"{bomb.url}/oauth/token"')
        with daemon(config, directory) as syncd:
            wait_until(syncd.answers, timeout=30, what="the status socket")
            wait_until(
                lambda: failing_with(syncd, "fabric_orders", "token response too large"),
                timeout=60,
                what="fabric_orders failing on the token answer",
            )
            error = source(syncd, "fabric_orders")["last_error"]
            assert "fabric POST /oauth/token" in error
            assert "limit 65536 bytes" in error
            # The rest of syncd keeps working: the other sources read the sandbox.
            wait_until(
                lambda: source(syncd, "activeants")["last_success"] is not None,
                timeout=30,
                what="Active Ants still read",
            )
            assert peak_rss_mb(syncd.pid) < 300
            assert syncd.answers()
            [connection] = bomb.snapshot()[:1]
            assert connection.sent < TOKEN_BOMB  # syncd hung up long before the end
            code, _ = syncd.stop()
    assert code == 0


def test_a_server_dripping_a_byte_every_4_s_is_abandoned_at_the_deadline(
    world: SandboxWorld, directory: Path
) -> None:
    deadline = 6.0
    with HostileServer("drip", every=4.0) as drip:
        config = write_config(world, directory)
        set_api_key(config, "fashiontrade", "base_url", f'"{drip.url}/order-integration"')
        set_api_key(config, "fashiontrade", "deadline", str(deadline))
        with daemon(config, directory) as syncd:
            wait_until(syncd.answers, timeout=30, what="the status socket")
            wait_until(
                lambda: failing_with(syncd, "fashiontrade", "request deadline"),
                timeout=60,
                what="fashiontrade failing on its deadline",
            )
            error = source(syncd, "fashiontrade")["last_error"]
            assert "fashiontrade GET /orders" in error
            assert f"{deadline:g} s request deadline" in error
            first = drip.snapshot()[0]
            assert first.closed is not None
            # Abandoned within its deadline (plus one drip for the server to notice),
            # although no single read ever waited longer than 4 s.
            # (+10 s for a loaded machine's event loop; without the deadline the
            # drip never ends and the connection is never closed).
            assert first.closed - first.opened < deadline + 4.0 + 10.0
            assert syncd.answers()
            assert source(syncd, "activeants")["last_success"] is not None
            code, _ = syncd.stop()
    assert code == 0
