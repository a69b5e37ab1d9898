"""The running daemon's status socket under abuse: garbage, a 10 MB line, 100 clients at once."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    DaemonProcess,
    daemon,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def running() -> Iterator[DaemonProcess]:
    world = SandboxWorld.create(variants=20, seed=9)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        with daemon(config, directory) as process:
            wait_until(process.answers, what="the daemon")
            yield process
            code, elapsed = process.stop_with(signal.SIGINT)
            assert code == 0
            assert elapsed < 10


def connect(process: DaemonProcess) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(60)
    client.connect(str(process.socket))
    return client


def read_reply(client: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = client.recv(65536)
        if not chunk:
            break
        data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


def test_the_socket_is_group_only(running: DaemonProcess) -> None:
    assert stat.S_IMODE(running.socket.stat().st_mode) == 0o660


def test_garbage_gets_an_error_and_the_connection_stays_usable(running: DaemonProcess) -> None:
    with connect(running) as client:
        client.sendall(b"\x00\xffnot json at all\n")
        assert read_reply(client)["ok"] is False
        client.sendall(b'{"cmd": "launch-missiles"}\n')
        error = read_reply(client)
        assert error["ok"] is False
        assert "unknown command" in error["error"]
        client.sendall(b'{"cmd": "ping"}\n')
        assert read_reply(client)["pid"] == running.pid


def test_a_10_mb_line_is_refused_without_hurting_the_daemon(running: DaemonProcess) -> None:
    with connect(running) as client:
        sender = threading.Thread(target=_send_quietly, args=(client, b"x" * TEN_MB + b"\n"))
        sender.start()
        try:
            reply = read_reply(client)
        finally:
            sender.join(timeout=60)
    assert reply == {"ok": False, "error": "request too large"}
    assert running.answers()


def _send_quietly(client: socket.socket, data: bytes) -> None:
    # The daemon hangs up after its refusal: that is the point.
    with contextlib.suppress(OSError):
        client.sendall(data)


def test_a_hundred_concurrent_clients_are_all_answered(running: DaemonProcess) -> None:
    def ask(index: int) -> dict[str, Any]:
        cmd = ("status", "metrics", "ping", "explain")[index % 4]
        payload: dict[str, Any] = {"cmd": cmd}
        if cmd == "explain":
            payload["sku"] = "NO-SUCH-SKU"
        return running.ask(payload)

    with ThreadPoolExecutor(max_workers=100) as pool:
        replies = list(pool.map(ask, range(100)))
    assert [r["ok"] for r in replies if "health" in r] == [True] * 25
    assert all("counters" in r for r in replies[1::4])
    assert all(r.get("pid") == running.pid for r in replies[2::4])
    assert all(r["ok"] is False and "unknown SKU" in r["error"] for r in replies[3::4])
    assert running.answers()
