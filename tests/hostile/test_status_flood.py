"""260 clients on the status socket that ask and never read: `syncd status` still answers.

Before the socket had write timeouts and let idle clients give way, 256 such
clients held every slot for good, and `syncd status`, `confirm` and `unpark`
hung behind them.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import daemon, short_dir, wait_until, write_config

pytestmark = pytest.mark.integration

HOGS = 260
ANSWER_WITHIN_S = 5.0
"""The bound the operator is promised: `syncd status` gives up after 5 s by default."""


def _hog(path: str) -> socket.socket:
    """Connects, asks for status over and over, and never reads a reply."""
    hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hog.connect(path)
    hog.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        hog.send(b'{"cmd": "status"}\n' * 400)
    return hog


def test_clients_that_never_read_cannot_keep_syncd_status_waiting() -> None:
    world = SandboxWorld.create(variants=20, seed=6)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        with daemon(config, directory) as process:
            wait_until(process.answers, timeout=60, what="the daemon")
            hogs: list[socket.socket] = []
            try:
                for _ in range(HOGS):
                    hogs.append(_hog(str(process.socket)))

                started = time.monotonic()
                status = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "syncd",
                        "status",
                        "--json",
                        "--socket",
                        str(process.socket),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                elapsed = time.monotonic() - started
                # Exit 3 would mean no answer within the command's own 5 s deadline.
                assert status.returncode in (0, 1, 2), status.stderr
                assert '"health"' in status.stdout
                # The 5 s deadline plus the interpreter's start on a loaded machine.
                assert elapsed < ANSWER_WITHIN_S + 5, elapsed
                # The hogs really filled the socket: the daemon had to make room.
                pressure = process.events("listener.under_pressure")
                assert pressure, process.log()[-3000:]
                assert pressure[0]["listener"] == "status"
                # ...in one line per 10 s, not one per connection.
                assert len(pressure) < HOGS // 10
            finally:
                for hog in hogs:
                    hog.close()
            assert process.proc.poll() is None
            assert process.stop()[0] == 0
