"""sd_notify and the watchdog, against real AF_UNIX datagram sockets."""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from syncd.daemon.systemd import Heartbeat, Notifier, watchdog_interval, watchdog_loop


def _bound_receiver(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def _drain(sock: socket.socket) -> list[bytes]:
    """Every datagram already queued, without waiting for more."""
    sock.setblocking(False)
    received: list[bytes] = []
    try:
        while True:
            received.append(sock.recv(4096))
    except BlockingIOError:
        return received
    finally:
        sock.settimeout(2.0)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    assert len(path) < 100, "AF_UNIX paths are limited to 108 bytes"
    sock = _bound_receiver(path)
    yield sock, path
    sock.close()


@pytest.fixture
def abstract_receiver() -> Iterator[tuple[socket.socket, str]]:
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = _bound_receiver(b"\0" + name.encode())
    yield sock, "@" + name
    sock.close()


def test_each_message_arrives_exactly_as_systemd_expects(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    notifier = Notifier(path, monotonic_usec=lambda: 123456789)

    assert notifier.ready("syncing 3 channels")
    assert sock.recv(4096) == b"READY=1\nSTATUS=syncing 3 channels"
    assert notifier.status("ankorstore: 12 queued")
    assert sock.recv(4096) == b"STATUS=ankorstore: 12 queued"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.reloading("reloading config")
    assert sock.recv(4096) == b"RELOADING=1\nMONOTONIC_USEC=123456789\nSTATUS=reloading config"
    assert notifier.stopping("draining 4 pushes")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining 4 pushes"
    assert notifier.errno(5)
    assert sock.recv(4096) == b"ERRNO=5"
    assert notifier.extend_timeout(2.5)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=2500000"
    assert _drain(sock) == []


def test_reloading_carries_the_monotonic_clock_systemd_compares_against(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier(path).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    lines = sock.recv(4096).decode().split("\n")
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_abstract_socket_from_environment(abstract_receiver: tuple[socket.socket, str]) -> None:
    sock, at_name = abstract_receiver
    notifier = Notifier.from_env({"NOTIFY_SOCKET": at_name})

    assert notifier.enabled
    assert notifier.ready()
    assert sock.recv(4096) == b"READY=1"


def test_a_multi_line_status_cannot_smuggle_in_other_assignments(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    Notifier(path).status("held: 40% of catalog would change\nREADY=1\n")

    assert sock.recv(4096) == b"STATUS=held: 40% of catalog would change; READY=1"


def test_malformed_assignment_is_a_bug_and_raises(receiver: tuple[socket.socket, str]) -> None:
    _, path = receiver
    notifier = Notifier(path)
    for bad in ("READY", "ready=1", "BAD KEY=1", "STATUS=a\nREADY=1"):
        with pytest.raises(ValueError, match="KEY=VALUE"):
            notifier.send(bad)


def test_without_notify_socket_everything_is_a_silent_no_op(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_socket_please(*args: object, **kwargs: object) -> socket.socket:
        raise AssertionError("no socket may be opened without NOTIFY_SOCKET")

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr("syncd.daemon.systemd.socket.socket", no_socket_please)
    notifier = Notifier.from_env()

    assert not notifier.enabled
    with capture_logs() as logs:
        results = [
            notifier.ready("up"),
            notifier.status("x"),
            notifier.watchdog(),
            notifier.stopping(),
            notifier.reloading(),
            notifier.errno(2),
        ]
    assert results == [False] * 6
    assert logs == []


def test_send_errors_never_raise_and_are_logged_once_per_streak(tmp_path: Path) -> None:
    path = str(tmp_path / "gone.sock")
    notifier = Notifier(path)

    with capture_logs() as logs:
        assert [notifier.watchdog() for _ in range(3)] == [False, False, False]
    assert [entry["event"] for entry in logs] == ["systemd.notify_failed"]
    assert logs[0]["notify_socket"] == path

    # The socket comes back: delivery resumes, and a later failure is reported again.
    sock = _bound_receiver(path)
    try:
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()
    os.unlink(path)
    with capture_logs() as logs:
        assert not notifier.watchdog()
    assert [entry["event"] for entry in logs] == ["systemd.notify_failed"]


def test_unusable_socket_address_disables_notifier_with_a_warning() -> None:
    with capture_logs() as logs:
        notifier = Notifier("vsock:2:1234")
    assert not notifier.enabled
    assert not notifier.ready()
    assert [entry["event"] for entry in logs] == ["systemd.notify_socket_unsupported"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 30.0),
        ({"WATCHDOG_USEC": "20000", "WATCHDOG_PID": "4242"}, 0.01),
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "4243"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "x"}, None),
        ({}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_this_process(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_watchdog_interval_defaults_to_our_own_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval() is None


def test_heartbeat_freshness_follows_the_clock() -> None:
    now = [100.0]
    heartbeat = Heartbeat(clock=lambda: now[0])
    healthy = heartbeat.is_fresh_within(30.0)

    now[0] = 129.0
    assert healthy()
    now[0] = 131.0
    assert not healthy()
    assert heartbeat.age() == pytest.approx(31.0)
    heartbeat.beat()
    assert healthy()


async def _run_watchdog(
    notifier: Notifier, healthy: Callable[[], bool], ticks: int, interval: float | None
) -> None:
    """Run watchdog_loop until it has consulted ``healthy()`` ``ticks`` times."""
    calls = 0
    done = anyio.Event()

    def counted() -> bool:
        nonlocal calls
        calls += 1
        if calls >= ticks:
            done.set()
        return healthy()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(functools.partial(watchdog_loop, notifier, counted, interval=interval))
            await done.wait()
            # The ping for the last tick went out before done.wait() could return.
            tg.cancel_scope.cancel()


def _scripted(answers: Sequence[bool]) -> Callable[[], bool]:
    return iter(answers).__next__


@pytest.mark.anyio
async def test_watchdog_pings_only_while_healthy(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    answers = [True, True, True, False, False, False, False]

    with capture_logs() as logs:
        await _run_watchdog(Notifier(path), _scripted(answers), len(answers), interval=0.002)

    assert _drain(sock) == [b"WATCHDOG=1"] * 3
    assert [entry["event"] for entry in logs] == ["systemd.watchdog_withheld"]


@pytest.mark.anyio
async def test_watchdog_resumes_when_the_main_loop_recovers(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    answers = [True, False, False, True, True]

    with capture_logs() as logs:
        await _run_watchdog(Notifier(path), _scripted(answers), len(answers), interval=0.002)

    assert _drain(sock) == [b"WATCHDOG=1"] * 3
    assert [entry["event"] for entry in logs] == [
        "systemd.watchdog_withheld",
        "systemd.watchdog_resumed",
    ]


@pytest.mark.anyio
async def test_stale_heartbeat_stops_the_pings(receiver: tuple[socket.socket, str]) -> None:
    sock, path = receiver
    now = [0.0]
    heartbeat = Heartbeat(clock=lambda: now[0])
    fresh = heartbeat.is_fresh_within(10.0)

    def healthy() -> bool:
        # Each watchdog tick is 6 simulated seconds; the main loop beats at t=6 and
        # t=12, then hangs. Fresh at t=18 (age 6), stale from t=24 (age 12 > 10).
        now[0] += 6.0
        if now[0] <= 12.0:
            heartbeat.beat()
        return fresh()

    await _run_watchdog(Notifier(path), healthy, 6, interval=0.002)

    assert _drain(sock) == [b"WATCHDOG=1"] * 3


@pytest.mark.anyio
async def test_watchdog_period_is_half_of_watchdog_usec(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("WATCHDOG_USEC", "40000")  # 40 ms timeout -> ping every 20 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)

    started = time.monotonic()
    await _run_watchdog(Notifier(path), lambda: True, 4, interval=None)
    elapsed = time.monotonic() - started

    assert _drain(sock) == [b"WATCHDOG=1"] * 4
    # Four pings are three sleeps apart.
    assert elapsed >= 3 * 0.020 * 0.9


@pytest.mark.anyio
@pytest.mark.parametrize(
    "make_notifier",
    [
        pytest.param(Notifier, id="no-watchdog-armed"),
        pytest.param(lambda path: Notifier(None), id="no-notify-socket"),
    ],
)
async def test_watchdog_loop_returns_at_once_when_there_is_nothing_to_do(
    make_notifier: Callable[[str], Notifier],
    receiver: tuple[socket.socket, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sock, path = receiver
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    notifier = make_notifier(path)
    interval = None if notifier.enabled else 0.001

    with anyio.fail_after(30):  # a loop that never returned would trip this
        await watchdog_loop(notifier, lambda: True, interval=interval)
    assert _drain(sock) == []
