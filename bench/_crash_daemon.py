"""`syncd run` as a child process that can be killed, and its status socket, for `bench/crash`.

The daemon is ``python -m syncd run --config <sandbox config>`` with its log
(stderr) in a file per start, and without systemd's ``NOTIFY_SOCKET`` or
``WATCHDOG_USEC`` (nothing would answer them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from syncd.status.client import StatusUnreachable, query

STATUS_TIMEOUT_S = 5.0


class Daemon:
    """One start of ``syncd run``; ``log_path`` keeps what it said."""

    def __init__(self, config: Path, socket: Path, log_path: Path) -> None:
        self.socket = socket
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run", "--config", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> int | None:
        """The exit code if the daemon has stopped on its own, else None."""
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup -- a power cut as far as syncd can tell."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM and wait; the exit code, or None (then killed) if it did not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def status(self) -> dict[str, Any] | None:
        """The status reply, or None while the daemon does not answer."""
        try:
            return query(self.socket, {"cmd": "status"}, timeout=STATUS_TIMEOUT_S)
        except StatusUnreachable:
            return None

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def settled_since(reply: dict[str, Any], since: datetime) -> bool:
    """Every source read successfully after ``since``, nothing queued or held on any channel."""
    for source in reply.get("sources", []):
        last = source.get("last_success")
        if last is None or datetime.fromisoformat(last) <= since:
            return False
    return all(c["queue_depth"] == 0 and not c["held"] for c in reply.get("channels", []))


def wait_converged(
    daemon: Daemon,
    since: datetime,
    *,
    rounds: int,
    timeout: float,
    now: Callable[[], datetime],
) -> tuple[bool, str]:
    """Wait until ``rounds`` consecutive settled replies, each after a fresh read of every source.

    One settled reply is not enough: a source may have recorded a change
    that the engine has not turned into outbox rows yet. Each round asks
    for every source to have succeeded again after the previous settled
    reply and for the engine to have run two more cycles, so the last
    round's empty queues come after the recompute of everything read before.
    ``now`` returns the current aware UTC time. Returns (converged, why not).
    """
    deadline = time.monotonic() + timeout
    mark = since
    cycles = -1
    done = 0
    last_reply: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        code = daemon.exited()
        if code is not None:
            return False, f"the daemon exited with {code} while converging"
        reply = daemon.status()
        sampled = now()
        if reply is not None:
            last_reply = reply
            current = int(reply.get("counters", {}).get("cycles", 0))
            if settled_since(reply, mark) and current >= cycles + 2:
                done += 1
                if done >= rounds:
                    return True, ""
                mark, cycles = sampled, current
            elif _busy(reply):
                done = 0  # work appeared after a settled reply: start counting again
        time.sleep(0.2)
    return False, f"not converged after {timeout:g} s; last status: {_brief(last_reply)}"


def _busy(reply: dict[str, Any]) -> bool:
    return any(c["queue_depth"] or c["held"] for c in reply.get("channels", []))


def _brief(reply: dict[str, Any] | None) -> str:
    if reply is None:
        return "no answer"
    sources = ", ".join(
        f"{s['name']} last ok {s.get('last_success')} error {s.get('last_error')}"
        for s in reply.get("sources", [])
    )
    channels = ", ".join(
        f"{c['name']} queued {c['queue_depth']} held {len(c['held'])} parked {len(c['parked'])}"
        for c in reply.get("channels", [])
    )
    return f"health {reply.get('health')}; {sources}; {channels}"
