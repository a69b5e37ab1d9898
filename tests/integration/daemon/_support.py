"""A real `syncd run` subprocess against the sandbox simulators, and a fake systemd.

The simulators run in threads of the test process (``world.threaded()``);
the daemon is ``python -m syncd run --config <sandbox config>`` with a fake
``NOTIFY_SOCKET`` (an AF_UNIX datagram socket the test reads) and
``WATCHDOG_USEC`` set. Sockets live in a short private directory under /tmp:
Unix socket paths stop at 107 bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from syncd.sandbox.world import SandboxWorld
from syncd.status.client import StatusUnreachable, query
from tests.unit.daemon._support import NotifyListener

POLL_S = 0.5
WATCHDOG_USEC = 2_000_000
SAFETY = "max_zero_share = 1.0\nmax_change_share = 1.0\n"
"""The sandbox catalog is small and starts far from what syncd computes: a
first publication would otherwise be held for confirmation."""


@contextmanager
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="syncd-it-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def write_config(world: SandboxWorld, directory: Path, *, fabric: str = "") -> Path:
    """The sandbox's config with short intervals and room for whole-catalog changes."""
    config = world.write_config(directory, cycle_interval=POLL_S, poll_interval=POLL_S)
    set_channel_keys(config, "ankorstore", SAFETY)
    set_channel_keys(config, "fabric", SAFETY + fabric)
    return config


def set_channel_keys(config: Path, channel: str, keys: str) -> None:
    """Insert ``keys`` (TOML lines) at the top of ``[channels.<channel>]``."""
    header = f"[channels.{channel}]\n"
    text = config.read_text(encoding="utf-8")
    if header not in text:
        raise AssertionError(f"no {header.strip()} in {config}")
    config.write_text(text.replace(header, header + keys, 1), encoding="utf-8")


def wait_until(predicate: Callable[[], bool], *, timeout: float = 60.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` s (generous: CI machines are loaded)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


class DaemonProcess:
    """``syncd run`` in a subprocess; stderr (the log) goes to a file."""

    def __init__(
        self,
        config: Path,
        directory: Path,
        *,
        notify: Path | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.socket = directory / "status.sock"
        self.log_path = directory / f"daemon-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "NOTIFY_"))}
        if notify is not None:
            env |= {"NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "syncd", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=env,
                preexec_fn=preexec_fn,  # noqa: PLW1509  # resource limits for tests/hostile
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log().splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def ask(self, payload: dict[str, Any]) -> dict[str, Any]:
        return query(self.socket, payload, timeout=60.0)

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"syncd exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        try:
            return self.ask({"cmd": "ping"})["ok"] is True
        except StatusUnreachable:
            return False

    def settled(self) -> bool:
        """Every source read, nothing queued, nothing held: the channels show what syncd wants."""
        reply = self.ask({"cmd": "status"})
        return (
            all(s["last_success"] is not None for s in reply["sources"])
            and all(c["queue_depth"] == 0 and not c["held"] for c in reply["channels"])
            and reply["counters"]["cycles"] > 0
        )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> tuple[int, float]:
        return self.stop_with(signal.SIGTERM, timeout)

    def stop_with(self, signum: int, timeout: float = 10.0) -> tuple[int, float]:
        """Send ``signum``; the exit code and how long the daemon took to exit."""
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def daemon(
    config: Path,
    directory: Path,
    *,
    notify: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Iterator[DaemonProcess]:
    """``syncd run`` for the block; ``preexec_fn`` runs in the child first (e.g. setrlimit)."""
    process = DaemonProcess(config, directory, notify=notify, preexec_fn=preexec_fn)
    try:
        yield process
    finally:
        process.kill()


@contextmanager
def notify_socket(directory: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(directory / "notify.sock")
    try:
        yield listener
    finally:
        listener.close()
