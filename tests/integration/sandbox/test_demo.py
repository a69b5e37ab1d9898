"""`syncd demo`: the README's first command, as a new user runs it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_a_short_demo_day_pushes_to_both_channels_and_converges() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "syncd", "demo", "--for", "35", "--variants", "60"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = demo.stdout
    assert demo.returncode == 0, output + demo.stderr
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


def test_a_demo_too_short_to_settle_is_refused() -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "syncd", "demo", "--for", "5"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert demo.returncode == 2
    assert "--for must be at least" in demo.stderr
    assert "Traceback" not in demo.stderr
