"""`bench/run`: run syncd's benchmarks and print one table.

Every benchmark runs in its own child process (``bench/run --child NAME``)
with a time limit, so servers, threads and temporary files cannot outlive
it and one benchmark's memory or CPU does not colour the next one. The
children of a full run go one after the other; those of a ``--quick`` run
(a smoke test of the machinery, not numbers to publish) all at once. Each
child writes its rows as JSON; the parent prints the table, the machine
and its load, and as its last line ``bench: K/N targets met``
(informational rows are not counted).

Exit status: 0 when every benchmark ran (whether or not its targets were
met), 1 when one crashed or timed out (its logs are then kept and named).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
from _common import (
    KEEP_ENV,
    Row,
    failed_row,
    load_average,
    machine,
    quiet_logs,
    render_table,
    tally,
)

BENCHMARKS = ("efficiency", "throughput", "propagation", "scale", "idle", "fabric_sync")
"""Run order; the names ``--only`` accepts."""

TIME_LIMIT_S = {
    "efficiency": 600,
    "throughput": 900,
    "propagation": 1200,
    "scale": 1200,
    "idle": 2400,
    "fabric_sync": 600,
}
"""Hard bound per benchmark (full run); a child still running then is killed."""

BENCH_DIR = Path(__file__).resolve().parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run", description="Run syncd's benchmarks against the loopback sandbox."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes and durations: a smoke run, not the published numbers",
    )
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, metavar="NAME", help="run only NAME"
    )
    parser.add_argument("--json", metavar="PATH", help="also write rows and machine as JSON")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep every benchmark's scratch files (configs, ledgers, daemon logs) under DIR",
    )
    parser.add_argument("--child", choices=BENCHMARKS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser


def _child(name: str, quick: bool, out: Path) -> int:
    """Run one benchmark in this process and write its rows to ``out``.

    A benchmark that raises still writes one row saying why, so the table
    shows it; the traceback goes to stderr.
    """
    quiet_logs(out.with_suffix(".log"))
    module = importlib.import_module(name)
    runner = module.run
    rows: list[Row]
    status = 0
    try:
        if getattr(module, "MANAGES_PROCESSES", False):
            rows = runner(quick)
        else:
            rows = anyio.run(runner, quick)
    except Exception as exc:
        traceback.print_exc()
        rows = [failed_row(name, f"{type(exc).__name__}: {exc}".splitlines()[0])]
        status = 1
    out.write_text(json.dumps([row.to_json() for row in rows]), encoding="utf-8")
    return status


def _spawn(name: str, quick: bool, workdir: Path) -> list[Row]:
    """Run one benchmark in a child process (its own process group); its rows.

    The child's progress lines go straight to this stderr. When the time
    limit passes, the whole group is killed: a daemon or measurement
    process the benchmark started must not outlive it.
    """
    out = workdir / f"{name}.json"
    command = [sys.executable, str(BENCH_DIR / "run"), "--child", name, "--out", str(out)]
    if quick:
        command.append("--quick")
    limit = TIME_LIMIT_S[name] // (3 if quick else 1)
    started = time.monotonic()
    child = subprocess.Popen(command, env=_child_env(), start_new_session=True)
    try:
        code = child.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return [failed_row(name, f"timed out after {limit} s")]
    finally:
        _kill_leftovers(child.pid)
    elapsed = time.monotonic() - started
    if not out.exists():
        return [failed_row(name, f"exit {code}, no results")]
    rows = [Row.from_json(item) for item in json.loads(out.read_text(encoding="utf-8"))]
    verdict = "done" if code == 0 else f"failed (exit {code}; log {out.with_suffix('.log')})"
    print(f"[{name}] {verdict} in {elapsed:.0f} s", file=sys.stderr)
    return rows


def _kill_leftovers(group: int) -> None:
    """SIGKILL whatever is left of a finished child's process group (there should be nothing)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _run_all(names: Sequence[str], quick: bool, workdir: Path) -> list[list[Row]]:
    """Each benchmark's rows, in ``names`` order; a quick run starts them all at once."""
    if not quick:
        results = []
        for name in names:
            print(f"[{name}] running...", file=sys.stderr)
            results.append(_spawn(name, quick, workdir))
        return results
    print(f"[{', '.join(names)}] running at once (quick)...", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return list(pool.map(lambda name: _spawn(name, quick, workdir), names))


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH_DIR), env.get("PYTHONPATH", "")) if p)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.child:
        return _child(args.child, args.quick, Path(args.out))
    if args.keep:
        os.environ[KEEP_ENV] = str(Path(args.keep).resolve())
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    rows: list[Row] = []
    crashed = False
    load_before = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-run-"))
    for produced in _run_all(names, args.quick, workdir):
        crashed |= any(r.measured.startswith("did not run") for r in produced)
        rows += produced
    if crashed:
        print(f"bench: logs of the failed benchmarks kept in {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    info = machine()
    print()
    if args.quick:
        print("QUICK RUN: smaller sizes and shorter durations; not the published numbers.")
    print(
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
        f"Python {info['python']}, {info['os']}, {info['date']}"
    )
    print(f"load average (1/5/15 min): {load_before} before, {info['load']} after")
    print()
    print(render_table(rows))
    notes = [f"- {r.benchmark}: {note}" for r in rows for note in r.notes]
    if notes:
        print()
        print("notes:")
        print("\n".join(notes))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"quick": args.quick, "machine": info, "rows": [r.to_json() for r in rows]},
                indent=2,
            ),
            encoding="utf-8",
        )
    met, total = tally(rows)
    print()
    print(f"bench: {met}/{total} targets met")
    return 1 if crashed else 0
