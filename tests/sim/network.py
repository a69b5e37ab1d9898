"""The simulated network between syncd and the simulators: in-process, faulty, recorded.

Each API's simulator app is called in-process as an ASGI app (no sockets;
:func:`call_asgi` is ``httpx.ASGITransport`` reduced to what the simulation
needs -- the stock transport tries ``import sniffio`` on every request, which
costs more than the request itself here). :class:`SimTransport` sits in front
of it and:

- injects the network's faults (:data:`NET_KINDS`), each armed for one API,
  a number of requests, optionally only for stock writes:

  ``connect_error``
      the request never arrives (retried by syncd for any method);
  ``lost_response``
      the simulator handles the request -- a write is applied -- and the
      reply is lost (``httpx.ReadError``);
  ``duplicate``
      the request arrives twice (the second reply is returned);
  ``delay``
      the request takes ``seconds`` of simulated time (tokens can expire,
      rate windows slide);
  ``timeout``
      the simulator handles the request (a write is applied) too slowly:
      syncd's read timeout (10 s of simulated time) expires first;
  ``throttle``
      a 429 with ``Retry-After``/``X-RateLimit-Reset`` on the shared clock;
  ``unavailable``
      a 503 before the simulator sees the request;
  ``error_after_apply``
      the simulator applies the request, the reply is a 500;

- stages the ``after_write_applied`` crash point (:mod:`tests.sim.crashes`);
- records every stock write the simulators received: negative values (never
  allowed), and per (channel, SKU) what the channel showed right after the
  last write it applied -- the invariants compare syncd's acknowledged
  values with it, or with what a later read-back saw (:meth:`Network.note_sighting`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from syncd.sandbox.faults import ASGIApp, DroppedConnection
from syncd.sandbox.world import SandboxWorld
from tests.sim.crashes import NETWORK_POINT, CrashPlan
from tests.sim.simclock import SimTime

NET_KINDS = (
    "connect_error",
    "lost_response",
    "duplicate",
    "delay",
    "timeout",
    "throttle",
    "unavailable",
    "error_after_apply",
)
_FABRIC_WRITE = re.compile(r"^/v1/brands/[^/]+/inventory/(\d+)/$")
_ANKORSTORE_PATCH = re.compile(r"^/api/v1/product-variants/([^/]+)/stock$")
_OPERATION_POINTER = re.compile(r"^/atomic:operations/(\d+)(/|$)")
_TOKEN_PATHS = ("/oauth/token", "/auth/token/", "/v1/", "/token")
READ_TIMEOUT = 10.0
"""The sandbox config's ``timeout`` for every API: what a too-slow reply costs."""


@dataclass(slots=True)
class NetFault:
    api: str
    kind: str
    count: int
    writes_only: bool = False
    seconds: float = 0.0
    """``delay``: simulated seconds; ``throttle``: the ``Retry-After``."""


@dataclass(frozen=True, slots=True)
class AppliedWrite:
    """One stock value a channel applied, and what it showed right after."""

    channel: str
    sku: str
    sent: int
    """The raw value syncd sent (Ankorstore ``stockQuantity``, fabric ``inventory``)."""
    shown: int | None
    """Ankorstore ``availableQuantity`` / fabric ``inventory`` right after the write."""
    reserved: int
    """Ankorstore ``reservedQuantity`` when the write landed (0 for fabric)."""
    at: float
    written: int | None = None
    """The written field right after the write (Ankorstore ``stockQuantity``, fabric
    ``inventory``): what syncd acknowledges."""
    tick: int = 0
    """Order among every write and read-back sighting (:attr:`Network.tick`)."""


@dataclass(frozen=True, slots=True)
class Sighting:
    """A value a read-back of syncd's saw in the written field, and may have cached."""

    written: int | None
    tick: int
    at: float = 0.0
    """The simulators' wall time of the read-back."""


@dataclass(slots=True)
class _Write:
    """A stock write found in a request: target id and value per item."""

    channel: str
    items: list[tuple[str, object]]


@dataclass(slots=True)
class Network:
    """Shared by every transport of every (re)started syncd process in one simulation."""

    world: SandboxWorld
    time: SimTime
    crash: CrashPlan
    faults: list[NetFault] = field(default_factory=list)
    last_applied: dict[tuple[str, str], AppliedWrite] = field(default_factory=dict)
    negative_writes: list[str] = field(default_factory=list)
    app_errors: list[str] = field(default_factory=list)
    fired: Counter[str] = field(default_factory=Counter)
    simulator_429: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    writes_applied: int = 0
    applied_by_channel: Counter[str] = field(default_factory=Counter)
    sightings: dict[tuple[str, str], Sighting] = field(default_factory=dict)
    """(channel, SKU) -> the last value a read-back saw and syncd may have cached."""
    tick: int = 0
    traffic: list[str] | None = None
    """Every request and its outcome, serialised (:func:`traffic_line`), when recording."""

    def record(self, api: str, request: httpx.Request, outcome: str) -> None:
        if self.traffic is not None:
            self.traffic.append(traffic_line(self.time.fake.monotonic(), api, request, outcome))

    def next_tick(self) -> int:
        self.tick += 1
        return self.tick

    def note_sighting(self, channel: str, sku: str, written: int | None) -> None:
        self.sightings[(channel, sku)] = Sighting(written, self.next_tick(), self.time.wall())

    def believed(self, key: tuple[str, str]) -> tuple[int | None, float] | None:
        """What syncd may believe the written field holds, and since when (see known_value)."""
        applied = self.last_applied.get(key)
        seen = self.sightings.get(key)
        if seen is not None and (applied is None or seen.tick > applied.tick):
            return seen.written, seen.at
        if applied is not None:
            return applied.written, applied.at
        return None

    def known_value(self, key: tuple[str, str]) -> int | str | None:
        """What syncd may legitimately believe the channel holds in the written field.

        The written field right after the last write the channel applied, or what
        a later read-back saw; ``"unknown"`` when neither happened.
        """
        applied = self.last_applied.get(key)
        seen = self.sightings.get(key)
        if seen is not None and (applied is None or seen.tick > applied.tick):
            return seen.written
        if applied is not None:
            return applied.written
        return "unknown"

    def transport(self, api: str, app: ASGIApp) -> SimTransport:
        return SimTransport(api, app, self)

    def arm(self, fault: NetFault) -> None:
        self.faults.append(fault)

    def heal(self) -> None:
        self.faults.clear()

    def take(self, api: str, is_write: bool) -> NetFault | None:
        for fault in self.faults:
            if fault.api == api and (is_write or not fault.writes_only):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                self.fired[fault.kind] += 1
                return fault
        return None

    # --- stock writes ----------------------------------------------------------

    def find_write(self, api: str, request: httpx.Request) -> _Write | None:
        """The stock values a request writes, or None when it is not a stock write."""
        path = request.url.path
        method = request.method
        if api == "ankorstore" and method == "POST" and path == "/api/v1/operations":
            body = _json(request.content)
            operations = body.get("atomic:operations") if isinstance(body, dict) else None
            items: list[tuple[str, object]] = []
            for operation in operations if isinstance(operations, list) else []:
                data = operation.get("data") if isinstance(operation, dict) else None
                attributes = data.get("attributes") if isinstance(data, dict) else None
                if isinstance(data, dict) and isinstance(attributes, dict):
                    items.append((str(data.get("id")), attributes.get("stockQuantity")))
            return _Write("ankorstore", items)
        match = _ANKORSTORE_PATCH.match(path)
        if api == "ankorstore" and method == "PATCH" and match:
            body = _json(request.content)
            data = body.get("data") if isinstance(body, dict) else None
            attributes = data.get("attributes") if isinstance(data, dict) else None
            value = attributes.get("stockQuantity") if isinstance(attributes, dict) else None
            return _Write("ankorstore", [(match.group(1), value)])
        match = _FABRIC_WRITE.match(path)
        if api == "fabric" and method in ("PATCH", "PUT", "POST") and match:
            body = _json(request.content)
            value = body.get("inventory") if isinstance(body, dict) else None
            return _Write("fabric", [(match.group(1), value)])
        return None

    def check_values(self, write: _Write) -> None:
        for target, value in write.items:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                self.negative_writes.append(f"{write.channel} {target}: sent {value!r}")

    def note_applied(self, write: _Write, refused: set[int]) -> None:
        """Record what the channel shows after the write (``refused``: item indexes not applied)."""
        for index, (target, value) in enumerate(write.items):
            if index in refused or not isinstance(value, int):
                continue
            self.writes_applied += 1
            self.applied_by_channel[write.channel] += 1
            if write.channel == "ankorstore":
                listing = self.world.ankorstore.listings.get(target)
                if listing is None:
                    continue
                applied = AppliedWrite(
                    "ankorstore",
                    listing.sku,
                    value,
                    listing.available_quantity,
                    listing.reserved_quantity,
                    self.time.wall(),
                    written=listing.stock_quantity,
                    tick=self.next_tick(),
                )
            else:
                item = self.world.fabric.items.get(int(target))
                if item is None:
                    continue
                applied = AppliedWrite(
                    "fabric",
                    item.brand_sku,
                    value,
                    item.inventory,
                    0,
                    self.time.wall(),
                    written=item.inventory,
                    tick=self.next_tick(),
                )
            self.last_applied[(applied.channel, applied.sku)] = applied

    def refused_items(self, write: _Write, response: httpx.Response) -> set[int] | None:
        """Item indexes a write response says were not applied; None when nothing was."""
        if response.status_code < 300:
            return set()
        if write.channel != "ankorstore" or response.status_code not in (404, 422):
            return None
        if self.world.ankorstore.atomic_operations:
            return None
        # Non-atomic bulk: the valid operations were applied, the named ones refused.
        body = _json(response.content)
        errors = body.get("errors") if isinstance(body, dict) else None
        refused: set[int] = set()
        for error in errors if isinstance(errors, list) else []:
            source = error.get("source") if isinstance(error, dict) else None
            pointer = source.get("pointer") if isinstance(source, dict) else None
            match = _OPERATION_POINTER.match(pointer) if isinstance(pointer, str) else None
            if match is None:
                return None  # an error naming no operation: nothing was applied
            refused.add(int(match.group(1)))
        return refused


class SimTransport(httpx.AsyncBaseTransport):
    """One API's simulator behind the simulated network (see the module docstring)."""

    def __init__(self, api: str, app: ASGIApp, network: Network) -> None:
        self.api = api
        self._app = app
        self._net = network

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._handle(request)
        except BaseException as exc:  # a transport error or a staged crash: noted, raised
            self._net.record(self.api, request, type(exc).__name__)
            raise
        self._net.record(self.api, request, f"{response.status_code} {response.content!r}")
        return response

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        net = self._net
        net.requests += 1
        write = net.find_write(self.api, request)
        if write is not None:
            net.check_values(write)
        fault = net.take(self.api, write is not None)
        kind = fault.kind if fault is not None else None
        if kind == "connect_error":
            raise httpx.ConnectError("simulated: connection refused", request=request)
        if kind == "throttle":
            assert fault is not None
            wait = max(1, int(fault.seconds))
            return _synthetic(
                request,
                429,
                {
                    "Retry-After": str(wait),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(net.time.wall()) + wait),
                },
            )
        if kind == "unavailable":
            return _synthetic(request, 503, {})
        if kind == "delay":
            assert fault is not None
            net.time.advance(fault.seconds)
        response = await self._forward(request, write)
        if kind == "duplicate":
            response = await self._forward(request, write)
        if kind == "lost_response":
            raise httpx.ReadError("simulated: reply lost after the request was handled")
        if kind == "timeout":
            net.time.advance(READ_TIMEOUT)
            raise httpx.ReadTimeout("simulated: no reply within the read timeout")
        if kind == "error_after_apply":
            return _synthetic(request, 500, {})
        return response

    async def _forward(self, request: httpx.Request, write: _Write | None) -> httpx.Response:
        net = self._net
        try:
            status, headers, body = await call_asgi(self._app, request)
        except DroppedConnection as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except Exception as exc:
            net.app_errors.append(
                f"{self.api} {request.method} {request.url.path}: {type(exc).__name__}: {exc}"
            )
            raise
        response = httpx.Response(status, headers=headers, content=body, request=request)
        if response.status_code == 429:
            token = request.url.path in _TOKEN_PATHS
            net.simulator_429[f"{self.api}{' token' if token else ''}"] += 1
        if write is not None:
            refused = net.refused_items(write, response)
            if refused is not None:
                net.note_applied(write, refused)
                net.crash.reach(NETWORK_POINT)
        return response

    async def aclose(self) -> None:
        """The simulators outlive every syncd process: closing a client leaves them up."""


async def call_asgi(
    app: ASGIApp, request: httpx.Request
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Serve ``request`` with ``app`` in-process; the app's own exceptions propagate."""
    body = await request.aread()
    url = request.url
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(key.lower(), value) for key, value in request.headers.raw],
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.raw_path.split(b"?")[0],
        "query_string": url.query,
        "server": (url.host, url.port or 80),
        "client": ("127.0.0.1", 123),
        "root_path": "",
    }
    delivered = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, headers, b"".join(chunks)


_CREDENTIALS = re.compile(r'("access_token"\s*:\s*")[^"]*(")')


def traffic_line(at: float, api: str, request: httpx.Request, outcome: str) -> str:
    """One request as the simulated network saw it, and what came of it, on one line.

    Everything syncd chose is kept: time, method, URL, headers (``X-Request-Id``
    included), body. Credentials are masked: the simulators mint tokens from the
    OS's randomness, as real APIs do, and syncd only stores and echoes them back.
    """
    headers = sorted(
        (key, "<credential>" if key in ("authorization", "x-api-key") else value)
        for key, value in request.headers.items()
    )
    masked = _CREDENTIALS.sub(r"\1<credential>\2", outcome)
    return (
        f"{at:.6f} {api} {request.method} {request.url} {headers} {request.content!r} -> {masked}"
    )


def _synthetic(request: httpx.Request, status: int, headers: dict[str, str]) -> httpx.Response:
    body = {"errors": [{"status": str(status), "title": "Simulated fault", "detail": "network"}]}
    return httpx.Response(status, headers=headers, json=body, request=request)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except ValueError:
        return None
