"""Ten `syncd once` runs in a row ask each token endpoint for one token.

`syncd once` from a timer every minute used to ask for a fresh token on
every run -- Ankorstore allows 60 token requests per hour (seed 000 L228),
so a minutely timer alone used them all. The token now lives in the ledger
with its expiry (schema 3). Counted at the simulators.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox.traffic import TrafficLog
from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import run_once, sandbox_config

pytestmark = pytest.mark.integration

TOKEN_ENDPOINTS = {
    ("ankorstore", "/oauth/token"),
    ("activeants", "/token"),
    ("fabric", "/auth/token/"),
}


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=20, seed=18)
    sandbox.traffic = TrafficLog()
    with sandbox.threaded():
        yield sandbox


def test_ten_once_runs_ask_each_token_endpoint_once(world: SandboxWorld, directory: Path) -> None:
    assert world.traffic is not None
    config = sandbox_config(world, directory)
    for run in range(10):
        completed = run_once(config)
        assert completed.returncode in (0, 1), f"run {run}: {completed.stderr[-2000:]}"
        assert "Traceback" not in completed.stderr
    exchanges = world.traffic.drain()
    asked = {
        (e.api, e.path): sum(1 for x in exchanges if (x.api, x.path) == (e.api, e.path))
        for e in exchanges
        if (e.api, e.path) in TOKEN_ENDPOINTS
    }
    assert asked == dict.fromkeys(TOKEN_ENDPOINTS, 1)
    # Every run did talk to the APIs (with the stored token), not just the first.
    api_calls = [e for e in exchanges if e.api == "ankorstore" and e.path != "/oauth/token"]
    assert len(api_calls) >= 10
    assert all(
        e.delivered.status != 401 for e in exchanges if (e.api, e.path) not in TOKEN_ENDPOINTS
    )
    # The token sits in the ledger only: never in the output of a run.
    assert "access_token" not in completed.stdout + completed.stderr
