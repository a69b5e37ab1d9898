"""`bench/run --quick`: every benchmark runs end to end and the table adds up.

The benchmarks themselves are not part of the test run (`make bench`); this
smoke test only proves the machinery works -- each benchmark produces its
rows against the sandbox, and the last line counts the table's targets --
so a change that breaks `bench/run` is caught before someone needs the
numbers. It does not judge the quick numbers: they are not the published
ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROWS = (
    "push efficiency",
    "vs naive PATCH per variant",
    "throughput",
    "propagation p99",
    "scale 1,000 variants",
    "scale: growth of full recompute",
    "idle requests/hour",
    "idle CPU/hour",
    "fabric first sync",
)


@pytest.mark.integration
def test_quick_run_prints_every_benchmark_and_the_tally_of_its_targets() -> None:
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| bench")]
    for name in ROWS:
        assert any(line.startswith(f"| {name}") for line in table), f"no row for {name}"
    assert not any("did not run" in line for line in table), completed.stdout
    verdicts = [line.rstrip(" |").rsplit("|", 1)[1].strip() for line in table]
    met, counted = verdicts.count("yes"), verdicts.count("yes") + verdicts.count("NO")
    assert lines[-1] == f"bench: {met}/{counted} targets met"
