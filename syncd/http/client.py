"""One API client per remote API: auth, rate limit, retries and logging around httpx.

:class:`ApiClient` is the only way syncd's sources and channels talk HTTP.
For every logical request it:

1. takes a bearer token from its :class:`~syncd.http.auth.TokenProvider`;
2. waits for a slot in the API's :class:`~syncd.http.ratelimit.RateLimiter`
   -- before *every* attempt, retries included, and right before sending so
   the recorded time is the real one;
3. sends, and feeds the rate headers back to the limiter;
4. on 401 invalidates that token and retries once with a fresh one;
   on 429 waits as told and retries (bounded); on 408/5xx/timeouts backs off
   with full jitter and retries (bounded) **only if the request is
   idempotent**; never retries other 4xx (:mod:`syncd.http.retry`);
5. raises a typed error (:mod:`syncd.http.errors`) with the request id.

**Bounded bodies and waits.** A body is read in chunks and the read stops
once it passes ``max_body_bytes`` (after decompression, so a small gzip bomb
counts at its real size): a server answering an endless or enormous body
gets a :class:`ResponseTooLarge`, not all of syncd's memory. Each exchange
must also finish within ``deadline`` seconds, whatever the per-read
timeouts allow (:mod:`syncd.http.bounded`).

**Idempotency.** GET, HEAD, OPTIONS, PUT and DELETE are idempotent by
definition (RFC 9110 §9.2.2). POST and PATCH are not, unless the caller
says so: syncd's stock writes set *absolute* quantities (Ankorstore
``PATCH .../stock`` and ``POST /api/v1/operations`` with ``stockQuantity``,
seed 000 L596-669), so sending one twice leaves the same result and the
channel adapters pass ``idempotent=True``. Order creation or anything that
appends must not. A request that failed to *connect* was never sent and is
retried whatever its method.

Each logical request gets one id, sent as ``X-Request-Id`` on every attempt
and written to every log event. Logs never contain headers, tokens or
request bodies; a failure quotes at most 300 characters of the server's
error body, which is what makes it diagnosable.
"""

from __future__ import annotations

import json as jsonlib
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from types import TracebackType
from typing import Any, Final

import anyio
import httpx
import structlog

from syncd.clock import Clock
from syncd.http.auth import TokenProvider
from syncd.http.bounded import DeadlineExceeded, read_bounded
from syncd.http.budget import parse_rate_headers
from syncd.http.errors import (
    ApiError,
    AuthError,
    HttpError,
    InvalidResponse,
    RateLimited,
    RequestContext,
    ResponseTooLarge,
    TokenUnavailable,
    TransportError,
)
from syncd.http.ratelimit import RateLimiter
from syncd.http.retry import Outcome, RetryPolicy, classify

_log = structlog.get_logger("syncd.http")

QueryValue = str | int | float | bool | None
QueryParams = (
    httpx.QueryParams
    | Mapping[str, QueryValue | Sequence[QueryValue]]
    | list[tuple[str, QueryValue]]
    | tuple[tuple[str, QueryValue], ...]
)

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
"""Explicit limits for every phase; an API needing longer reads passes its own."""

DEFAULT_MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""Largest response body read by default: a JSON:API page of 100 orders with their
items is well under 1 MB. Clients reading whole catalogs in one answer (Active
Ants ``all_products=true``) pass their own."""

DEFAULT_DEADLINE: Final = 120.0
"""Longest one HTTP exchange may take, body included, whatever its per-read timeouts
allow (a server dripping a byte every few seconds never trips those)."""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures before the request left: safe to retry for any method."""
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_EXCERPT = 300


class _Unset:
    pass


_UNSET: Final = _Unset()


def build_http_client(
    base_url: str,
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 10,
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` for one API: explicit timeouts, no redirects.

    Redirects are not followed: a redirected POST/PATCH loses its body (fabric
    redirects paths missing their trailing slash, seed brief fabric §2.6), so
    a 3xx surfaces as an error instead of a silent no-op.
    """
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": "syncd"},
    )


@dataclass(slots=True)
class ClientStats:
    """Counters per API client, for metrics and the status socket."""

    requests: int = 0
    """Logical requests started."""
    attempts: int = 0
    """HTTP requests actually sent."""
    retries: int = 0
    rate_limited: int = 0
    """429 answers received."""
    reauthentications: int = 0
    transport_errors: int = 0
    errors: int = 0
    """Logical requests that ended in an error."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Call:
    """The parts of a logical request that stay the same across attempts."""

    method: str
    url: str | httpx.URL
    params: QueryParams | None
    body: bytes | None
    content_type: str | None
    headers: Mapping[str, str]
    cost: int
    reserve: float
    replayable: bool
    authenticate: bool


@dataclass(frozen=True, slots=True)
class _Attempt:
    """What one HTTP exchange produced: a response, or a failure worth judging."""

    response: httpx.Response | None = None
    failure: HttpError | None = None
    may_replay: bool = False
    token: str | None = None
    retry_hint: float = 0.0
    """Seconds the failure itself says to wait (e.g. the token endpoint's cooldown)."""


@dataclass(slots=True)
class _Progress:
    """How far one logical request has got through its retry allowances."""

    started: float
    transient_failures: int = 0
    rate_limited: int = 0
    reauthenticated: bool = False


def _fields(context: RequestContext) -> dict[str, object]:
    """The keys every http.* log event carries (never headers, tokens or bodies)."""
    return {
        "api": context.api,
        "method": context.method,
        "path": context.path,
        "request_id": context.request_id,
        "attempt": context.attempts,
    }


class ApiClient:
    """All HTTP traffic to one API (see the module docstring for the rules)."""

    def __init__(
        self,
        *,
        name: str,
        http: httpx.AsyncClient,
        limiter: RateLimiter,
        clock: Clock,
        auth: TokenProvider | None = None,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        json_content_type: str = "application/json",
        rng: random.Random | None = None,
        max_concurrency: int | None = None,
        request_id_header: str | None = "X-Request-Id",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deadline: float = DEFAULT_DEADLINE,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        if not deadline > 0:
            raise ValueError("deadline must be positive")
        self.name = name
        self.http = http
        self.limiter = limiter
        self.auth = auth
        self.stats = ClientStats()
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._headers = dict(headers or {})
        self._json_content_type = json_content_type
        # Chance from the injected clock, one stream per use: a seeded clock replays both.
        self._rng = rng or clock.rng(f"http.{name}.backoff")
        self._ids = clock.rng(f"http.{name}.request_id")
        self._semaphore = anyio.Semaphore(max_concurrency) if max_concurrency else None
        self._request_id_header = request_id_header
        self.max_body_bytes = max_body_bytes
        self.deadline = deadline

    def _request_id(self) -> str:
        """A fresh id in UUID4 form, drawn from the clock's stream (not a secret)."""
        return uuid.UUID(int=self._ids.getrandbits(128), version=4).hex

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: QueryParams | None = None,
        json: Any = _UNSET,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cost: int = 1,
        reserve: float = 0.0,
        idempotent: bool | None = None,
        authenticate: bool = True,
    ) -> httpx.Response:
        """Send one logical request and return its 2xx response.

        ``json`` is serialised here and sent with the client's JSON content
        type (Ankorstore requires ``application/vnd.api+json``, seed 000 L23,
        which httpx's own ``json=`` would not set). ``reserve`` is the share
        of the rate budget this request must leave to others (pushes pass
        e.g. 0.2). ``idempotent`` defaults from the method.

        Raises :class:`ApiError`, :class:`RateLimited`, :class:`AuthError`
        or :class:`TransportError` (:class:`TokenUnavailable` when the token
        endpoint is down); ``ValueError`` if the URL would carry the token
        to another host.
        """
        method = method.upper()
        if not isinstance(json, _Unset) and content is not None:
            raise ValueError("pass json or content, not both")
        body, content_type = self._encode(json, content)
        call = _Call(
            method=method,
            url=url,
            params=params,
            body=body,
            content_type=content_type,
            headers=headers or {},
            cost=cost,
            reserve=reserve,
            replayable=idempotent if idempotent is not None else method in _IDEMPOTENT_METHODS,
            authenticate=authenticate,
        )
        context = RequestContext(
            api=self.name, method=method, path=httpx.URL(url).path, request_id=self._request_id()
        )
        self.stats.requests += 1
        progress = _Progress(started=self._clock.monotonic())
        while True:
            context = replace(context, attempts=context.attempts + 1)
            attempt = await self._attempt(call, context)
            if attempt.response is not None:
                step = self._after_response(attempt.response, attempt, progress, context)
                if isinstance(step, httpx.Response):
                    return step
                if step is None:
                    continue  # re-authenticated, or a 429 the limiter now waits out
                attempt = step
            await self._back_off(attempt, progress, context)

    def _after_response(
        self,
        response: httpx.Response,
        attempt: _Attempt,
        progress: _Progress,
        context: RequestContext,
    ) -> httpx.Response | _Attempt | None:
        """The response itself, ``None`` to resend now, or a failure to back off from."""
        status = response.status_code
        pause = self.limiter.observe(response.headers, status)
        outcome = classify(status)
        elapsed_ms = round((self._clock.monotonic() - progress.started) * 1000, 1)
        log = _log.debug if outcome is Outcome.OK else _log.warning
        log("http.response", **_fields(context), status=status, elapsed_ms=elapsed_ms)
        if outcome is Outcome.OK:
            return response
        if outcome is Outcome.REAUTH:
            if attempt.token is None or progress.reauthenticated or self.auth is None:
                detail = "after a fresh token" if progress.reauthenticated else "unauthenticated"
                raise self._fail(AuthError(f"401 {detail}", status=401, context=context), context)
            progress.reauthenticated = True
            self.stats.reauthentications += 1
            self.auth.invalidate(attempt.token)
            _log.info("http.retry", **_fields(context), reason="401", delay_s=0.0)
            return None
        if outcome is Outcome.RATE_LIMITED:
            self.stats.rate_limited += 1
            progress.rate_limited += 1
            policy = self._retry
            if (
                progress.rate_limited > policy.max_rate_limited
                or pause > policy.max_rate_limit_wait
            ):
                error = RateLimited(
                    f"429, server asks to wait {pause:g} s",
                    retry_after=pause,
                    body=_excerpt(response),
                    context=context,
                )
                raise self._fail(error, context)
            # A 429 was not processed, so resending is safe for any method;
            # the limiter now holds every caller of this API until the pause ends.
            self.stats.retries += 1
            _log.info("http.retry", **_fields(context), reason="429", delay_s=pause)
            return None
        failure = _api_error(response, context)
        if outcome is Outcome.FATAL:
            raise self._fail(failure, context)
        hint = parse_rate_headers(response.headers, wall_now=self._clock.wall()).retry_after
        return _Attempt(
            failure=failure,
            may_replay=attempt.may_replay,
            retry_hint=min(hint or 0.0, self._retry.max_delay),
        )

    async def _back_off(
        self, attempt: _Attempt, progress: _Progress, context: RequestContext
    ) -> None:
        """Sleep before the next try, or raise the failure when retrying is unsafe or spent."""
        failure = attempt.failure
        assert failure is not None
        progress.transient_failures += 1
        delay = max(self._retry.backoff(progress.transient_failures, self._rng), attempt.retry_hint)
        elapsed = self._clock.monotonic() - progress.started
        if not attempt.may_replay or not self._retry.may_retry(
            progress.transient_failures, elapsed, delay
        ):
            raise self._fail(failure, context)
        self.stats.retries += 1
        _log.info("http.retry", **_fields(context), reason=failure.message, delay_s=delay)
        await self._clock.sleep(delay)

    async def _attempt(self, call: _Call, context: RequestContext) -> _Attempt:
        """One HTTP exchange: token, rate slot, send. Errors worth a retry are returned."""
        async with self._slot():
            try:
                token = await self._token(call.authenticate)
            except HttpError as exc:
                if not exc.transient:
                    raise self._fail(exc, context) from None
                # Nothing was sent yet, so any method may try again -- once the
                # provider is ready to ask the token endpoint again.
                hint = exc.retry_in if isinstance(exc, TokenUnavailable) else 0.0
                return _Attempt(failure=exc, may_replay=True, retry_hint=hint)
            request = self._build(call, token, context.request_id)
            await self.limiter.acquire(call.cost, reserve=call.reserve)
            self.stats.attempts += 1
            try:
                response = await self._send(request, context)
            except ResponseTooLarge as exc:
                raise self._fail(exc, context) from None
            except DeadlineExceeded as exc:
                # Not resent within this request: a server that could not answer in
                # the whole deadline is stuck, not glitching. The caller's own backoff
                # (the next poll, the next push round) tries again later.
                self.stats.transport_errors += 1
                raise self._fail(exc, context) from None
            except _TRANSIENT as exc:
                self.stats.transport_errors += 1
                failure = TransportError(type(exc).__name__, context=context)
                may_replay = call.replayable or isinstance(exc, _NOT_SENT)
                return _Attempt(failure=failure, may_replay=may_replay, token=token)
            except httpx.HTTPError as exc:
                self.stats.transport_errors += 1
                error = TransportError(type(exc).__name__, retryable=False, context=context)
                raise self._fail(error, context) from exc
        return _Attempt(response=response, may_replay=call.replayable, token=token)

    async def _send(self, request: httpx.Request, context: RequestContext) -> httpx.Response:
        """Send and read the body within ``max_body_bytes`` and ``deadline`` (:mod:`.bounded`)."""
        return await read_bounded(
            self.http, request, limit=self.max_body_bytes, deadline=self.deadline, context=context
        )

    async def get_json(
        self, url: str | httpx.URL, *, params: QueryParams | None = None, reserve: float = 0.0
    ) -> Any:
        """GET and decode a JSON body (:class:`InvalidResponse` if it is not JSON)."""
        response = await self.request("GET", url, params=params, reserve=reserve)
        return response_json(response, api=self.name)

    def snapshot(self) -> dict[str, object]:
        """Counters and rate budget, for the status socket."""
        return {"api": self.name, "stats": self.stats.as_dict(), "rate": self.limiter.snapshot()}

    # -- internals -------------------------------------------------------------

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            yield
            return
        async with self._semaphore:
            yield

    async def _token(self, authenticate: bool) -> str | None:
        if not authenticate or self.auth is None:
            return None
        return await self.auth.token()

    def _encode(self, json: Any, content: bytes | None) -> tuple[bytes | None, str | None]:
        if not isinstance(json, _Unset):
            encoded = jsonlib.dumps(
                json, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
            return encoded.encode("utf-8"), self._json_content_type
        return content, None

    def _build(self, call: _Call, token: str | None, request_id: str) -> httpx.Request:
        merged = dict(self._headers)
        if call.content_type is not None:
            merged["Content-Type"] = call.content_type
        merged.update(call.headers)
        if self._request_id_header:
            merged[self._request_id_header] = request_id
        if token is not None:
            merged["Authorization"] = f"Bearer {token}"
        request = self.http.build_request(
            call.method, call.url, params=call.params, content=call.body, headers=merged
        )
        base = self.http.base_url
        if token is not None and base.host and _origin(request.url) != _origin(base):
            # A link from a response (pagination) must never carry our token elsewhere.
            raise ValueError(f"{self.name}: refusing to send credentials to {request.url.host}")
        return request

    def _fail(self, error: HttpError, context: RequestContext) -> HttpError:
        self.stats.errors += 1
        _log.error("http.request_failed", **_fields(context), error=str(error))
        return error


def response_json(response: httpx.Response, *, api: str = "") -> Any:
    """The decoded JSON body, or :class:`InvalidResponse` naming the request."""
    try:
        return response.json()
    except ValueError:
        context = RequestContext(
            api=api, method=response.request.method, path=response.request.url.path
        )
        raise InvalidResponse(
            f"{response.status_code} response is not JSON: {_excerpt(response)!r}", context=context
        ) from None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def _excerpt(response: httpx.Response) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        return "<undecodable body>"
    return " ".join(text.split())[:_EXCERPT]


def _api_error(response: httpx.Response, context: RequestContext) -> ApiError:
    details = _jsonapi_details(response)
    summary = details[0] if details else _excerpt(response)
    return ApiError(
        f"{response.status_code} {summary}".rstrip(),
        status=response.status_code,
        body=_excerpt(response),
        details=details,
        context=context,
    )


def _jsonapi_details(response: httpx.Response) -> tuple[str, ...]:
    """JSON:API ``errors[]`` as ``"422 detail (pointer)"`` (seed brief catalog §7.1)."""
    try:
        document = response.json()
    except ValueError:
        return ()
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return ()
    details = []
    for error in errors[:10]:
        if not isinstance(error, dict):
            continue
        text = str(error.get("detail") or error.get("title") or "").strip()
        source = error.get("source")
        pointer = source.get("pointer") if isinstance(source, dict) else None
        status = str(error.get("status") or "").strip()
        line = " ".join(part for part in (status, text) if part)
        if pointer:
            line += f" ({pointer})"
        if line:
            details.append(line[:_EXCERPT])
    return tuple(details)
