"""`syncd run`'s log: on stderr, at `[daemon] log_level`, which a reload (SIGHUP) changes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import notify_socket, short_dir, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=10, seed=4)
    with sandbox.threaded():
        yield sandbox


def _set_level(config: Path, level: str) -> None:
    text = config.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("log_level")]
    at = lines.index("[daemon]") + 1
    lines.insert(at, f'log_level = "{level}"')
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _events(path: Path) -> list[dict[str, object]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_log_level_filters_the_daemons_stderr_and_a_reload_changes_it(world: SandboxWorld) -> None:
    with short_dir() as directory, notify_socket(directory) as notify:
        config = world.write_config(directory, cycle_interval=0.5, poll_interval=0.5)
        _set_level(config, "warning")
        stdout, stderr = directory / "out.log", directory / "err.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
        env["NOTIFY_SOCKET"] = str(notify.path)
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run", "--config", str(config)],
                stdout=out,
                stderr=err,
                env=env,
            )
        try:
            wait_until(lambda: notify.saw("READY=1"), what="READY=1")
            wait_until(lambda: notify.saw("STATUS=ok"), what="sources read")
            # Ready, reading and pushing: at "warning" none of its info events is written.
            assert not [e for e in _events(stderr) if e["level"] == "info"]

            _set_level(config, "info")
            process.send_signal(signal.SIGHUP)
            wait_until(
                lambda: any(e["event"] == "daemon.reloaded" for e in _events(stderr)),
                what="daemon.reloaded at info level",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        assert stdout.read_bytes() == b""
        assert any(e["event"] == "daemon.stopped" for e in _events(stderr))
