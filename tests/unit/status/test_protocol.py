"""Status protocol helpers: request parsing, argument checks, routing, reply shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from syncd.status.protocol import (
    StatusRequestError,
    confirm_args,
    encode_reply,
    explain_args,
    normalise_reply,
    parse_request,
    route,
)


def test_parse_request_accepts_an_object_with_a_cmd_string() -> None:
    request = parse_request(b'  {"cmd": "explain", "sku": "SKU-1", "channel": null}\r\n')
    assert request == {"cmd": "explain", "sku": "SKU-1", "channel": None}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"", "empty request"),
        (b"   ", "empty request"),
        (b"status", "invalid JSON"),
        (b'{"cmd": "status",}', "invalid JSON"),
        (b"\xc3\x28", "not valid UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'"status"', "JSON object"),
        (b"null", "JSON object"),
        (b"{}", '"cmd" string'),
        (b'{"cmd": ["status"]}', '"cmd" string'),
    ],
)
def test_parse_request_rejects_with_a_message_for_the_client(line: bytes, message: str) -> None:
    with pytest.raises(StatusRequestError, match=message):
        parse_request(line)


def test_explain_args() -> None:
    assert explain_args({"cmd": "explain", "sku": "SKU-1"}) == ("SKU-1", None)
    assert explain_args({"cmd": "explain", "sku": "SKU-1", "channel": "fabric"}) == (
        "SKU-1",
        "fabric",
    )
    for bad in ({"cmd": "explain"}, {"cmd": "explain", "sku": " "}, {"sku": 12}):
        with pytest.raises(StatusRequestError, match="sku"):
            explain_args(bad)
    with pytest.raises(StatusRequestError, match="channel"):
        explain_args({"sku": "SKU-1", "channel": 3})


def test_confirm_args() -> None:
    assert confirm_args({"channel": "ankorstore", "hold_id": 3}) == ("ankorstore", 3)
    assert confirm_args({"channel": "ankorstore", "hold_id": "all"}) == ("ankorstore", "all")
    for hold in (None, True, 0, -2, 1.5, "3", "everything"):
        with pytest.raises(StatusRequestError, match="hold_id"):
            confirm_args({"channel": "ankorstore", "hold_id": hold})
    with pytest.raises(StatusRequestError, match="channel"):
        confirm_args({"hold_id": 3})


@pytest.mark.anyio
async def test_route_dispatches_and_names_known_commands_for_unknown_ones() -> None:
    async def pong(request: dict[str, Any]) -> Mapping[str, Any]:
        return {"ok": True, "pong": request["cmd"]}

    handler = route({"ping": pong, "status": pong})
    assert await handler({"cmd": "ping"}) == {"ok": True, "pong": "ping"}
    with pytest.raises(
        StatusRequestError, match=r"unknown command 'stauts' \(known: ping, status\)"
    ):
        await handler({"cmd": "stauts"})
    with pytest.raises(StatusRequestError) as excinfo:
        await handler({"cmd": "x" * 5000})
    assert len(str(excinfo.value)) < 200


def test_normalise_reply_puts_ok_first_and_fills_a_missing_error() -> None:
    assert list(normalise_reply({"pid": 1, "ok": True})) == ["ok", "pid"]
    assert normalise_reply({"pid": 1}) == {"ok": True, "pid": 1}
    assert normalise_reply({"ok": False}) == {"ok": False, "error": "unspecified error"}
    with pytest.raises(TypeError):
        normalise_reply(["ok"])
    with pytest.raises(TypeError):
        normalise_reply({"ok": "yes"})


def test_encode_reply_is_one_strict_json_line() -> None:
    line = encode_reply({"ok": True, "reason": "line one\nline two", "sku": "é"})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {"ok": True, "reason": "line one\nline two", "sku": "é"}
    with pytest.raises(ValueError, match="JSON"):
        encode_reply({"ok": True, "gauge": float("inf")})
