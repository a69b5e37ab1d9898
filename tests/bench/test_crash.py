"""`bench/crash` end to end: a short run kills and restarts a real daemon and finds nothing wrong.

The script is run exactly as an operator runs it (``python bench/crash``),
with three kills on a small catalog, so the whole path is exercised: the
simulators outliving every daemon, SIGKILL and restart during change, the
last daemon converging, and the independent check of every channel value,
the ledger's record of every source and ``Ledger.check_invariants()``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "crash"
SUMMARY = re.compile(
    r"^crash trials: (\d+), lost updates: (\d+), wrong final values: (\d+), "
    r"ledger invariant violations: (\d+)$"
)


@pytest.mark.integration
def test_three_kills_on_a_small_catalog_lose_nothing() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--trials",
            "3",
            "--variants",
            "15",
            "--max-up",
            "3",
            "--seed",
            "3",
            "--converge-timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    output = completed.stdout.strip().splitlines()
    assert output, completed.stderr[-3000:]
    last = output[-1]
    assert SUMMARY.match(last), f"unexpected last line {last!r}\n{completed.stderr[-3000:]}"
    assert last == (
        "crash trials: 3, lost updates: 0, wrong final values: 0, ledger invariant violations: 0"
    ), "\n".join(output[-30:])
    assert completed.returncode == 0, "\n".join(output[-30:])
    assert sum(line.startswith("trial ") for line in output) == 3
