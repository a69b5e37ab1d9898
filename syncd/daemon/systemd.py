"""Talk to systemd: the sd_notify(3) protocol and the service watchdog.

syncd runs as a ``Type=notify`` service (systemd/syncd.service). This module
speaks the documented wire protocol directly -- one AF_UNIX datagram of
newline-separated ``KEY=VALUE`` assignments sent to ``$NOTIFY_SOCKET`` -- so
syncd needs neither libsystemd nor a third-party binding. Outside systemd
(``NOTIFY_SOCKET`` unset: a terminal, ``syncd demo``, the tests) every call is
a silent no-op.

A notification that cannot be delivered never raises into the daemon: losing
a ``STATUS=`` line must not stop stock from syncing. The first failure of a
streak is logged (``systemd.notify_failed``); repeats are not, so a broken
socket cannot flood the journal.

The daemon's use, in order:

- ``ready(status)`` once the ledger is open and the tasks are started;
- ``status(text)`` whenever there is something an operator should see in
  ``systemctl status syncd``;
- ``watchdog_loop(notifier, heartbeat.is_fresh_within(interval))`` as a task,
  pinging ``WATCHDOG=1`` only while the main loop keeps beating;
- on SIGHUP ``reloading()`` before re-reading the config, ``ready()`` after;
- ``stopping()`` when SIGTERM arrives, before draining in-flight pushes.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable, Mapping

import anyio
import structlog

_log = structlog.get_logger(__name__)

_SEND_TIMEOUT_SECONDS = 1.0
"""Upper bound on a blocking send: systemd drains its socket promptly, and a
wedged PID 1 must not stall syncd's event loop for longer than this."""

_KEY = re.compile(r"[A-Z_][A-Z0-9_]*")
_LINE_BREAKS = re.compile(r"\s*[\r\n]+\s*")


def _monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd expects in MONOTONIC_USEC=."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def _socket_address(raw: str) -> bytes | None:
    """Turn ``$NOTIFY_SOCKET`` into a sendto() address, or None if syncd cannot use it.

    A leading ``@`` names a socket in the abstract namespace, which the kernel
    spells with a leading NUL byte (sd_notify(3)). Other forms systemd may
    hand out (``vsock:``) are not used for services on the host.
    """
    if raw.startswith("@") and len(raw) > 1:
        return b"\0" + os.fsencode(raw[1:])
    if raw.startswith("/"):
        return os.fsencode(raw)
    return None


def _one_line(text: str) -> str:
    """A value must stay on one line: a newline would start a new assignment."""
    return _LINE_BREAKS.sub("; ", text.strip())


class Notifier:
    """Sends sd_notify messages to one socket; a no-op when there is none.

    ``socket_path`` is the raw ``$NOTIFY_SOCKET`` value (a filesystem path or
    ``@abstract-name``). Tests pass their own socket and clock; the daemon uses
    `Notifier.from_env()`.
    """

    def __init__(
        self,
        socket_path: str | None,
        *,
        monotonic_usec: Callable[[], int] = _monotonic_usec,
    ) -> None:
        self._raw = socket_path or None
        self._address = _socket_address(socket_path) if socket_path else None
        self._monotonic_usec = monotonic_usec
        self._failing = False
        if self._raw is not None and self._address is None:
            _log.warning("systemd.notify_socket_unsupported", notify_socket=self._raw)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (from ``env``, default ``os.environ``)."""
        source = os.environ if env is None else env
        return cls(source.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        """True when there is a socket to talk to."""
        return self._address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True if it was delivered.

        Keys are checked (a bad key is a bug in syncd, so it raises
        ValueError); delivery failures are logged once per streak and
        reported as False.
        """
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            if not sep or _KEY.fullmatch(key) is None or "\n" in value:
                raise ValueError(f"not a single-line KEY=VALUE assignment: {assignment!r}")
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(_SEND_TIMEOUT_SECONDS)
                sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                _log.warning(
                    "systemd.notify_failed",
                    notify_socket=self._raw,
                    error=f"{type(exc).__name__}: {exc}",
                )
            return False
        self._failing = False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up (or a reload) is complete."""
        return self.send("READY=1", *self._status_field(status))

    def status(self, text: str) -> bool:
        """``STATUS=``: the one line ``systemctl status`` shows under the unit."""
        return self.send(*self._status_field(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: keep-alive ping for ``WatchdogSec=``."""
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun (in-flight pushes are draining)."""
        return self.send("STOPPING=1", *self._status_field(status))

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` + ``MONOTONIC_USEC=``: a SIGHUP reload has begun.

        Send `ready()` when the new configuration is in force. systemd >= 253
        requires the timestamp for ``Type=notify-reload``; older versions
        ignore it, so it is always sent.
        """
        return self.send(
            "RELOADING=1",
            f"MONOTONIC_USEC={self._monotonic_usec()}",
            *self._status_field(status),
        )

    def errno(self, code: int, status: str | None = None) -> bool:
        """``ERRNO=``: the errno-style reason for a failure, shown by systemctl."""
        return self.send(f"ERRNO={int(code)}", *self._status_field(status))

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC=``: ask for more start/stop time (a long migration)."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1_000_000))}")

    @staticmethod
    def _status_field(status: str | None) -> tuple[str, ...]:
        return () if status is None else (f"STATUS={_one_line(status)}",)


def watchdog_interval(
    env: Mapping[str, str] | None = None, *, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when no watchdog is armed.

    systemd exports ``WATCHDOG_USEC`` (the ``WatchdogSec=`` timeout) and
    ``WATCHDOG_PID`` (the process it is meant for; a child that inherited the
    environment must not ping). sd_watchdog_enabled(3) recommends pinging at
    half the timeout, which is what this returns.
    """
    source = os.environ if env is None else env
    try:
        usec = int(source.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = source.get("WATCHDOG_PID")
    if raw_pid:
        try:
            intended = int(raw_pid)
        except ValueError:
            return None
        if intended != (os.getpid() if pid is None else pid):
            return None
    return usec / 2 / 1_000_000


class Heartbeat:
    """When the main loop last proved it is making progress (monotonic seconds).

    The daemon calls `beat()` from its supervising loop; `watchdog_loop` asks
    `is_fresh(max_age)` before each ping, so a wedged loop stops the pings and
    systemd restarts syncd after ``WatchdogSec=``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last

    def is_fresh(self, max_age: float) -> bool:
        return self.age() <= max_age

    def is_fresh_within(self, max_age: float) -> Callable[[], bool]:
        """A ``healthy`` callable for `watchdog_loop`."""
        return lambda: self.is_fresh(max_age)


def _is_healthy(healthy: Callable[[], bool]) -> bool:
    # A health check that crashes means syncd cannot vouch for itself: withhold.
    try:
        return bool(healthy())
    except Exception as exc:
        _log.warning("systemd.health_check_failed", error=f"{type(exc).__name__}: {exc}")
        return False


async def watchdog_loop(
    notifier: Notifier,
    healthy: Callable[[], bool],
    *,
    interval: float | None = None,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` seconds while ``healthy()`` is true.

    ``interval`` defaults to `watchdog_interval()` from the environment; the
    coroutine returns at once when no watchdog is armed or there is no notify
    socket, so the daemon can start it unconditionally. While ``healthy()`` is
    false no ping is sent (logged once as ``systemd.watchdog_withheld``): if
    the main loop stays stuck for ``WatchdogSec=``, systemd kills and
    restarts syncd (``Restart=on-failure``). Pings resume if it recovers first.
    Runs until cancelled.
    """
    period = watchdog_interval() if interval is None else interval
    if period is None or period <= 0 or not notifier.enabled:
        return
    withheld = False
    while True:
        if _is_healthy(healthy):
            notifier.watchdog()
            if withheld:
                withheld = False
                _log.info("systemd.watchdog_resumed")
        elif not withheld:
            withheld = True
            _log.warning("systemd.watchdog_withheld", interval_seconds=period)
        await anyio.sleep(period)
