"""Record what a simulator was asked and what it answered (off unless a log is given).

The conformance tests check every exchange between syncd and the
Ankorstore/ASTRAL (and fabric) simulators against the published OpenAPI
documents. Recording on the server side catches every client at once --
the in-process sources and channels and a ``syncd run`` subprocess alike --
without touching syncd's own HTTP code.

:func:`record` wraps a simulator app in two taps:

- an **outer** one, around the :class:`~syncd.sandbox.faults.FaultMiddleware`,
  sees the request exactly as the client sent it and what the client got;
- an **inner** one, between the fault middleware and the simulator, sees
  what the simulator itself answered.

The two differ only when a fault was injected: a ``status`` or ``drop``
fault never reaches the simulator (:attr:`Exchange.answer` is ``None``), a
``malformed_json`` or ``lose_response`` fault replaces or cuts off its
answer. A checker can then validate every request and every answer the
simulator made, and leave the deliberately broken deliveries alone.

Nothing here runs unless a :class:`TrafficLog` is passed: an unrecorded
world serves its apps unwrapped. Admin routes (``/_sandbox/...``) are never
recorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from syncd.sandbox.faults import (
    ADMIN_PREFIX,
    ASGIApp,
    DroppedConnection,
    FaultMiddleware,
    Message,
    Receive,
    Scope,
    Send,
)

_ANSWER_KEY = "syncd.sandbox.answer"
"""ASGI scope key the inner tap fills (the scope dict is shared down the stack)."""

Headers = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _Capture:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)

    def feed(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def freeze(self) -> Answer:
        return Answer(status=self.status, headers=_decode(self.headers), body=bytes(self.body))


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP response: status, headers (lower-case names, in order) and body."""

    status: int
    headers: Headers
    body: bytes


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request a simulator received, and what was answered."""

    api: str
    """Which simulator: ``ankorstore`` (ASTRAL included), ``fabric``..."""
    method: str
    path: str
    """The raw (still percent-encoded) path."""
    query: str
    """The raw query string, without ``?``."""
    headers: Headers
    body: bytes
    answer: Answer | None
    """What the simulator answered; ``None`` when an injected fault answered instead."""
    delivered: Answer
    """What went back on the wire (differs from ``answer`` under a fault)."""
    dropped: bool
    """The connection was cut by a ``drop``/``lose_response`` fault."""

    @property
    def fault_injected(self) -> bool:
        return self.dropped or self.answer is None or self.answer != self.delivered


def _decode(headers: list[tuple[bytes, bytes]]) -> Headers:
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers)


class TrafficLog:
    """Thread-safe list of :class:`Exchange` (simulators may serve from threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exchanges: list[Exchange] = []

    def append(self, exchange: Exchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)

    def drain(self) -> list[Exchange]:
        """Everything recorded so far, removed from the log."""
        with self._lock:
            taken, self._exchanges = self._exchanges, []
        return taken

    def __len__(self) -> int:
        with self._lock:
            return len(self._exchanges)


class _AnswerTap:
    """Inner tap: notes the simulator's own answer in the shared scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        capture = _Capture()
        scope[_ANSWER_KEY] = capture

        async def tapped(message: Message) -> None:
            capture.feed(message)
            await send(message)

        await self.app(scope, receive, tapped)


class _RecordingMiddleware:
    """Outer tap: the request as sent and the answer as delivered, into ``log``."""

    def __init__(self, app: ASGIApp, api: str, log: TrafficLog) -> None:
        self.app = app
        self.api = api
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        # The whole body is read first and handed on in one message: a request
        # refused before the simulator reads it (a 415, a 401) is recorded whole.
        body, early = await _read_body(receive)
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        if early is not None:
            replay.append(early)

        async def receiving() -> Message:
            return replay.pop(0) if replay else await receive()

        delivered = _Capture()

        async def sending(message: Message) -> None:
            delivered.feed(message)
            await send(message)

        dropped = False
        try:
            await self.app(scope, receiving, sending)
        except DroppedConnection:
            dropped = True
            raise
        finally:
            answered: _Capture | None = scope.get(_ANSWER_KEY)
            raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
            self.log.append(
                Exchange(
                    api=self.api,
                    method=scope["method"],
                    path=raw_path.decode("latin-1"),
                    query=bytes(scope.get("query_string", b"")).decode("latin-1"),
                    headers=_decode(list(scope.get("headers", []))),
                    body=body,
                    answer=answered.freeze() if answered is not None else None,
                    delivered=delivered.freeze(),
                    dropped=dropped,
                )
            )


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The request body, and the message that cut it short (a disconnect), if any."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def record(app: ASGIApp, api: str, log: TrafficLog) -> ASGIApp:
    """``app`` recording every non-admin exchange into ``log``.

    The inner tap goes directly under ``app``'s :class:`FaultMiddleware`
    (every simulator's ``create_app`` returns one), so injected faults can be
    told from the simulator's own answers.
    """
    if isinstance(app, FaultMiddleware):
        app.app = _AnswerTap(app.app)
    return _RecordingMiddleware(app, api, log)
