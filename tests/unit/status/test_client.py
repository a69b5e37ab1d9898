"""The status client and `syncd status` / `syncd confirm` against a real StatusServer."""

from __future__ import annotations

import argparse
import io
import json
import os
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from syncd.cli import main
from syncd.status.client import (
    StatusProtocolError,
    StatusUnreachable,
    cli_confirm,
    cli_status,
    query,
    request,
    use_color,
)
from syncd.status.server import StatusRequestError, StatusServer, confirm_args
from tests.unit.status._support import (
    leave_stale_socket,
    running,
    serving_in_thread,
    short_dir,
    status_reply,
)


@pytest.fixture
def sock_path() -> Iterator[Path]:
    with short_dir() as directory:
        yield directory / "status.sock"


def _args(**values: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {"socket": None, "config": None, "json": False}
    return argparse.Namespace(**{**defaults, **values})


def _status_handler(reply: Mapping[str, Any]) -> Any:
    async def handle(request: dict[str, Any]) -> Mapping[str, Any]:
        if request["cmd"] != "status":
            raise StatusRequestError(f"unexpected {request['cmd']}")
        return reply

    return handle


# --- request / query --------------------------------------------------------------------


@pytest.mark.anyio
async def test_request_returns_the_reply(sock_path: Path) -> None:
    async def pong(request: dict[str, Any]) -> Mapping[str, Any]:
        return {"ok": True, "got": request}

    async with running(StatusServer(sock_path, pong)):
        reply = await request(sock_path, {"cmd": "ping", "n": 1})
    assert reply == {"ok": True, "got": {"cmd": "ping", "n": 1}}


@pytest.mark.anyio
async def test_no_socket_file_is_unreachable(sock_path: Path) -> None:
    with pytest.raises(StatusUnreachable, match="is syncd running"):
        await request(sock_path, {"cmd": "status"})


@pytest.mark.anyio
async def test_a_stale_socket_is_unreachable(sock_path: Path) -> None:
    leave_stale_socket(sock_path)
    with pytest.raises(StatusUnreachable, match="nothing is listening"):
        await request(sock_path, {"cmd": "status"})


@pytest.mark.anyio
async def test_a_daemon_that_does_not_answer_in_time_is_unreachable(sock_path: Path) -> None:
    async def stuck(request: dict[str, Any]) -> Mapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with running(StatusServer(sock_path, stuck)):
        with anyio.fail_after(5), pytest.raises(StatusUnreachable, match="did not answer"):
            await request(sock_path, {"cmd": "status"}, timeout=0.2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root connects regardless of file modes")
@pytest.mark.anyio
async def test_permission_denied_is_unreachable(sock_path: Path) -> None:
    async def pong(request: dict[str, Any]) -> Mapping[str, Any]:
        return {"ok": True}

    async with running(StatusServer(sock_path, pong)):
        sock_path.chmod(0)
        with pytest.raises(StatusUnreachable, match="permission denied"):
            await request(sock_path, {"cmd": "status"})


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"hello\n", StatusProtocolError),
        (b'["ok"]\n', StatusProtocolError),
        (b'{"status": "fine"}\n', StatusProtocolError),
        (b"", StatusUnreachable),
    ],
)
async def test_something_that_is_not_syncd_is_reported(
    sock_path: Path, answer: bytes, error: type[Exception]
) -> None:
    listener = await anyio.create_unix_listener(sock_path)

    async def impostor() -> None:
        async with listener, await listener.accept() as stream:
            await stream.receive()
            if answer:
                await stream.send(answer)

    async with anyio.create_task_group() as tg:
        tg.start_soon(impostor)
        with pytest.raises(error):
            await request(sock_path, {"cmd": "status"}, timeout=30)


@pytest.mark.anyio
async def test_a_busy_reply_is_asked_again_until_a_slot_frees(sock_path: Path) -> None:
    release = anyio.Event()

    async def slow(request: dict[str, Any]) -> Mapping[str, Any]:
        if request["cmd"] == "hold":
            await release.wait()
        return {"ok": True, "cmd": request["cmd"]}

    server = StatusServer(sock_path, slow, max_clients=1)
    async with running(server), anyio.create_task_group() as tg:
        tg.start_soon(request, sock_path, {"cmd": "hold"})
        with anyio.fail_after(5):
            while server.slots.in_use < 1:
                await anyio.sleep(0.01)
        answers: list[dict[str, Any]] = []

        async def second() -> None:
            answers.append(await request(sock_path, {"cmd": "ping"}, timeout=10))

        tg.start_soon(second)
        with anyio.fail_after(5):
            while server.slots.refusals < 2:  # turned away, and asked again
                await anyio.sleep(0.01)
        assert answers == []
        release.set()
    assert answers == [{"ok": True, "cmd": "ping"}]


@pytest.mark.anyio
async def test_a_daemon_busy_until_the_deadline_is_unreachable(sock_path: Path) -> None:
    async def stuck(request: dict[str, Any]) -> Mapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    server = StatusServer(sock_path, stuck, max_clients=1)
    async with (
        running(server),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(partial(request, sock_path, {"cmd": "status"}, timeout=30))
        with anyio.fail_after(5):
            while server.slots.in_use < 1:
                await anyio.sleep(0.01)
        with anyio.fail_after(5), pytest.raises(StatusUnreachable, match="stayed busy"):
            await request(sock_path, {"cmd": "status"}, timeout=0.5)
        tg.cancel_scope.cancel()


def test_query_is_the_synchronous_form(sock_path: Path) -> None:
    with serving_in_thread(sock_path, _status_handler(status_reply("ok"))):
        reply = query(sock_path, {"cmd": "status"})
    assert reply["health"] == "ok"
    assert reply["pid"] == 4242


# --- syncd status --------------------------------------------------------------------------


@pytest.mark.parametrize(("health", "code"), [("ok", 0), ("degraded", 1), ("failing", 2)])
def test_exit_code_follows_health(
    sock_path: Path, capsys: pytest.CaptureFixture[str], health: Any, code: int
) -> None:
    with serving_in_thread(sock_path, _status_handler(status_reply(health, ["why"]))):
        assert cli_status(_args(socket=str(sock_path))) == code
    out = capsys.readouterr().out
    assert health.upper() in out.splitlines()[0]
    assert "\x1b" not in out  # captured stdout is not a terminal


def test_a_health_this_version_does_not_know_exits_3(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = dict(status_reply("ok"))
    reply["health"] = "maintenance"
    with serving_in_thread(sock_path, _status_handler(reply)):
        assert cli_status(_args(socket=str(sock_path))) == 3
    assert "unknown health" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 ok, 1 degraded, 2 failing, 3 unknown" in text


def test_json_prints_the_raw_reply(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reply = status_reply("degraded", ["source astral stale for 930 s"])
    with serving_in_thread(sock_path, _status_handler(reply)):
        assert cli_status(_args(socket=str(sock_path), json=True)) == 1
    assert json.loads(capsys.readouterr().out) == reply


def test_unreachable_daemon_exits_3_with_a_message(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 3, not 2: "no answer" must not read as "failing" to a monitoring check.
    assert cli_status(_args(socket=str(sock_path))) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("syncd status: ")
    assert str(sock_path) in captured.err


def test_an_error_reply_exits_3(sock_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def broken(request: dict[str, Any]) -> Mapping[str, Any]:
        raise RuntimeError("bug")

    with serving_in_thread(sock_path, broken):
        assert cli_status(_args(socket=str(sock_path))) == 3
    assert "internal error" in capsys.readouterr().err


def test_the_socket_path_comes_from_the_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    with short_dir() as directory:
        config = directory / "syncd.toml"
        # A relative path is relative to the config file, as the daemon reads it.
        config.write_text('[daemon]\nstatus_socket = "run/status.sock"\n')
        with serving_in_thread(directory / "run" / "status.sock", _status_handler(status_reply())):
            assert cli_status(_args(config=str(config))) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content",
    [None, "this is not toml = = =", '[daemon]\nstatus_socket = ""\n', "[daemon]\nnope = 1\n"],
)
def test_an_unusable_config_exits_3_and_suggests_socket(
    capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    with short_dir() as directory:
        config = directory / "syncd.toml"
        if content is not None:
            config.write_text(content)
        assert cli_status(_args(config=str(config))) == 3
    err = capsys.readouterr().err
    assert str(config) in err
    assert "--socket" in err


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert use_color(_Stream(tty=True)) is True
    assert use_color(_Stream(tty=False)) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(_Stream(tty=True)) is False
    monkeypatch.setenv("NO_COLOR", "")  # no-color.org: an empty value does not count
    assert use_color(_Stream(tty=True)) is True
    monkeypatch.setenv("TERM", "dumb")
    assert use_color(_Stream(tty=True)) is False


# --- syncd confirm ---------------------------------------------------------------------------


def test_confirm_sends_the_hold_and_reports_the_answer(
    sock_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = {("ankorstore", 3)}

    async def confirm(request: dict[str, Any]) -> Mapping[str, Any]:
        channel, hold_id = confirm_args(request)
        if (channel, hold_id) not in held:
            raise StatusRequestError(f"no held cycle {hold_id} on {channel}")
        held.discard((channel, hold_id))
        return {"ok": True, "channel": channel, "confirmed": [hold_id]}

    with serving_in_thread(sock_path, confirm):
        args = _args(socket=str(sock_path), channel="ankorstore", hold_id="3")
        assert cli_confirm(args) == 0
        assert "ankorstore: 3" in capsys.readouterr().out
        assert cli_confirm(args) == 2
        assert "no held cycle 3 on ankorstore" in capsys.readouterr().err
        assert cli_confirm(_args(socket=str(sock_path), channel="x", hold_id="three")) == 2
        assert "number or 'all'" in capsys.readouterr().err
    assert held == set()
