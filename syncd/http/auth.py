"""Bearer tokens for every API: fetched rarely, shared by all tasks, never logged.

Three kinds exist among the APIs syncd talks to:

* :class:`OAuthClientCredentials` -- Ankorstore (``POST /oauth/token`` with a
  form body ``grant_type=client_credentials&client_id&client_secret&scope=*``,
  ``expires_in: 3600``, seed 000 L145-172) and fabric (same grant, no scope,
  "valid only for 10 hours", seed 003 L29-41).
* :class:`PasswordGrant` -- Active Ants (``POST /token`` with
  ``grant_type=password&username&password``; ``expires_in`` seconds plus
  RFC 1123 ``issued``/``expires`` dates, seed 001 L22-97).
* :class:`StaticBearer` -- FashionTrade's API key sent as a bearer token
  (seed 002 L1742-1750).

Rules every token provider follows:

* **Refresh ahead of expiry**: at 90 % of the lifetime, and at least 60 s
  before it ends. The lifetime counts from when the request was *sent*.
* **Single flight**: one refresh at a time under a lock; callers that queued
  behind it reuse its result, so 50 concurrent callers cause one request.
* **Invalidate only the token that failed**: ``invalidate(value)`` drops the
  cached token only if it is that value, so a burst of 401s for one token
  triggers one refresh, not one per 401.
* **Never approach the token endpoint's limit**: Ankorstore allows 60 token
  requests per hour (seed 000 L228); syncd's own budget is a third of that
  (:data:`DEFAULT_TOKEN_BUDGET`), and when it is spent ``token()`` fails fast
  with :class:`AuthError` instead of asking again -- a 401 storm cannot break
  the limit.
* **Tokens outlive the process** when a store is attached (:meth:`use_store`,
  :mod:`syncd.http.token_cache`): a token is read back from the ledger before
  the endpoint is asked, under the same API, token URL and client id only.
* **Failures are remembered** so queued callers do not each repeat a doomed
  request: refused credentials for 5 minutes; a 429 for as long as its
  ``Retry-After`` says (5 minutes without one); an endpoint that is down for
  5 s, doubling per further failure up to 5 minutes (raised as
  :class:`TokenUnavailable` with ``retry_in``). While the old token is still
  valid it keeps being used.
* **Bounded**: a token response larger than :data:`TOKEN_MAX_BYTES` is refused
  after reading that much (``ResponseTooLarge``, remembered like refused
  credentials: the same endpoint would send the same body), and the whole
  exchange must finish within ``deadline`` seconds (:mod:`syncd.http.bounded`).
* **Secrets and tokens never reach a log, an error message or a repr.**
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import httpx
import structlog
from pydantic import SecretStr

from syncd.clock import Clock
from syncd.http.bounded import read_bounded
from syncd.http.budget import RateBudget, Window, parse_rate_headers
from syncd.http.errors import (
    ApiError,
    AuthError,
    HttpError,
    RateLimited,
    RequestContext,
    TokenUnavailable,
    TransportError,
)
from syncd.http.token_cache import PersistedTokens, TokenStore
from syncd.http.token_response import oauth_error, token_lifetime
from syncd.ledger.tokens import TokenKey
from syncd.logs import register_token

_log = structlog.get_logger("syncd.http")

Credential = str | SecretStr
"""A secret as configuration hands it over; :class:`SecretStr` keeps it out of reprs."""

DEFAULT_TOKEN_BUDGET: tuple[Window, ...] = (Window(20, 3600.0), Window(4, 60.0))
"""syncd's own cap on token requests: a third of Ankorstore's 60/hour (seed 000 L228).

Normal operation needs about one token per lifetime (~1.1 per hour for
Ankorstore's 3600 s tokens); a revocation costs one more. Anything beyond
this budget is a credential problem that more requests will not fix.
"""


TOKEN_MAX_BYTES = 64 * 1024
"""Largest token response read: a token answer is a few hundred bytes (seed 000
L158-165: ``token_type``, ``expires_in``, ``access_token``), so anything near this
is not a token endpoint talking."""

TOKEN_DEADLINE = 60.0
"""Longest a token request may take in all, body included (:mod:`syncd.http.bounded`)."""


class TokenProvider(Protocol):
    """Supplies the bearer token for an API's requests."""

    async def token(self) -> str:
        """A token believed valid right now (fetched or refreshed if needed)."""
        ...

    def invalidate(self, token: str) -> None:
        """The server rejected ``token`` (401); stop using it if it is still current."""
        ...


@dataclass(frozen=True, slots=True)
class TokenStatus:
    """For the status socket: is there a token, how long it lasts, what went wrong."""

    api: str
    valid: bool
    expires_in: float | None
    requests: int
    last_error: str | None


class _Secret:
    """A credential that only :meth:`reveal` gives back; its repr is masked."""

    __slots__ = ("_value",)

    def __init__(self, value: Credential) -> None:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not raw:
            raise ValueError("a credential cannot be empty")
        self._value = raw

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'**********'"


@dataclass(frozen=True, slots=True)
class TokenTiming:
    """When to refresh, and how long to remember a failure."""

    refresh_fraction: float = 0.9
    """Refresh once this share of the lifetime has passed..."""
    min_margin: float = 60.0
    """...and at least this many seconds before expiry (at most half the lifetime)."""
    refused_cooldown: float = 300.0
    """After the endpoint refuses the credentials, fail fast for this long."""
    unavailable_cooldown: float = 5.0
    """After the endpoint fails (5xx, timeout), wait this long before asking again..."""
    max_unavailable_cooldown: float = 300.0
    """...doubling on each further failure, up to this."""

    def __post_init__(self) -> None:
        if not 0 < self.refresh_fraction <= 1:
            raise ValueError("refresh_fraction is a share of the lifetime in (0, 1]")
        if min(self.min_margin, self.refused_cooldown, self.unavailable_cooldown) < 0:
            raise ValueError("token timings cannot be negative")
        if self.max_unavailable_cooldown < self.unavailable_cooldown:
            raise ValueError("max_unavailable_cooldown is below unavailable_cooldown")

    def margin(self, lifetime: float) -> float:
        return min(max(self.min_margin, lifetime * (1 - self.refresh_fraction)), lifetime / 2)


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires_at: float
    refresh_at: float


class _TokenEndpointProvider:
    """Fetches tokens from an OAuth-style token endpoint (form body in, JSON out)."""

    grant = ""
    refused = "token request refused"
    """How a refusal of the credentials reads in errors (feed state, `syncd status`)."""
    credentials = "credentials"
    """The config keys a person should check when the endpoint refuses them."""

    def __init__(
        self,
        *,
        api: str,
        http: httpx.AsyncClient,
        token_url: str,
        clock: Clock,
        budget: Sequence[Window],
        default_lifetime: float | None,
        timing: TokenTiming,
        deadline: float = TOKEN_DEADLINE,
    ) -> None:
        self.api = api
        self._deadline = deadline
        self._http = http
        self._token_url = token_url
        self._clock = clock
        self._budget = RateBudget(budget) if budget else None
        self._default_lifetime = default_lifetime
        self._timing = timing
        self._lock = anyio.Lock()
        self._cached: _Token | None = None
        self._failure: tuple[float, HttpError] | None = None
        self._outages = 0
        self._persisted: PersistedTokens | None = None
        self._rejected: str | None = None
        self.requests = 0
        """Token requests sent so far (metrics)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(api={self.api!r}, token_url={self._token_url!r})"

    def _form(self) -> dict[str, str]:
        raise NotImplementedError

    def _context(self) -> RequestContext:
        return RequestContext(api=self.api, method="POST", path=httpx.URL(self._token_url).path)

    async def token(self) -> str:
        cached = self._cached
        if cached is not None and self._clock.monotonic() < cached.refresh_at:
            return cached.value
        async with self._lock:
            now = self._clock.monotonic()
            cached = self._cached
            if cached is not None and now < cached.refresh_at:
                return cached.value  # refreshed by the caller we queued behind
            restored = await self._restore()
            if restored is not None:
                self._cached = restored
                return restored.value
            now = self._clock.monotonic()
            usable = cached if cached is not None and now < cached.expires_at else None
            try:
                fresh = await self._refresh(now, reason="expiring" if usable else "missing")
            except HttpError:
                if usable is None:
                    raise
                return usable.value  # still valid: keep using it, the failure is logged
            self._cached = fresh
            await self._persist(fresh, sent_at=now)
            return fresh.value

    def invalidate(self, token: str) -> None:
        cached = self._cached
        if cached is not None and cached.value == token:
            self._cached = None
            self._rejected = token  # removed from the store before it could be read back
            _log.warning("http.token_rejected", api=self.api)

    def use_store(self, store: TokenStore) -> None:
        """Keep tokens in ``store`` too, so the next process reuses them (:mod:`.token_cache`)."""
        key = TokenKey(api=self.api, token_url=self._token_url, client_id=self._account())
        self._persisted = PersistedTokens(store, key)

    def _account(self) -> str:
        """Whose token this is: the client id, or the user name of a password grant."""
        raise NotImplementedError

    async def _restore(self) -> _Token | None:
        """A token an earlier run stored, if it may still be used (lock held)."""
        if self._persisted is None:
            return None
        rejected, self._rejected = self._rejected, None
        found = await self._persisted.restore(self._clock, self._timing.margin, rejected=rejected)
        if found is None:
            return None
        value, expires_at, refresh_at = found
        return _Token(value=value, expires_at=expires_at, refresh_at=refresh_at)

    async def _persist(self, token: _Token, *, sent_at: float) -> None:
        if self._persisted is not None:
            await self._persisted.save_fresh(
                self._clock, token.value, sent_at=sent_at, expires_at=token.expires_at
            )

    def status(self) -> TokenStatus:
        now = self._clock.monotonic()
        cached = self._cached
        valid = cached is not None and now < cached.expires_at
        failure = self._failure
        return TokenStatus(
            api=self.api,
            valid=valid,
            expires_in=(cached.expires_at - now) if cached is not None and valid else None,
            requests=self.requests,
            last_error=str(failure[1]) if failure is not None else None,
        )

    async def _refresh(self, now: float, *, reason: str) -> _Token:
        """Fetch a token unless a recent failure or the budget says not to. Lock held."""
        if self._failure is not None and now < self._failure[0]:
            raise self._remembered(now)
        if self._budget is not None:
            wait = self._budget.try_take(now)
            if wait > 0:
                spent = AuthError(
                    f"token request budget spent; next token request allowed in {math.ceil(wait)} s",
                    context=self._context(),
                )
                self._failure = (now + wait, spent)
                _log.error("http.token_budget_spent", api=self.api, wait_s=math.ceil(wait))
                raise spent
        try:
            fresh = await self._fetch(now, reason)
        except HttpError as exc:
            if exc.transient:
                # Space attempts out while the endpoint is down: 5 s, 10 s, ... 5 min.
                self._outages += 1
                cooldown = min(
                    self._timing.unavailable_cooldown * 2 ** min(self._outages - 1, 30),
                    self._timing.max_unavailable_cooldown,
                )
                unavailable = TokenUnavailable(exc.message, retry_in=cooldown, context=exc.context)
                self._failure = (now + cooldown, unavailable)
                _log.warning("http.token_failed", api=self.api, error=str(exc), cooldown_s=cooldown)
                raise unavailable from exc
            if isinstance(exc, RateLimited) and exc.retry_after is not None:
                # A 429 says when to come back. Waiting longer would fail every
                # request of this API (a whole channel) for nothing: a restarted
                # daemon that finds the endpoint's window full after a crash
                # loop would otherwise sit out five minutes for a 30 s window.
                cooldown = exc.retry_after
            else:
                cooldown = self._timing.refused_cooldown
            self._failure = (now + cooldown, exc)
            _log.error("http.token_failed", api=self.api, error=str(exc), cooldown_s=cooldown)
            raise
        self._failure = None
        self._outages = 0
        return fresh

    def _remembered(self, now: float) -> HttpError:
        """The error of a recent failed attempt, told to a caller who must not repeat it."""
        assert self._failure is not None
        until, error = self._failure
        if isinstance(error, TokenUnavailable):
            return TokenUnavailable(error.cause, retry_in=until - now, context=error.context)
        return error.with_traceback(None)

    async def _fetch(self, sent_at: float, reason: str) -> _Token:
        self.requests += 1
        context = self._context()
        _log.info("http.token_requested", api=self.api, grant=self.grant, reason=reason)
        request = self._http.build_request(
            "POST",
            self._token_url,
            data=self._form(),
            # The token endpoint is not JSON:API (seed 000 L149-152).
            headers={"Accept": "application/json"},
        )
        try:
            response = await read_bounded(
                self._http,
                request,
                limit=TOKEN_MAX_BYTES,
                deadline=self._deadline,
                context=context,
                what="token response",
            )
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransportError(
                f"token request failed: {type(exc).__name__}", context=context
            ) from None
        except httpx.HTTPError as exc:
            raise TransportError(
                f"token request failed: {type(exc).__name__}", retryable=False, context=context
            ) from None
        status = response.status_code
        if status == 429:
            signal = parse_rate_headers(response.headers, wall_now=self._clock.wall())
            if self._budget is not None and signal.retry_after is not None:
                self._budget.block_until(sent_at + signal.retry_after)
            raise RateLimited(
                "token endpoint answered 429", retry_after=signal.retry_after, context=context
            )
        if status == 408 or status >= 500:
            raise ApiError(f"token endpoint answered {status}", status=status, context=context)
        if not 200 <= status <= 299:
            code = oauth_error(response)
            answer = f"{status} {code}" if code else str(status)
            # Said so a person knows what to fix, e.g. "login refused (400 invalid_grant):
            # check [apis.activeants] username and password (password_file or password_env)".
            raise AuthError(
                f"{self.refused} ({answer}): check [apis.{self.api}] {self.credentials}",
                status=status,
                context=context,
            )
        value, lifetime = self._parse(response, context)
        register_token(value)
        margin = self._timing.margin(lifetime)
        _log.info("http.token_obtained", api=self.api, lifetime_s=round(lifetime, 3))
        return _Token(
            value=value, expires_at=sent_at + lifetime, refresh_at=sent_at + lifetime - margin
        )

    def _parse(self, response: httpx.Response, context: RequestContext) -> tuple[str, float]:
        # Messages here never quote the body: it holds the token.
        try:
            document: Any = response.json()
        except ValueError:
            raise AuthError("token response is not JSON", context=context) from None
        if not isinstance(document, dict):
            raise AuthError("token response is not a JSON object", context=context)
        value = document.get("access_token")
        if not isinstance(value, str) or not value:
            raise AuthError("token response has no access_token", context=context)
        lifetime = token_lifetime(document, self._default_lifetime)
        if lifetime is None:
            raise AuthError("token response has no usable expires_in", context=context)
        return value, lifetime


class OAuthClientCredentials(_TokenEndpointProvider):
    """OAuth 2 client-credentials grant (Ankorstore, fabric).

    Ankorstore: ``token_url=<base>/oauth/token``, ``scope="*"``
    (seed 000 L145-156); the sandbox has its own host and token URL (seed
    brief catalog §1.1). fabric: the token URL comes from the API client's
    credentials page (seed 003 L34-36 shows it truncated), ``scope=None``,
    ``default_lifetime=36_000`` because its token response is not documented
    and the prose says 10 hours (L41).
    """

    grant = "client_credentials"
    refused = "client credentials refused"
    credentials = "client_id and client_secret (client_secret_file or client_secret_env)"

    def __init__(
        self,
        *,
        api: str,
        http: httpx.AsyncClient,
        token_url: str,
        clock: Clock,
        client_id: str,
        client_secret: Credential,
        scope: str | None = "*",
        budget: Sequence[Window] = DEFAULT_TOKEN_BUDGET,
        default_lifetime: float | None = None,
        timing: TokenTiming = TokenTiming(),
        deadline: float = TOKEN_DEADLINE,
    ) -> None:
        super().__init__(
            api=api,
            http=http,
            token_url=token_url,
            clock=clock,
            budget=budget,
            default_lifetime=default_lifetime,
            timing=timing,
            deadline=deadline,
        )
        if not client_id:
            raise ValueError("client_id cannot be empty")
        self._client_id = client_id
        self._client_secret = _Secret(client_secret)
        self._scope = scope

    def _account(self) -> str:
        return self._client_id

    def _form(self) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.reveal(),
        }
        if self._scope is not None:
            form["scope"] = self._scope
        return form


class PasswordGrant(_TokenEndpointProvider):
    """OAuth 2 resource-owner password grant (Active Ants ``POST /token``, seed 001 L22-84).

    The lifetime is taken from ``expires_in`` counted from our own send time
    (the seed's sample ``expires`` disagrees with its ``expires_in``, L93-96);
    the RFC 1123 ``issued``/``expires`` pair is used only when ``expires_in``
    is missing, as a difference of two server timestamps, which no clock
    skew can distort.
    """

    grant = "password"
    refused = "login refused"
    credentials = "username and password (password_file or password_env)"

    def __init__(
        self,
        *,
        api: str,
        http: httpx.AsyncClient,
        token_url: str,
        clock: Clock,
        username: str,
        password: Credential,
        budget: Sequence[Window] = DEFAULT_TOKEN_BUDGET,
        default_lifetime: float | None = None,
        timing: TokenTiming = TokenTiming(),
        deadline: float = TOKEN_DEADLINE,
    ) -> None:
        super().__init__(
            api=api,
            http=http,
            token_url=token_url,
            clock=clock,
            budget=budget,
            default_lifetime=default_lifetime,
            timing=timing,
            deadline=deadline,
        )
        if not username:
            raise ValueError("username cannot be empty")
        self._username = username
        self._password = _Secret(password)

    def _account(self) -> str:
        return self._username

    def _form(self) -> dict[str, str]:
        return {
            "grant_type": "password",
            "username": self._username,
            "password": self._password.reveal(),
        }


class StaticBearer:
    """A fixed API key sent as a bearer token (FashionTrade, seed 002 L1746).

    A key cannot be refreshed: a 401 means it was revoked or is wrong, so
    after ``invalidate`` every call fails fast with :class:`AuthError` for
    ``rejected_cooldown`` seconds, then one request may probe again --
    never a hot loop (seed brief fashiontrade gotcha 21).
    """

    def __init__(
        self, *, api: str, key: Credential, clock: Clock, rejected_cooldown: float = 300.0
    ) -> None:
        self.api = api
        self._key = _Secret(key)
        self._clock = clock
        self._cooldown = rejected_cooldown
        self._rejected_until = -math.inf

    def __repr__(self) -> str:
        return f"StaticBearer(api={self.api!r})"

    async def token(self) -> str:
        await anyio.lowlevel.checkpoint()
        wait = self._rejected_until - self._clock.monotonic()
        if wait > 0:
            raise AuthError(
                f"API key was rejected (401); not used again for {math.ceil(wait)} s",
                status=401,
                context=RequestContext(api=self.api),
            )
        return self._key.reveal()

    def invalidate(self, token: str) -> None:
        if token == self._key.reveal():
            self._rejected_until = self._clock.monotonic() + self._cooldown
            _log.error("http.api_key_rejected", api=self.api, cooldown_s=self._cooldown)
