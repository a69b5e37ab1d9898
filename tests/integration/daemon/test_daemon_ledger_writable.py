"""`syncd run` refuses a ledger it cannot write before it tells systemd READY=1.

A real daemon subprocess with a fake ``NOTIFY_SOCKET``, three ways a ledger
is read-only for the daemon's user: the file (left by ``syncd once`` run as
another user), its directory (SQLite must create ``-wal``/``-shm`` there),
and a read-only mount (a path outside ``StateDirectory=`` under
``ProtectSystem=strict``).

root may write anything whatever the modes say, and the CI runs as root. So,
as root, the daemon runs without the capabilities that let root ignore file
modes (``setpriv --bounding-set=-dac_override,-dac_read_search``), which makes
a 0444 file and a 0555 directory read-only to it exactly as to the service
user; the read-only mount is a real read-only bind mount in a private mount
namespace (``unshare --mount``). Without root, modes alone do it and the
mount case is skipped (mounting needs root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import notify_socket, short_dir, wait_until
from tests.unit.daemon._support import NotifyListener

pytestmark = pytest.mark.integration

ROOT = os.geteuid() == 0
NO_DAC_BYPASS = ["--bounding-set=-dac_override,-dac_read_search"]


@pytest.fixture(scope="module")
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=10, seed=2)
    with sandbox.threaded():
        yield sandbox


def _works(command: list[str]) -> bool:
    """Whether this machine lets root do ``command`` (a container may withhold the capability)."""
    result = subprocess.run([*command, "true"], capture_output=True, timeout=60, check=False)
    return result.returncode == 0


async def _create_ledger(path: Path) -> None:
    async with await Ledger.open(path):
        pass


def _prefix(case: str, state: Path) -> list[str]:
    """What runs the daemon so that ``state`` is read-only to it in the way ``case`` says."""
    if case == "read-only mount":
        if not ROOT:
            pytest.skip("a read-only bind mount needs root")
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("unshare (util-linux) is not installed")
        if not _works([unshare, "--mount"]):
            pytest.skip("no private mount namespace here (needs CAP_SYS_ADMIN)")
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, str(state)]
    if not ROOT:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if not _works([setpriv, *NO_DAC_BYPASS]):
        pytest.skip("root may not drop capabilities here (needs CAP_SETPCAP)")
    return [setpriv, *NO_DAC_BYPASS]


def _run(
    prefix: list[str], config: Path, notify: NotifyListener, log: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
    env["NOTIFY_SOCKET"] = str(notify.path)
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [*prefix, sys.executable, "-m", "syncd", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("read-only file", "is not writable by user"),
        ("read-only directory", "is not writable by user"),
        ("read-only mount", "is on a read-only file system"),
    ],
)
def test_a_read_only_ledger_is_refused_before_ready(
    world: SandboxWorld, case: str, expected: str
) -> None:
    with short_dir() as directory, notify_socket(directory) as notify:
        state = directory / "state"
        state.mkdir()
        database = state / "ledger.db"
        anyio.run(_create_ledger, database)
        config = world.write_config(
            directory, database=database, cycle_interval=0.5, poll_interval=0.5
        )
        if case == "read-only file":
            database.chmod(0o444)
        elif case == "read-only directory":
            state.chmod(0o555)
        log = directory / "daemon.log"
        before = database.read_bytes()

        process = _run(_prefix(case, state), config, notify, log)
        try:
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

        output = log.read_text(encoding="utf-8", errors="replace")
        assert code == 1, output
        assert not notify.saw("READY=1")
        [failed] = [line for line in notify.lines() if line.startswith("STATUS=failed to start")]
        assert str(database) in failed
        assert expected in failed
        assert "fix" in failed or "StateDirectory=" in failed
        # The operator sees the same reason on stderr (the journal), as a line and as an event.
        assert f"syncd run: the ledger {database}" in output
        events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert [e["reason"] for e in events if e["event"] == "daemon.start_failed"] == [
            failed.removeprefix("STATUS=failed to start: ")
        ]
        assert database.read_bytes() == before
        state.chmod(0o755)


def test_the_same_daemon_starts_once_the_ledger_is_writable_again(world: SandboxWorld) -> None:
    """The control: the refusal above comes from the modes, not from the way it is run."""
    with short_dir() as directory, notify_socket(directory) as notify:
        state = directory / "state"
        state.mkdir()
        database = state / "ledger.db"
        anyio.run(_create_ledger, database)
        config = world.write_config(
            directory, database=database, cycle_interval=0.5, poll_interval=0.5
        )
        process = _run(_prefix("read-only file", state), config, notify, directory / "d.log")
        try:
            wait_until(lambda: notify.saw("READY=1"), what="READY=1")
            assert process.poll() is None
        finally:
            process.terminate()
            assert process.wait(timeout=60) == 0
