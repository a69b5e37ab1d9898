"""`/dev/zero` and a FIFO as secret files: refused at once, at start and on reload.

Before syncd checked what a secret file is, ``/dev/zero`` was read until
memory ran out and a FIFO blocked the open until a writer came -- during a
SIGHUP reload, that held up SIGTERM for good. Real `syncd run` processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.daemon.runtime import EXIT_CONFIG
from syncd.sandbox.world import SandboxWorld
from tests.hostile._support import set_api_key
from tests.integration.daemon._support import daemon, wait_until, write_config

pytestmark = pytest.mark.integration

KINDS = {"dev-zero": "is a device", "fifo": "is a FIFO (named pipe)"}


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=20, seed=15)
    with sandbox.threaded():
        yield sandbox


def _hostile_secret(directory: Path, kind: str) -> str:
    if kind == "dev-zero":
        return "/dev/zero"
    fifo = directory / "credentials" / "fifo"
    os.mkfifo(fifo)  # nobody ever writes to it
    return str(fifo)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_syncd_run_refuses_the_secret_file_within_10_s(
    world: SandboxWorld, directory: Path, kind: str
) -> None:
    config = write_config(world, directory)
    set_api_key(config, "ankorstore", "client_secret_file", f'"{_hostile_secret(directory, kind)}"')
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "syncd", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - started < 10.0
    assert completed.returncode == EXIT_CONFIG, completed.stderr  # 78, not restarted
    assert "apis.ankorstore.client_secret_file: secret file" in completed.stderr
    assert f"{KINDS[kind]}; it must be a regular file" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_reload_onto_the_secret_file_is_rejected_and_sigterm_still_stops_syncd(
    world: SandboxWorld, directory: Path, kind: str
) -> None:
    config = write_config(world, directory)
    with daemon(config, directory) as syncd:
        wait_until(syncd.answers, what="the status socket")
        set_api_key(
            config, "ankorstore", "client_secret_file", f'"{_hostile_secret(directory, kind)}"'
        )
        syncd.signal(signal.SIGHUP)
        wait_until(
            lambda: bool(syncd.events("daemon.reload_rejected")),
            timeout=10,
            what="the reload to be rejected",
        )
        [rejected] = syncd.events("daemon.reload_rejected")
        assert any(KINDS[kind] in problem for problem in rejected["problems"])
        assert syncd.answers()  # the previous config keeps running
        code, took = syncd.stop(timeout=10.0)
    assert code == 0
    assert took < 10.0


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sigterm_during_a_reload_exits_within_10_s(
    world: SandboxWorld, directory: Path, kind: str
) -> None:
    config = write_config(world, directory)
    with daemon(config, directory) as syncd:
        wait_until(syncd.answers, what="the status socket")
        set_api_key(
            config, "ankorstore", "client_secret_file", f'"{_hostile_secret(directory, kind)}"'
        )
        syncd.signal(signal.SIGHUP)
        wait_until(
            lambda: bool(syncd.events("daemon.reload_requested")),
            timeout=10,
            what="the reload to start",
        )
        code, took = syncd.stop(timeout=10.0)  # SIGTERM once the reload has begun
    assert code == 0
    assert took < 10.0


def test_sigterm_during_a_reload_that_blocks_reading_the_config_exits_within_10_s(
    world: SandboxWorld, directory: Path
) -> None:
    """The reload runs off the signal path: even a read that never returns cannot hold SIGTERM."""
    config = write_config(world, directory)
    with daemon(config, directory) as syncd:
        wait_until(syncd.answers, what="the status socket")
        config.unlink()
        os.mkfifo(config)  # opening it for reading blocks until a writer comes: none will
        syncd.signal(signal.SIGHUP)
        wait_until(
            lambda: bool(syncd.events("daemon.reload_requested")),
            timeout=10,
            what="the reload to start",
        )
        assert syncd.answers()  # still serving while the reload waits
        code, took = syncd.stop(timeout=10.0)
    assert code == 0
    assert took < 10.0
    assert syncd.events("daemon.reload_abandoned")
