"""Fault injection for the sandbox simulators, switchable per API at run time.

Every simulator app is wrapped in :class:`FaultMiddleware` around its own
:class:`FaultPlan`. Tests, the demo and the crash script arm faults either
in-process (``plan.arm(...)``) or over HTTP on the simulator's admin route
``POST /_sandbox/faults`` (JSON ``{"kind": ..., "count": ..., ...}``), which
the middleware serves itself so every simulator gets it for free.

Generic faults (handled here, before or after the simulator's own handler):

- ``status``: answer with ``status`` (429 storms carry ``Retry-After`` and the
  rate-limit headers; 5xx carry a JSON error body) without running the handler;
- ``delay``: sleep ``seconds`` before handling (slow responses / timeouts);
- ``drop``: close the connection mid-response without running the handler;
- ``lose_response``: run the handler (the write is applied) and then drop the
  connection, so the client never learns it succeeded;
- ``malformed_json``: run the handler and replace the body with truncated JSON.

API-specific faults (``revoke_tokens``, ``partial_page``, ``invalid_operation``)
are read by the simulators themselves with :meth:`FaultPlan.take`.

Each armed fault fires ``count`` times (``-1`` = until disarmed), optionally
only on paths that start with ``path_prefix`` and only for ``methods``.
Admin routes (``/_sandbox/...``) are never faulted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GENERIC_KINDS = frozenset({"status", "delay", "drop", "lose_response", "malformed_json"})
SPECIFIC_KINDS = frozenset({"revoke_tokens", "partial_page", "invalid_operation"})
ADMIN_PREFIX = "/_sandbox"


class DroppedConnection(Exception):
    """Raised inside the ASGI app after a partial response: uvicorn closes the socket."""


@dataclass(slots=True)
class Fault:
    kind: str
    count: int = 1
    path_prefix: str = ""
    methods: frozenset[str] = frozenset()
    status: int = 503
    seconds: float = 0.0
    retry_after: int = 1
    fired: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        if self.count == 0:
            return False
        if self.path_prefix and not path.startswith(self.path_prefix):
            return False
        return not self.methods or method.upper() in self.methods

    def consume(self) -> None:
        self.fired += 1
        if self.count > 0:
            self.count -= 1


class FaultPlan:
    """The faults armed for one simulated API. Thread-safe (servers may run in threads)."""

    def __init__(self, api: str) -> None:
        self.api = api
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: dict[str, int] = {}

    def arm(
        self,
        kind: str,
        *,
        count: int = 1,
        path_prefix: str = "",
        methods: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
        status: int = 503,
        seconds: float = 0.0,
        retry_after: int = 1,
        **params: Any,
    ) -> Fault:
        if kind not in GENERIC_KINDS | SPECIFIC_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(
            kind=kind,
            count=count,
            path_prefix=path_prefix,
            methods=frozenset(m.upper() for m in methods),
            status=status,
            seconds=seconds,
            retry_after=retry_after,
            params=dict(params),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, kind: str, method: str = "", path: str = "") -> Fault | None:
        """Consume one firing of an armed fault of ``kind`` matching the request."""
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.matches(method or "GET", path):
                    if fault.methods and not method:
                        continue
                    fault.consume()
                    self.fired[kind] = self.fired.get(kind, 0) + 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _take_generic(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in GENERIC_KINDS and fault.matches(method, path):
                    fault.consume()
                    self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "kind": f.kind,
                    "remaining": f.count,
                    "fired": f.fired,
                    "path_prefix": f.path_prefix,
                    "methods": sorted(f.methods),
                }
                for f in self._faults
            ]


async def _send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class FaultMiddleware:
    """ASGI middleware applying a :class:`FaultPlan` and serving ``/_sandbox/faults``."""

    def __init__(self, app: ASGIApp, plan: FaultPlan) -> None:
        self.app = app
        self.plan = plan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == f"{ADMIN_PREFIX}/faults":
            await self._admin(method, receive, send)
            return
        if path.startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        fault = self.plan._take_generic(method, path)
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.kind == "status":
            headers: list[tuple[bytes, bytes]] = []
            if fault.status == 429:
                reset = int(time.time()) + fault.retry_after
                headers = [
                    (b"retry-after", str(fault.retry_after).encode()),
                    (b"x-ratelimit-reset", str(reset).encode()),
                    (b"x-ratelimit-remaining", b"0"),
                ]
            body = {
                "errors": [
                    {
                        "status": str(fault.status),
                        "title": "Injected fault",
                        "detail": f"{self.plan.api} fault",
                    }
                ]
            }
            await _send_json(send, fault.status, body, headers)
            return
        if fault.kind == "delay":
            await anyio.sleep(fault.seconds)
            await self.app(scope, receive, send)
            return
        if fault.kind == "drop":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"trunc', "more_body": True})
            raise DroppedConnection(f"{self.plan.api}: connection dropped by fault plan")
        if fault.kind == "lose_response":
            captured: list[Message] = []

            async def capture(message: Message) -> None:
                captured.append(message)

            await self.app(scope, receive, capture)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", b"1000")],
                }
            )
            await send({"type": "http.response.body", "body": b"{", "more_body": True})
            raise DroppedConnection(f"{self.plan.api}: response lost after the write was applied")
        if fault.kind == "malformed_json":
            await self._malformed(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _malformed(self, scope: Scope, receive: Receive, send: Send) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, receive, capture)
        start = next((m for m in captured if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        broken = body[: max(1, len(body) // 2)] or b"{"
        headers = [
            (k, v) for k, v in (start or {}).get("headers", []) if k.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(broken)).encode()))
        await send(
            {
                "type": "http.response.start",
                "status": (start or {}).get("status", 200),
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": broken})

    async def _admin(self, method: str, receive: Receive, send: Send) -> None:
        if method == "GET":
            await _send_json(
                send,
                200,
                {"api": self.plan.api, "armed": self.plan.describe(), "fired": self.plan.fired},
                [],
            )
            return
        if method == "DELETE":
            self.plan.clear()
            await _send_json(send, 200, {"armed": []}, [])
            return
        if method != "POST":
            await _send_json(send, 405, {"error": "use GET, POST or DELETE"}, [])
            return
        try:
            spec = json.loads(await _read_body(receive))
            if not isinstance(spec, dict) or "kind" not in spec:
                raise ValueError("body must be an object with 'kind'")
            kind = str(spec.pop("kind"))
            fault = self.plan.arm(kind, **spec)
        except (ValueError, TypeError) as exc:
            await _send_json(send, 400, {"error": str(exc)}, [])
            return
        await _send_json(send, 201, {"kind": fault.kind, "count": fault.count}, [])
