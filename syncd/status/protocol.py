"""The status socket's protocol: request and reply shapes, and pure helpers.

Line-delimited JSON: one request object per line, one reply object per line.
Every reply has ``"ok": bool`` and, when not ok, ``"error": str``. The daemon
fills the reply TypedDicts below; ``syncd status`` renders them; README.md
documents them for people writing their own clients. Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

_ECHO_LIMIT = 40
"""How much of an unknown command name an error reply repeats."""

Health = Literal["ok", "degraded", "failing"]

# --- requests ------------------------------------------------------------------


class StatusRequest(TypedDict):
    cmd: Literal["status"]


class ExplainRequest(TypedDict):
    cmd: Literal["explain"]
    sku: str
    channel: NotRequired[str | None]


class ConfirmRequest(TypedDict):
    cmd: Literal["confirm"]
    channel: str
    hold_id: int | Literal["all"]


class UnparkRequest(TypedDict):
    cmd: Literal["unpark"]
    channel: str
    skus: list[str] | Literal["all"]
    note: NotRequired[str]
    """Why, kept in the push log (at most ``MAX_NOTE_CHARS``) beside the caller's real
    user, which the daemon takes from the socket's peer credentials."""


class MetricsRequest(TypedDict):
    cmd: Literal["metrics"]


class PingRequest(TypedDict):
    cmd: Literal["ping"]


# --- replies -------------------------------------------------------------------


class ErrorReply(TypedDict):
    ok: Literal[False]
    error: str


class RateWindowStatus(TypedDict):
    window: str
    """``minute``, ``hour``, ``day`` or any other name the limiter uses."""
    limit: int
    used: int
    remaining: int
    resets_in_s: float | None


class ParkedVariant(TypedDict):
    sku: str
    reason: str


class HeldCycle(TypedDict):
    """A push cycle held by the safety interlock until someone confirms it."""

    hold_id: int
    reason: str
    created_at: str
    zeroes: int
    changes: int
    variants: int


class SourceStatus(TypedDict):
    name: str
    enabled: bool
    last_success: str | None
    age_s: float | None
    stale: bool
    cursor: str | None
    last_error: str | None
    records: int


class ProgressStatus(TypedDict):
    """A channel's backlog while values are queued (see :mod:`syncd.progress`)."""

    done: int
    """Values acknowledged since the backlog started."""
    total: int
    """``done`` plus the values still queued."""
    rate_per_min: float | None
    """Acknowledged values per minute over the last five minutes (None: too early)."""
    eta_s: float | None
    """Seconds until the queue is through, never below what the rate budget allows."""


class ChannelStatus(TypedDict):
    name: str
    enabled: bool
    queue_depth: int
    last_push: str | None
    pushes: int
    variants_pushed: int
    errors: int
    rate_limited: int
    rate_limit: list[RateWindowStatus]
    """Empty when the channel documents no limit (fabric)."""
    parked: list[ParkedVariant]
    held: list[HeldCycle]
    waiting: list[str]
    """Why the last push round held increases back, one sentence each (e.g. the
    channel's order feed is overdue); empty when nothing waits."""
    progress: ProgressStatus | None
    """None when nothing is queued."""


class StatusReply(TypedDict):
    """The answer to ``{"cmd": "status"}``. Timestamps are ISO 8601 with offset."""

    ok: Literal[True]
    health: Health
    reasons: list[str]
    """Why health is not ``ok``, one short sentence each; empty when healthy."""
    version: str
    pid: int
    started_at: str
    generated_at: str
    """When the daemon built this reply: the reference for every age shown."""
    uptime_s: float
    config: str
    sources: list[SourceStatus]
    channels: list[ChannelStatus]
    counters: dict[str, int]
    """Since start: at least ``pushes``, ``errors``, ``http_429``, ``cycles``."""
    gauges: dict[str, float]


class MetricsReply(TypedDict):
    ok: Literal[True]
    counters: dict[str, int]
    gauges: dict[str, float]


class ConfirmReply(TypedDict):
    ok: Literal[True]
    channel: str
    confirmed: list[int]
    """The hold ids released for pushing."""


class UnparkReply(TypedDict):
    ok: Literal[True]
    channel: str
    unparked: list[str]
    """The SKUs made pushable again, sorted."""
    not_parked: list[str]
    """SKUs asked for by name that were not parked (nothing was done for them)."""


class PingReply(TypedDict):
    ok: Literal[True]
    version: str
    pid: int


StatusHandler = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any]]]
"""Receives a parsed request (a dict with a ``cmd`` string), returns the reply."""

INTERNAL_ERROR: ErrorReply = {"ok": False, "error": "internal error"}
TOO_LARGE: ErrorReply = {"ok": False, "error": "request too large"}
BUSY_ERROR = "busy: too many clients on the status socket; try again in a moment"
"""The error of a client turned away because every slot is answering someone else."""


# --- who is asking ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """The process at the other end of a status connection, as the kernel reports it."""

    uid: int
    gid: int
    pid: int
    user: str | None = None
    """The uid's login name, when the daemon could look it up."""

    def describe(self) -> str:
        """``alice (uid 1000)``, or ``uid 1000`` when the uid has no name."""
        return f"{self.user} (uid {self.uid})" if self.user else f"uid {self.uid}"


CURRENT_CALLER: ContextVar[Caller | None] = ContextVar("syncd_status_caller", default=None)
"""The kernel-reported caller of the request being answered.

The server sets it in each connection's own task, before any request of
that connection reaches a handler; it is not part of the request, so a
client has no way to name someone else.
"""


def caller_of() -> Caller | None:
    """Who sent the request being answered (``SO_PEERCRED``); None outside a connection."""
    return CURRENT_CALLER.get()


def audit_note(action: str, who: str, note: str) -> str:
    """The push-log text of an operator action: the real user first, the client's words after.

    e.g. ``unparked by alice (uid 1000); note: listing fixed``. ``note`` is what
    the client sent; it may name anyone, so it is only ever kept as a note.
    """
    text = f"{action} by {who}"
    return f"{text}; note: {note}" if note else text


class StatusRequestError(Exception):
    """A request the daemon cannot act on; the message is sent as the reply's error.

    Handlers raise it for a wrong argument or an unknown SKU or hold; any
    other exception becomes ``"internal error"``.
    """


# --- protocol helpers (pure) ------------------------------------------------------


def parse_request(line: bytes) -> dict[str, Any]:
    """Decode one request line into a dict with a ``cmd`` string.

    Raises :class:`StatusRequestError` with a message fit for the reply.
    """
    text = line.strip()
    if not text:
        raise StatusRequestError(
            'empty request: send one JSON object per line, e.g. {"cmd": "status"}'
        )
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StatusRequestError("request is not valid UTF-8") from exc
    try:
        request = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise StatusRequestError(f"invalid JSON: {exc.msg} at column {exc.colno}") from exc
    except RecursionError as exc:
        # The C decoder recurses once per nesting level: "[[[[..." a few
        # thousand deep would otherwise escape as an unexpected exception.
        raise StatusRequestError("invalid JSON: nested too deeply") from exc
    if not isinstance(request, dict):
        raise StatusRequestError('request must be a JSON object, e.g. {"cmd": "status"}')
    if not isinstance(request.get("cmd"), str):
        raise StatusRequestError('request needs a "cmd" string, e.g. {"cmd": "status"}')
    return request


def explain_args(request: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(sku, channel)`` of an ``explain`` request; ``channel`` None means all."""
    sku = request.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise StatusRequestError('explain needs a "sku" string')
    channel = request.get("channel")
    if channel is not None and (not isinstance(channel, str) or not channel):
        raise StatusRequestError('"channel" must be a channel name or null')
    return sku, channel


def confirm_args(request: Mapping[str, Any]) -> tuple[str, int | Literal["all"]]:
    """``(channel, hold_id)`` of a ``confirm`` request; ``hold_id`` may be ``"all"``."""
    channel = request.get("channel")
    if not isinstance(channel, str) or not channel:
        raise StatusRequestError('confirm needs a "channel" string')
    hold_id = request.get("hold_id")
    if hold_id == "all":
        return channel, "all"
    # bool is an int subclass; `true` is not a hold id.
    if isinstance(hold_id, bool) or not isinstance(hold_id, int) or hold_id < 1:
        raise StatusRequestError('confirm needs "hold_id": a positive integer or "all"')
    return channel, hold_id


MAX_UNPARK_SKUS = 1_000
"""SKUs one ``unpark`` request may name (``"all"`` has no limit); keeps a request line
well under the socket's 64 KiB limit."""


MAX_NOTE_CHARS = 300
"""Longest ``note`` an ``unpark`` request may carry into the push log."""


def unpark_args(request: Mapping[str, Any]) -> tuple[str, list[str] | Literal["all"], str]:
    """``(channel, skus, note)`` of an ``unpark`` request; ``skus`` may be ``"all"``.

    ``note`` is the client's own text (empty when it sent none), whitespace folded.
    """
    channel = request.get("channel")
    if not isinstance(channel, str) or not channel:
        raise StatusRequestError('unpark needs a "channel" string')
    note = request.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise StatusRequestError(f'"note" must be a string of at most {MAX_NOTE_CHARS} characters')
    note = " ".join(note.split())
    skus = request.get("skus")
    if skus == "all":
        return channel, "all", note
    if (
        not isinstance(skus, list)
        or not skus
        or not all(isinstance(sku, str) and sku.strip() for sku in skus)
    ):
        raise StatusRequestError('unpark needs "skus": a non-empty list of SKU strings or "all"')
    if len(skus) > MAX_UNPARK_SKUS:
        raise StatusRequestError(
            f"unpark takes at most {MAX_UNPARK_SKUS} SKUs per request; use --all or several calls"
        )
    return channel, sorted(set(skus)), note


def route(commands: Mapping[str, StatusHandler]) -> StatusHandler:
    """A handler that dispatches on ``cmd``; an unknown command is an error reply."""
    known = ", ".join(sorted(commands))

    async def handle(request: dict[str, Any]) -> Mapping[str, Any]:
        cmd = str(request["cmd"])
        target = commands.get(cmd)
        if target is None:
            shown = cmd if len(cmd) <= _ECHO_LIMIT else cmd[:_ECHO_LIMIT] + "..."
            raise StatusRequestError(f"unknown command {shown!r} (known: {known})")
        return await target(request)

    return handle


def normalise_reply(reply: object) -> dict[str, Any]:
    """Every reply carries a bool ``ok`` first and, when not ok, an ``error``."""
    if not isinstance(reply, Mapping):
        raise TypeError(f"status handler returned {type(reply).__name__}, not a mapping")
    body = {str(key): value for key, value in reply.items() if key != "ok"}
    ok = reply.get("ok", True)
    if not isinstance(ok, bool):
        raise TypeError(f'status handler returned a non-bool "ok": {ok!r}')
    if not ok and not isinstance(body.get("error"), str):
        body["error"] = "unspecified error"
    return {"ok": ok, **body}


def encode_reply(reply: Mapping[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON and would break strict clients.
    text = json.dumps(reply, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"
