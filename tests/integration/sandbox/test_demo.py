"""`syncd demo`: the README's first command, as a new user runs it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.sandbox.demo import self_command
from tests.integration.daemon._support import short_dir

pytestmark = pytest.mark.integration


def _demo(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``syncd demo`` with its own $TMPDIR, so what it leaves behind can be seen."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def test_a_short_demo_day_pushes_to_both_channels_converges_and_cleans_up() -> None:
    with short_dir() as tmp:
        demo = _demo(tmp, "--for", "15", "--variants", "60")
        output = demo.stdout
        assert demo.returncode == 0, output + demo.stderr
        # Its config, credentials, ledger and log are gone.
        assert list(tmp.iterdir()) == []
    pushes = re.search(
        r"pushes: ankorstore (\d+) bulk request\(s\) \((\d+) variant updates\), "
        r"fabric (\d+) write\(s\); 429 responses: (\d+)",
        output,
    )
    assert pushes is not None, output
    requests, updates, fabric_writes, throttled = map(int, pushes.groups())
    assert requests > 0
    assert updates > 0
    assert fabric_writes > 0
    assert throttled == 0
    assert "converged: every channel shows what syncd computed" in output
    # The day was narrated: orders on every channel and freshness of every source.
    for line in ("ankorstore: order", "fabric: order", "fashiontrade: wholesale order"):
        assert line in output
    assert "sources fresh 5/5" in output
    # --for 15: the day lasted 15 seconds before syncd was left to settle.
    over = re.search(r"\[\s*([\d.]+)s\] day over after 15 s", output)
    assert over is not None, output
    assert float(over.group(1)) >= 15.0
    assert "removed on exit" in output


def test_the_commands_it_suggests_work_as_printed() -> None:
    with short_dir() as tmp:
        demo = _demo(tmp, "--for", "3", "--variants", "20", "--keep")
        assert demo.returncode == 0, demo.stdout + demo.stderr
        [status_line] = [line for line in demo.stdout.splitlines() if " status --socket " in line]
        command = shlex.split(status_line.partition("in another terminal:")[2])
        prefix = command[: command.index("status")]
        assert prefix[1:] == ["-m", "syncd"]
        version = subprocess.run(
            [*prefix, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        assert version.returncode == 0
        assert version.stdout.startswith("syncd ")
        # --keep: the files stay, and the demo says where.
        [kept] = re.findall(r"syncd demo: files kept in (\S+)", demo.stdout)
        files = {p.name for p in Path(kept).iterdir()}
        assert {"syncd.toml", "ledger.db", "syncd.log", "credentials"} <= files


def test_the_command_is_spelled_as_it_was_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert self_command(".venv/bin/syncd") == ".venv/bin/syncd"
    assert self_command("syncd") == "syncd"
    assert self_command("/opt/syncd/venv/bin/syncd") == "/opt/syncd/venv/bin/syncd"
    assert self_command("/x/syncd/__main__.py").endswith(" -m syncd")


def test_a_demo_of_no_time_is_refused() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "syncd", "demo", "--for", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert demo.returncode == 2
    assert "--for takes a number of seconds above 0" in demo.stderr
    assert "Traceback" not in demo.stderr
