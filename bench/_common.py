"""What every benchmark shares: result rows, the table, the machine, measuring helpers.

A benchmark is a module with ``NAME`` and ``async def run(quick: bool) ->
list[Row]`` (or a plain ``def run`` with ``MANAGES_PROCESSES = True`` for
the ones that start processes of their own). Each row is one ratio
measured in that run with its target beside it; ``met`` is None for
informational rows, which do not count towards ``K/N targets met``.
The sandbox side (simulators, configs, clients) is in :mod:`_rig`.
"""

from __future__ import annotations

import math
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.logs import configure_logging


@dataclass(slots=True)
class Row:
    """One line of the results table."""

    benchmark: str
    measured: str
    target: str
    met: bool | None
    """None: informational, not counted as a target."""
    notes: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        return cls(**data)


def failed_row(name: str, error: str) -> Row:
    return Row(name, f"did not run: {error}", "-", False)


# --- the table --------------------------------------------------------------------------


def render_table(rows: Sequence[Row]) -> str:
    header = ("benchmark", "measured", "target", "met?")
    cells = [header] + [
        (r.benchmark, r.measured, r.target, "info" if r.met is None else "yes" if r.met else "NO")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for index, cell in enumerate(cells):
        lines.append(
            "| " + " | ".join(v.ljust(w) for v, w in zip(cell, widths, strict=True)) + " |"
        )
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def tally(rows: Iterable[Row]) -> tuple[int, int]:
    counted = [r for r in rows if r.met is not None]
    return sum(1 for r in counted if r.met), len(counted)


# --- the machine ------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """nproc, CPU model, RAM, Python, OS, load: what the numbers were measured on."""
    cpu = "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", _read_text("/proc/cpuinfo"), re.MULTILINE)
    if match:
        cpu = match.group(1).strip()
    ram = "unknown"
    match = re.search(r"^MemTotal:\s*(\d+) kB", _read_text("/proc/meminfo"), re.MULTILINE)
    if match:
        ram = f"{int(match.group(1)) / 1024 / 1024:.1f} GiB"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": ram,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": load_average(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work sharing the CPUs during a run."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


# --- measuring --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): an observed value, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


_STARTED = time.monotonic()


def progress(benchmark: str, message: str) -> None:
    """One progress line on stderr: ``[idle +42s] steady state prepared``."""
    print(
        f"[{benchmark} +{time.monotonic() - _STARTED:.0f}s] {message}", file=sys.stderr, flush=True
    )


def quiet_logs(path: Path | None = None, level: str = "warning") -> None:
    """syncd's own logging, to a file (or stderr) at ``level``: the table stays readable."""
    stream = path.open("a", encoding="utf-8") if path is not None else sys.stderr
    configure_logging("json", level=level, stream=stream)


KEEP_ENV = "SYNCD_BENCH_KEEP"
"""When set (``bench/run --keep DIR``), scratch directories go under it and are kept."""


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory for one measurement, kept under ``$SYNCD_BENCH_KEEP`` if set.

    Under ``/tmp`` by default: status socket paths must stay short.
    """
    keep = os.environ.get(KEEP_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(tempfile.mkdtemp(prefix=prefix, dir=keep))
        return
    with tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp") as tmp:
        yield Path(tmp)


def describe_problems(problems: dict[str, int]) -> str:
    """``"none"`` or ``"push.held x2, source.poll_failed x1"``: a daemon's warnings and errors."""
    if not problems:
        return "none"
    return ", ".join(f"{name} x{count}" for name, count in sorted(problems.items()))
