"""Talk to a running syncd over its status socket; `syncd status` and `syncd confirm`.

:func:`request` sends one request and returns the reply; every way of not
getting a reply (no socket file, nobody listening, no permission, no answer
in time, a reply that is not syncd's protocol) raises
:class:`StatusUnreachable` with a message meant for a person.

Exit codes of ``syncd status`` follow the monitoring-plugin convention, so a
check can run it as is: 0 healthy, 1 degraded, 2 failing, 3 unknown -- no
answer from the daemon (not running, stuck, no permission, busy until the
deadline), an error reply, or a health this version does not know.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from syncd.status.render import render_status

EXIT_HEALTHY = 0
EXIT_DEGRADED = 1
EXIT_FAILING = 2
EXIT_UNREACHABLE = 3
DEFAULT_TIMEOUT_S = 5.0
BUSY_RETRY_S = 0.2
"""Pause before asking again after a ``busy`` reply."""
MAX_REPLY_BYTES = 64 * 1024 * 1024
"""A status reply lists every parked variant; allow large catalogs, not unbounded."""

_EXIT_BY_HEALTH = {"ok": EXIT_HEALTHY, "degraded": EXIT_DEGRADED, "failing": EXIT_FAILING}


class StatusUnreachable(Exception):
    """No usable answer from the daemon; ``str()`` says why, for people."""


class StatusProtocolError(StatusUnreachable):
    """Something answered, but not with syncd's status protocol."""


class StatusConfigError(Exception):
    """The socket path could not be taken from the config file."""


# --- client ----------------------------------------------------------------------------


async def request(
    path: str | os.PathLike[str],
    payload: dict[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,  # noqa: ASYNC109  # one deadline for connect + reply
) -> dict[str, Any]:
    """Send ``payload`` as one line and return the daemon's one-line reply.

    A ``busy`` reply (every slot of the daemon is answering someone else) is
    asked again after a short pause until the deadline, then reported as
    :class:`StatusUnreachable`.
    """
    where = os.fspath(path)
    deadline = anyio.current_time() + timeout
    busy = StatusUnreachable(
        f"syncd on {where} stayed busy for {timeout:g} s: too many clients at once"
    )
    turned_away = False
    while True:
        try:
            reply = await _exchange(where, payload, deadline, timeout_s=timeout)
        except StatusUnreachable as exc:
            if turned_away and isinstance(exc.__cause__, TimeoutError):
                raise busy from exc  # the deadline came while waiting for a slot
            raise
        if reply.get("busy") is not True or reply.get("ok") is not False:
            return reply
        turned_away = True
        if anyio.current_time() + BUSY_RETRY_S >= deadline:
            raise busy
        await anyio.sleep(BUSY_RETRY_S)


async def _exchange(
    where: str, payload: dict[str, Any], deadline: float, *, timeout_s: float
) -> dict[str, Any]:
    """One connection, one request, one reply, by ``deadline``; ``timeout_s`` is for messages."""
    line = json.dumps(payload, allow_nan=False).encode("utf-8") + b"\n"
    try:
        with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
            async with await anyio.connect_unix(where) as stream:
                await stream.send(line)
                raw = await BufferedByteReceiveStream(stream).receive_until(b"\n", MAX_REPLY_BYTES)
    except TimeoutError as exc:
        raise StatusUnreachable(
            f"syncd did not answer on {where} within {timeout_s:g} s (is it stuck?)"
        ) from exc
    except FileNotFoundError as exc:
        raise StatusUnreachable(
            f"no status socket at {where}: is syncd running? (systemctl status syncd)"
        ) from exc
    except ConnectionRefusedError as exc:
        raise StatusUnreachable(
            f"nothing is listening on {where}: syncd is not running "
            "(the file may be left over from a crash)"
        ) from exc
    except PermissionError as exc:
        raise StatusUnreachable(
            f"permission denied on {where}: run as the syncd user or a member of its group"
        ) from exc
    except anyio.IncompleteRead as exc:
        raise StatusUnreachable(
            f"syncd closed the connection on {where} without answering"
        ) from exc
    except anyio.DelimiterNotFound as exc:
        raise StatusProtocolError(
            f"the reply on {where} is longer than {MAX_REPLY_BYTES} bytes"
        ) from exc
    except (anyio.BrokenResourceError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise StatusUnreachable(f"cannot talk to syncd on {where}: {reason}") from exc
    return _decode_reply(raw, where)


def _decode_reply(raw: bytes, where: str) -> dict[str, Any]:
    try:
        reply = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise StatusProtocolError(f"the reply on {where} is not JSON; is this syncd?") from exc
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise StatusProtocolError(
            f'the reply on {where} has no "ok" field; is this syncd\'s status socket?'
        )
    return reply


def query(
    path: str | os.PathLike[str], payload: dict[str, Any], timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """:func:`request` for synchronous callers (the CLI); not from inside an event loop."""
    return anyio.run(partial(request, path, payload, timeout=timeout))


# --- CLI ---------------------------------------------------------------------------------


def socket_path(args: argparse.Namespace) -> Path:
    """``--socket`` if given, else ``daemon.status_socket`` of the config file."""
    if getattr(args, "socket", None):
        return Path(args.socket)
    config_path = getattr(args, "config", None)
    if not config_path:
        from syncd.cli_options import default_config_path  # noqa: PLC0415  # on use, as below

        config_path = default_config_path()
    try:
        configured = _configured_socket(Path(config_path))
    except Exception as exc:  # any failure to read the file means the same to the user
        raise StatusConfigError(
            f"cannot read the socket path from {config_path} ({_one_line(exc)}); pass --socket PATH"
        ) from exc
    if configured is None:
        raise StatusConfigError(f"{config_path} sets no daemon.status_socket; pass --socket PATH")
    return configured


def _configured_socket(config_path: Path) -> Path | None:
    """``daemon.status_socket`` as the daemon reads it (`syncd.config.read_daemon_section`)."""
    # Imported on use: `syncd status --socket PATH` must work whatever state
    # the config code or file is in.
    from syncd.config import read_daemon_section  # noqa: PLC0415

    return read_daemon_section(config_path).status_socket


def health_exit_code(health: object) -> int:
    """0 for ``ok``, 1 for ``degraded``, 2 for ``failing``, 3 for anything else (unknown)."""
    if not isinstance(health, str):
        return EXIT_UNREACHABLE
    return _EXIT_BY_HEALTH.get(health, EXIT_UNREACHABLE)


def use_color(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR", "") != "" or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def cli_status(args: argparse.Namespace) -> int:
    """``syncd status [--socket PATH] [--config PATH] [--json]``."""
    reply = _ask(args, {"cmd": "status"}, "status")
    if reply is None:
        return EXIT_UNREACHABLE
    if getattr(args, "json", False):
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    if not reply["ok"]:
        _complain("status", f"the daemon answered with an error: {reply.get('error')}")
        return EXIT_UNREACHABLE
    if not getattr(args, "json", False):
        print(render_status(reply, color=use_color(sys.stdout)))
    health = reply.get("health")
    if health not in _EXIT_BY_HEALTH:
        _complain("status", f"unknown health {health!r} in the reply")
    return health_exit_code(health)


def cli_confirm(args: argparse.Namespace) -> int:
    """``syncd confirm CHANNEL HOLD_ID|all [--socket PATH] [--config PATH] [--json]``.

    Exit 0 when the daemon released the held cycle(s), 2 otherwise.
    """
    hold: int | str = args.hold_id
    if isinstance(hold, str) and hold != "all":
        try:
            hold = int(hold)
        except ValueError:
            _complain("confirm", f"hold id must be a number or 'all', not {hold!r}")
            return EXIT_FAILING
    reply = _ask(args, {"cmd": "confirm", "channel": args.channel, "hold_id": hold}, "confirm")
    if reply is None:
        return EXIT_FAILING
    if getattr(args, "json", False):
        print(json.dumps(reply, indent=2, ensure_ascii=False))
    if not reply["ok"]:
        _complain("confirm", str(reply.get("error")))
        return EXIT_FAILING
    if not getattr(args, "json", False):
        confirmed = reply.get("confirmed") or []
        shown = ", ".join(str(item) for item in confirmed) or "none"
        print(f"confirmed held cycle(s) on {args.channel}: {shown}")
    return EXIT_HEALTHY


def _ask(args: argparse.Namespace, payload: dict[str, Any], command: str) -> dict[str, Any] | None:
    """The reply, or None after telling the user on stderr why there is none."""
    try:
        path = socket_path(args)
        return query(path, payload)
    except (StatusConfigError, StatusUnreachable) as exc:
        _complain(command, str(exc))
        return None


def _complain(command: str, message: str) -> None:
    print(f"syncd {command}: {message}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] if text else type(exc).__name__
