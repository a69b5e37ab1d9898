"""A real `syncd run` for the benchmarks, started from a steady state.

The simulators run in threads of the benchmark process; the daemon is
``python -m syncd run --config PATH`` in its own process, so its CPU time
and memory (``/proc/<pid>``) are its own and the simulators' are not in
them.

:func:`settle` prepares what a daemon that has been running for a while
leaves behind: every source read once through syncd's own adapters (the
ledger holds the warehouse's levels, ASTRAL's stock, the open orders and
their cursors), every desired value computed, and both channels showing
those values with the outbox acknowledging them. Publishing a whole sandbox
catalog through fabric's one-request-per-SKU API would otherwise take hours
at 100 000 variants and is not what these benchmarks are about; the first
publication's cost is what ``efficiency`` and ``throughput`` measure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from _common import proc_cpu_seconds, progress

from syncd.assembly import assemble
from syncd.config import Config
from syncd.ledger.store import Ledger
from syncd.sandbox.world import SandboxWorld
from syncd.status_client import StatusUnreachable, query

MAX_POLLS_PER_SOURCE = 10_000
"""A source that has not caught up after this many polls is a bug, not a workload."""
_ACK_CHUNK = 5_000


@dataclass(slots=True)
class Settled:
    """What :func:`settle` did, for the notes."""

    polls: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    recompute_s: float = 0.0


async def settle(world: SandboxWorld, config: Config, benchmark: str = "settle") -> Settled:
    """Read every source once, compute, and make the channels show the result.

    The values are written straight into the simulators' state -- exactly
    what syncd's channels would send (Ankorstore: whole packs plus the
    variant's ``reservedQuantity``, fabric: the absolute level) -- and the
    outbox rows are marked acknowledged as a push's answer would.
    """
    started = time.perf_counter()
    report = Settled()
    async with await Ledger.open(config.daemon.database) as ledger:
        assembly = assemble(config, ledger, clock=ledger.clock)
        try:
            for source in assembly.sources:
                polls = 0
                while True:
                    polls += 1
                    result = await source.poll(ledger)
                    if result.caught_up:
                        break
                    if polls >= MAX_POLLS_PER_SOURCE:
                        raise RuntimeError(f"source {source.name} never caught up")
                report.polls[source.name] = polls
                progress(benchmark, f"settle: {source.name} read ({polls} poll(s))")
            recompute = time.perf_counter()
            await assembly.engine.recompute(full=True)
            report.recompute_s = time.perf_counter() - recompute
            progress(benchmark, f"settle: recomputed in {report.recompute_s:.1f} s")
            for channel in assembly.channels:
                rows = await ledger.pending(channel)
                for row in rows:
                    _show(world, channel, row.sku, row.desired)
                now = datetime.now(UTC)
                items = [(row.sku, row.seq, row.desired) for row in rows]
                for start in range(0, len(items), _ACK_CHUNK):
                    chunk = items[start : start + _ACK_CHUNK]
                    await ledger.mark_acknowledged(channel, chunk, "bench-settle", None, now)
                report.published[channel] = len(rows)
                progress(benchmark, f"settle: {len(rows):,} values shown on {channel}")
                left = await ledger.pending(channel)
                if left:
                    raise RuntimeError(f"{channel}: {len(left)} values still pending after settle")
        finally:
            await assembly.aclose()
    report.seconds = time.perf_counter() - started
    return report


def _show(world: SandboxWorld, channel: str, sku: str, sellable: int) -> None:
    if channel == "ankorstore":
        listing = world.ankorstore.listing(sku)
        # What syncd writes: whole packs, plus Ankorstore's own orders it subtracts itself.
        pack = listing.unit_multiplier
        stock = sellable - sellable % pack + listing.reserved_quantity
        world.ankorstore.set_stock(sku, stock)
    elif channel == "fabric":
        world.fabric.submit_inventory(sku, sellable)
    else:
        raise ValueError(f"no simulator for channel {channel!r}")


class DaemonProcess:
    """``python -m syncd run --config PATH``; its log (stderr, JSON lines) goes to a file."""

    def __init__(self, config: Path, log: Path, status_socket: Path) -> None:
        self.config = config
        self.log_path = log
        self.socket = status_socket
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
        with log.open("wb") as stream:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stream,
                env=env,
            )
        self.started = time.monotonic()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the daemon has used (all its threads)."""
        self._check_alive()
        return proc_cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        """The daemon's peak resident set (``VmHWM``) so far, in MiB."""
        self._check_alive()
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def events(self, name: str) -> list[dict[str, Any]]:
        """Log events called ``name``, oldest first."""
        found = []
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if f'"{name}"' not in line or not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == name:
                found.append(event)
        return found

    def problems(self) -> dict[str, int]:
        """Warning and error log events by name, with how often each was logged."""
        found: dict[str, int] = {}
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("level") in ("warning", "error", "critical"):
                name = str(event.get("event"))
                found[name] = found.get(name, 0) + 1
        return found

    def answers(self) -> bool:
        self._check_alive()
        try:
            return query(self.socket, {"cmd": "ping"}, timeout=5.0).get("ok") is True
        except StatusUnreachable:
            return False

    def wait_for(self, condition: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.1)

    def wait_ready(self, timeout: float) -> float:
        """Wait until the daemon answers and its first (full) recompute is done; seconds taken."""
        self.wait_for(self.answers, timeout=timeout, what="the status socket")
        self.wait_for(
            lambda: bool(self.events("engine.recomputed")),
            timeout=timeout,
            what="the first recompute",
        )
        return time.monotonic() - self.started

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait (the daemon drains and exits 0); SIGKILL if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 5) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"syncd exited with {self.proc.returncode}; last log lines:\n{self.tail()}"
            )
