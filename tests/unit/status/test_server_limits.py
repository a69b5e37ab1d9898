"""The status socket under pressure: busy replies, read and write timeouts, idle clients
making room, accept errors, and the kernel's word on who is asking."""

from __future__ import annotations

import errno
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from syncd.status import server as status_module
from syncd.status.client import request
from syncd.status.protocol import Caller, caller_of
from syncd.status.server import StatusServer
from tests.unit.status._support import exchange, running, short_dir

pytestmark = pytest.mark.anyio

BIG = "x" * 200_000
"""A reply larger than a Unix socket's buffers: sending it blocks until the client reads."""


@pytest.fixture
def sock_path() -> Iterator[Path]:
    with short_dir() as directory:
        yield directory / "status.sock"


async def big(request: dict[str, Any]) -> Mapping[str, Any]:
    return {"ok": True, "cmd": request["cmd"], "padding": BIG if request["cmd"] == "big" else ""}


def never_reading_client(path: Path) -> socket.socket:
    """Connects, asks for a reply too large for the socket buffers, and never reads it."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(path))
    client.sendall(b'{"cmd": "big"}\n' * 4)
    return client


async def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


async def test_a_client_over_the_cap_gets_a_busy_reply_at_once(sock_path: Path) -> None:
    entered = 0
    release = anyio.Event()

    async def slow(request: dict[str, Any]) -> Mapping[str, Any]:
        nonlocal entered
        entered += 1
        await release.wait()
        return {"ok": True}

    done: list[dict[str, Any]] = []

    async def client() -> None:
        (reply,) = await exchange(sock_path, b'{"cmd": "ping"}\n')
        done.append(reply)

    server = StatusServer(sock_path, slow, max_clients=2)
    async with running(server), anyio.create_task_group() as tg:
        tg.start_soon(client)
        tg.start_soon(client)
        await wait_for(lambda: entered == 2, "two clients inside the handler")
        # Both slots are busy answering: the third is told so, and not kept waiting.
        with anyio.fail_after(5):
            (third,) = await exchange(sock_path, b'{"cmd": "ping"}\n')
        assert third["ok"] is False
        assert third["busy"] is True
        assert third["error"].startswith("busy")
        assert entered == 2, "a third client was served beyond max_clients"
        release.set()
    assert done == [{"ok": True}, {"ok": True}]


async def test_a_client_that_never_reads_is_dropped_after_the_write_timeout(
    sock_path: Path,
) -> None:
    server = StatusServer(sock_path, big, write_timeout=0.3)
    with capture_logs() as logs:
        async with running(server):
            client = never_reading_client(sock_path)
            try:
                await wait_for(
                    lambda: any(entry["event"] == "status.write_timeout" for entry in logs),
                    "the write timeout",
                )
                await wait_for(lambda: server.slots.in_use == 0, "the stuck client dropped")
                # Meanwhile and afterwards, everyone else is answered.
                assert (await request(sock_path, {"cmd": "ping"}))["ok"] is True
            finally:
                client.close()


async def test_a_client_that_sends_half_a_request_is_dropped_after_the_read_timeout(
    sock_path: Path,
) -> None:
    server = StatusServer(sock_path, big, read_timeout=0.3)
    async with running(server):
        async with await anyio.connect_unix(sock_path) as stream:
            await stream.send(b'{"cmd": "pi')  # and nothing more, ever
            with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
                await stream.receive()
        await wait_for(lambda: server.slots.in_use == 0, "the slot given back")


async def test_clients_that_never_read_or_never_send_make_room_for_a_fresh_one(
    sock_path: Path,
) -> None:
    server = StatusServer(sock_path, big, max_clients=4)
    hogs: list[socket.socket] = []
    async with running(server):
        try:
            for _ in range(3):
                hogs.append(never_reading_client(sock_path))
            silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            silent.connect(str(sock_path))
            hogs.append(silent)
            await wait_for(lambda: server.slots.in_use == 4, "every slot taken")
            # Default timeouts (30 s read, 10 s write) are far away: the fresh client is
            # answered because the longest-idle hog gives way, not because one timed out.
            with anyio.fail_after(5):
                reply = await request(sock_path, {"cmd": "ping"}, timeout=5)
            assert reply["ok"] is True
            assert server.slots.evictions >= 1
        finally:
            for hog in hogs:
                hog.close()


async def test_handlers_see_the_callers_uid_from_the_kernel_not_from_the_request(
    sock_path: Path,
) -> None:
    seen: list[Caller | None] = []

    async def who(request: dict[str, Any]) -> Mapping[str, Any]:
        seen.append(caller_of())
        return {"ok": True}

    async with running(StatusServer(sock_path, who)):
        forged = {"cmd": "ping", "caller": {"uid": 4242, "user": "mallory"}, "uid": 4242}
        await exchange(sock_path, json.dumps(forged).encode() + b"\n")
    assert len(seen) == 1
    caller = seen[0]
    assert caller is not None
    # The client is this very process.
    assert (caller.uid, caller.gid, caller.pid) == (os.getuid(), os.getgid(), os.getpid())
    assert caller_of() is None  # outside a connection, nobody is asking


async def test_an_accept_error_is_logged_once_and_the_server_keeps_answering(
    sock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_accept = status_module._accept
    failures = 3

    async def exhausted(sock: socket.socket) -> socket.socket:
        nonlocal failures
        if failures:
            failures -= 1
            await anyio.wait_readable(sock)
            raise OSError(errno.EMFILE, "Too many open files")
        return await real_accept(sock)

    monkeypatch.setattr(status_module, "_accept", exhausted)
    server = StatusServer(sock_path, big)
    with capture_logs() as logs:
        async with running(server):
            with anyio.fail_after(10):
                reply = await request(sock_path, {"cmd": "ping"}, timeout=10)
    assert reply["ok"] is True
    assert failures == 0
    failed = [entry for entry in logs if entry["event"] == "listener.accept_failed"]
    # A burst is one log line, not one per retry.
    assert len(failed) == 1
    assert failed[0]["error"] == "EMFILE"
    assert failed[0]["listener"] == "status"
    assert server.accept_errors.total == 3


async def test_a_client_closed_to_make_room_before_it_was_read_is_told_busy(
    sock_path: Path,
) -> None:
    server = StatusServer(sock_path, big, max_clients=1)
    async with running(server):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waiting:
            waiting.connect(str(sock_path))
            await wait_for(lambda: server.slots.in_use == 1, "the first client is served")
            assert (await request(sock_path, {"cmd": "ping"}, timeout=5))["ok"] is True
            # The first one sent nothing yet; it learns why it was closed, and may ask again.
            waiting.settimeout(5)
            line = waiting.makefile("rb").readline()
    assert json.loads(line) == {
        "ok": False,
        "error": "busy: too many clients on the status socket; try again in a moment",
        "busy": True,
    }


async def test_a_large_last_reply_to_a_half_closed_client_arrives_whole(sock_path: Path) -> None:
    # `printf '{"cmd": ...}' | nc -U`: the client shuts down its side, then reads. The
    # reply (far larger than the socket's buffers) must not be cut when syncd hangs up.
    huge = "y" * 4_000_000

    async def large(request: dict[str, Any]) -> Mapping[str, Any]:
        return {"ok": True, "padding": huge}

    async with running(StatusServer(sock_path, large)):
        for _ in range(3):
            (reply,) = await exchange(sock_path, b'{"cmd": "large"}')
            assert reply["padding"] == huge
