"""Small building blocks shared by the Active Ants, fabric and FashionTrade simulators.

Each simulator is a Starlette app over a thread-safe state object. What they
have in common lives here: request/write counters per endpoint, an in-memory
bearer-token store driven by a :class:`~syncd.sandbox.limits.SimClock`, the
per-endpoint guard that counts and rate-limits requests, form-body parsing
(python-multipart is not a syncd dependency, and the token endpoints only
need ``application/x-www-form-urlencoded``), time formatting, and the JSON
helpers of the ``/_sandbox/...`` admin routes.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox.limits import SimClock, SlidingWindows, Verdict, Window

Handler = Callable[[Request], Awaitable[Response]]
ThrottleResponder = Callable[[Verdict], Response]

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class Counters:
    """Requests seen and writes applied, per endpoint (``"GET /v2/stock/bulk"``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self.writes: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.unauthorized: dict[str, int] = {}

    @staticmethod
    def _bump(table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1

    def request(self, key: str) -> None:
        with self._lock:
            self._bump(self.requests, key)

    def write(self, key: str) -> None:
        with self._lock:
            self._bump(self.writes, key)

    def throttle(self, key: str) -> None:
        with self._lock:
            self._bump(self.throttled, key)

    def deny(self, key: str) -> None:
        with self._lock:
            self._bump(self.unauthorized, key)

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "writes": dict(self.writes),
                "throttled": dict(self.throttled),
                "unauthorized": dict(self.unauthorized),
            }


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    subject: str
    issued_at: float
    expires_at: float


class TokenStore:
    """Bearer tokens issued by a simulator, expiring on the simulator's clock."""

    def __init__(self, clock: SimClock, lifetime: int) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self._tokens: dict[str, IssuedToken] = {}
        self._lock = threading.Lock()
        self.issued = 0
        self.revocations = 0

    def issue(self, subject: str) -> IssuedToken:
        now = self.clock.now()
        token = IssuedToken(
            token=secrets.token_urlsafe(30),
            subject=subject,
            issued_at=now,
            expires_at=now + self.lifetime,
        )
        with self._lock:
            self._tokens[token.token] = token
            self.issued += 1
        return token

    def check(self, token: str) -> IssuedToken | None:
        """The live token, or None when unknown, revoked or expired."""
        now = self.clock.now()
        with self._lock:
            found = self._tokens.get(token)
            if found is None:
                return None
            if now >= found.expires_at:
                del self._tokens[token]
                return None
            return found

    def revoke_all(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
            self.revocations += 1
            return revoked

    def live(self) -> int:
        now = self.clock.now()
        with self._lock:
            return sum(1 for t in self._tokens.values() if t.expires_at > now)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def per_minute_limiter(limit: int | None, clock: SimClock) -> SlidingWindows | None:
    """A sliding one-minute window of ``limit`` requests, or None for no limit."""
    if limit is None:
        return None
    if limit < 1:
        raise ValueError("a rate limit must allow at least one request per minute")
    return SlidingWindows([Window(limit=limit, seconds=60.0, name="minute")], clock)


def guarded(
    key: str,
    handler: Handler,
    *,
    counters: Counters,
    limiter: SlidingWindows | None,
    throttled: ThrottleResponder,
) -> Handler:
    """Count every request to ``key`` and answer 429 once the limiter says so.

    The rate check runs before authentication, like an API gateway in front
    of the application; a throttled request is counted but does not consume
    budget (see :class:`SlidingWindows`).
    """

    async def run(request: Request) -> Response:
        counters.request(key)
        if limiter is not None:
            verdict = limiter.check()
            if not verdict.allowed:
                counters.throttle(key)
                return throttled(verdict)
        return await handler(request)

    return run


class FormError(ValueError):
    """The body is not the form-encoded body an OAuth token endpoint expects."""


async def read_form(request: Request) -> dict[str, str]:
    """Parse an ``application/x-www-form-urlencoded`` body (first value per key)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise FormError(f"content type must be {FORM_CONTENT_TYPE}, got {content_type or 'none'}")
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError("form body is not UTF-8") from exc
    parsed = parse_qs(text, keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


class AdminError(ValueError):
    """A bad admin request: answered 400 with the message."""


async def read_json_object(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise AdminError(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise AdminError("body must be a JSON object")
    return data


def admin_route(action: Callable[[Request], Awaitable[Any]]) -> Handler:
    """Wrap an admin action: its return value becomes JSON, its errors a 400."""

    async def run(request: Request) -> Response:
        try:
            result = await action(request)
        except (AdminError, KeyError, ValueError, TypeError) as exc:
            message = exc.args[0] if exc.args else type(exc).__name__
            return JSONResponse({"error": str(message)}, status_code=400)
        return JSONResponse(result)

    return run


def require_int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminError(f"{key!r} must be an integer")
    return value


def require_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise AdminError(f"{key!r} must be a non-empty string")
    return value


def iso_utc(timestamp: float) -> str:
    """ISO-8601 in UTC with a ``Z`` and whole seconds, as fabric's samples show (L2714)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_ms(timestamp: float) -> str:
    """ISO-8601 in UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rfc1123(timestamp: float) -> str:
    """``Tue, 05 Dec 2024 11:22:52 GMT`` (seed 001 L73, L78)."""
    return formatdate(timestamp, usegmt=True)


def parse_iso(value: str) -> datetime:
    """Parse ISO-8601 with optional time of day and offset; naive means UTC.

    Raises ValueError on anything else. A ``+`` offset that arrived
    un-encoded in a query string has become a space, which fails here on
    purpose (seed 001 L2874: "Value should be URLencoded").
    """
    text = value.strip()
    if text != value or " " in text:
        raise ValueError(f"not an ISO-8601 date-time: {value!r}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def common_admin_routes(
    snapshot: Callable[[], dict[str, Any]],
    clock: SimClock,
    revoke: Callable[[], int],
) -> list[Route]:
    """``GET /_sandbox/state``, ``POST /_sandbox/tokens/revoke``, ``POST /_sandbox/clock/advance``."""

    async def show(request: Request) -> Any:
        return snapshot()

    async def revoke_all(request: Request) -> Any:
        return {"revoked": revoke()}

    async def advance(request: Request) -> Any:
        body = await read_json_object(request)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise AdminError("'seconds' must be a number")
        clock.advance(float(seconds))
        return {"now": clock.now()}

    return [
        Route("/_sandbox/state", admin_route(show), methods=["GET"]),
        Route("/_sandbox/tokens/revoke", admin_route(revoke_all), methods=["POST"]),
        Route("/_sandbox/clock/advance", admin_route(advance), methods=["POST"]),
    ]
