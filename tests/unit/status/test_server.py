"""The status socket server: safe creation, bounded reads, error replies, concurrency."""

from __future__ import annotations

import json
import os
import socket
import stat
import tracemalloc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from syncd.status import server as status_module
from syncd.status.server import (
    SOCKET_MODE,
    StatusRequestError,
    StatusServer,
    StatusSocketError,
    StatusSocketInUse,
)
from tests.unit.status._support import exchange, leave_stale_socket, running, short_dir

pytestmark = pytest.mark.anyio


@pytest.fixture
def sock_path() -> Iterator[Path]:
    with short_dir() as directory:
        yield directory / "status.sock"


async def echo(request: dict[str, Any]) -> Mapping[str, Any]:
    return {"ok": True, "echo": request}


async def ping(path: Path) -> dict[str, Any]:
    (reply,) = await exchange(path, b'{"cmd": "ping"}\n')
    return reply


# --- creating the socket file ---------------------------------------------------------


async def test_socket_file_is_0660_even_under_a_permissive_umask(sock_path: Path) -> None:
    previous = os.umask(0)
    try:
        async with running(StatusServer(sock_path, echo)):
            mode = sock_path.stat().st_mode
    finally:
        os.umask(previous)
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == SOCKET_MODE
    assert stat.S_IMODE(mode) & stat.S_IRWXO == 0


def test_bind_creates_the_file_owner_only_before_any_chmod(sock_path: Path) -> None:
    previous = os.umask(0)  # the worst umask a daemon could inherit
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            status_module._bind_owner_only(sock, sock_path)
            mode = stat.S_IMODE(sock_path.stat().st_mode)
        finally:
            sock.close()
        restored = os.umask(previous)
    finally:
        os.umask(previous)
    assert mode & (stat.S_IRWXG | stat.S_IRWXO) == 0
    assert restored == 0, "the process umask must be put back after binding"


async def test_missing_parent_directory_is_created_0750() -> None:
    with short_dir() as base:
        path = base / "run" / "syncd" / "status.sock"
        async with running(StatusServer(path, echo)):
            assert (await ping(path))["ok"] is True
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750


async def test_socket_file_is_removed_on_shutdown(sock_path: Path) -> None:
    async with running(StatusServer(sock_path, echo)):
        assert sock_path.exists()
    assert not sock_path.exists()


async def test_stale_socket_from_a_crash_is_replaced(sock_path: Path) -> None:
    leave_stale_socket(sock_path)
    with capture_logs() as logs:
        async with running(StatusServer(sock_path, echo)):
            assert (await ping(sock_path))["ok"] is True
            assert stat.S_IMODE(sock_path.stat().st_mode) == SOCKET_MODE
    assert any(entry["event"] == "status.stale_socket_removed" for entry in logs)


async def test_a_live_socket_is_never_taken_over(sock_path: Path) -> None:
    async with running(StatusServer(sock_path, echo)):
        owner = sock_path.stat().st_ino
        with anyio.fail_after(5), pytest.raises(StatusSocketInUse, match="another process answers"):
            await StatusServer(sock_path, echo).serve()
        assert sock_path.stat().st_ino == owner
        assert (await ping(sock_path))["ok"] is True


@pytest.mark.parametrize("kind", ["regular file", "directory", "symlink"])
async def test_a_path_that_is_not_a_socket_is_refused_and_left_alone(
    sock_path: Path, kind: str
) -> None:
    if kind == "regular file":
        sock_path.write_text("precious\n")
    elif kind == "directory":
        sock_path.mkdir()
    else:
        target = sock_path.with_name("target")
        target.write_text("precious\n")
        sock_path.symlink_to(target)
    with anyio.fail_after(5), pytest.raises(StatusSocketError, match="refusing to replace"):
        await StatusServer(sock_path, echo).serve()
    if kind == "regular file":
        assert sock_path.read_text() == "precious\n"
    elif kind == "directory":
        assert sock_path.is_dir()
    else:
        assert sock_path.is_symlink()


async def test_a_path_too_long_for_a_unix_socket_is_a_clear_error() -> None:
    with short_dir() as base:
        path = base / ("x" * 120) / "status.sock"
        with anyio.fail_after(5), pytest.raises(StatusSocketError, match="longer than"):
            await StatusServer(path, echo).serve()


# --- requests and replies -----------------------------------------------------------------


async def test_garbage_gets_error_replies_and_the_connection_keeps_serving(
    sock_path: Path,
) -> None:
    lines = [
        b"hello there",
        b'{"cmd": "status"',
        b"\xff\xfe\xfa",
        b"[" * 50_000,  # deep nesting blows the JSON decoder's recursion limit
        b"[1, 2, 3]",
        b'{"command": "status"}',
        b'{"cmd": 7}',
        b"",
        b'{"cmd": "ping"}',
    ]
    async with running(StatusServer(sock_path, echo)):
        replies = await exchange(sock_path, b"\n".join(lines) + b"\n")
        assert await ping(sock_path) == {"ok": True, "echo": {"cmd": "ping"}}
    assert len(replies) == len(lines)
    for reply in replies[:-1]:
        assert reply["ok"] is False
        assert isinstance(reply["error"], str)
        assert reply["error"]
    assert replies[-1] == {"ok": True, "echo": {"cmd": "ping"}}
    assert "invalid JSON" in replies[1]["error"]
    assert "UTF-8" in replies[2]["error"]
    assert "nested too deeply" in replies[3]["error"]
    assert "JSON object" in replies[4]["error"]
    assert '"cmd"' in replies[5]["error"]


async def test_several_requests_on_one_connection_are_answered_in_order(
    sock_path: Path,
) -> None:
    async with running(StatusServer(sock_path, echo)):
        replies = await exchange(sock_path, b'{"cmd": "a"}\n{"cmd": "b"}\r\n{"cmd": "c", "n": 1}\n')
    assert [reply["echo"]["cmd"] for reply in replies] == ["a", "b", "c"]
    assert replies[2]["echo"]["n"] == 1


async def test_an_unterminated_last_request_is_still_answered(sock_path: Path) -> None:
    async with running(StatusServer(sock_path, echo)):
        replies = await exchange(sock_path, b'{"cmd": "ping"}')
    assert replies == [{"ok": True, "echo": {"cmd": "ping"}}]


def _send_huge_line(path: Path, total: int) -> tuple[int, bytes]:
    """Push ``total`` bytes with no newline; return (bytes sent, bytes received)."""
    chunk = memoryview(b"x" * 65_536)
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(path))
        try:
            while sent < total:
                sent += sock.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server hung up, as it should
        received = b""
        try:
            while data := sock.recv(65_536):
                received += data
        except ConnectionResetError:
            pass
    return sent, received


async def test_a_10_mb_line_is_refused_without_being_held_in_memory(sock_path: Path) -> None:
    total = 10 * 1024 * 1024
    async with running(StatusServer(sock_path, echo)):
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            baseline = tracemalloc.get_traced_memory()[0]
            async with anyio.create_task_group() as tg:
                result: dict[str, tuple[int, bytes]] = {}

                async def huge() -> None:
                    result["huge"] = await anyio.to_thread.run_sync(
                        _send_huge_line, sock_path, total
                    )

                tg.start_soon(huge)
                # Other clients are served while the huge line is coming in.
                for _ in range(5):
                    assert (await ping(sock_path))["ok"] is True
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    sent, received = result["huge"]
    assert json.loads(received) == {"ok": False, "error": "request too large"}
    assert sent < total, "the server must hang up instead of reading the whole line"
    assert peak - baseline < 2 * 1024 * 1024


async def test_a_line_just_over_the_limit_is_refused(sock_path: Path) -> None:
    async with running(StatusServer(sock_path, echo, max_request_bytes=1024)):
        padding = "y" * 1100
        replies = await exchange(sock_path, f'{{"cmd": "ping", "pad": "{padding}"}}\n'.encode())
        fits = await exchange(sock_path, b'{"cmd": "ping", "pad": "' + b"y" * 900 + b'"}\n')
    assert replies == [{"ok": False, "error": "request too large"}]
    assert fits[0]["ok"] is True


async def test_handler_exception_is_an_internal_error_with_a_logged_traceback(
    sock_path: Path,
) -> None:
    async def broken(request: dict[str, Any]) -> Mapping[str, Any]:
        if request["cmd"] == "boom":
            raise KeyError("missing-channel")
        return {"ok": True}

    with capture_logs() as logs:
        async with running(StatusServer(sock_path, broken)):
            replies = await exchange(sock_path, b'{"cmd": "boom"}\n{"cmd": "ping"}\n')
    assert replies == [{"ok": False, "error": "internal error"}, {"ok": True}]
    (failure,) = [entry for entry in logs if entry["event"] == "status.handler_failed"]
    assert failure["log_level"] == "error"
    assert failure["exc_info"] is True
    assert failure["cmd"] == "boom"


async def test_request_errors_raised_by_the_handler_reach_the_client(sock_path: Path) -> None:
    async def picky(request: dict[str, Any]) -> Mapping[str, Any]:
        raise StatusRequestError("no held cycle 9 on ankorstore")

    async with running(StatusServer(sock_path, picky)):
        replies = await exchange(sock_path, b'{"cmd": "confirm"}\n')
    assert replies == [{"ok": False, "error": "no held cycle 9 on ankorstore"}]


async def test_replies_always_carry_ok_and_unencodable_replies_are_internal_errors(
    sock_path: Path,
) -> None:
    async def odd(request: dict[str, Any]) -> Mapping[str, Any]:
        answers: dict[str, Mapping[str, Any]] = {
            "bare": {"pong": True},
            "failed": {"ok": False},
            "nan": {"ok": True, "gauge": float("nan")},
            "object": {"ok": True, "when": object()},
        }
        return answers[request["cmd"]]

    async with running(StatusServer(sock_path, odd)):
        replies = await exchange(
            sock_path, b'{"cmd": "bare"}\n{"cmd": "failed"}\n{"cmd": "nan"}\n{"cmd": "object"}\n'
        )
    assert replies[0] == {"ok": True, "pong": True}
    assert replies[1]["ok"] is False
    assert replies[1]["error"]
    assert replies[2] == {"ok": False, "error": "internal error"}
    assert replies[3] == {"ok": False, "error": "internal error"}


async def test_an_idle_connection_is_closed(sock_path: Path) -> None:
    async with running(StatusServer(sock_path, echo, read_timeout=0.2)):
        async with await anyio.connect_unix(sock_path) as stream:
            with anyio.fail_after(60), pytest.raises(anyio.EndOfStream):
                await stream.receive()
        assert (await ping(sock_path))["ok"] is True


# --- many clients -------------------------------------------------------------------------


async def test_a_hundred_concurrent_clients_are_all_answered_together(sock_path: Path) -> None:
    clients = 100
    in_flight = 0
    everyone_here = anyio.Event()

    async def gather(request: dict[str, Any]) -> Mapping[str, Any]:
        # Each reply waits until all clients are inside the handler at once,
        # which only happens if they are served concurrently.
        nonlocal in_flight
        in_flight += 1
        if in_flight == clients:
            everyone_here.set()
        await everyone_here.wait()
        return {"ok": True, "n": request["n"]}

    answers: list[int] = []

    async def client(n: int) -> None:
        (reply,) = await exchange(sock_path, json.dumps({"cmd": "ping", "n": n}).encode() + b"\n")
        answers.append(reply["n"])

    async with running(StatusServer(sock_path, gather)):
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for n in range(clients):
                    tg.start_soon(client, n)
    assert sorted(answers) == list(range(clients))
