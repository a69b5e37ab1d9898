"""Ready-made clients for each API syncd talks to, with the documented numbers.

One :class:`ApiClient` per API, and so one ``httpx.AsyncClient``, one token
and one rate budget. For Ankorstore that single client serves the catalog,
orders, ASTRAL and bulk-stock calls: they share one OAuth token and one
budget of 600/min, 24 000/h, 288 000/day (seed 000 L202-206, L13036-13067),
so they must share one limiter -- four limiters would each allow the full
budget and together exceed it four times over.

Where a vendor documents no limit (Active Ants, fabric, FashionTrade; seed
briefs activeants §5.1, fabric §2.3, fashiontrade §2.3) the windows here are
syncd's own conservative defaults, meant to be overridden from config; 429
and ``Retry-After`` are obeyed regardless.

``slack`` lengthens every documented window by a few seconds: the server
counts requests when they *arrive*, and variable network latency can bunch
requests that left evenly spaced, so a window counted on send times alone
could be exceeded at the server by a request or two.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import httpx

from syncd.clock import Clock
from syncd.http.auth import (
    DEFAULT_TOKEN_BUDGET,
    TOKEN_DEADLINE,
    Credential,
    OAuthClientCredentials,
    PasswordGrant,
    StaticBearer,
)
from syncd.http.budget import Window
from syncd.http.client import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT,
    ApiClient,
    build_http_client,
)
from syncd.http.ratelimit import RateLimiter
from syncd.http.retry import RetryPolicy

ANKORSTORE_WINDOWS = (Window(600, 60.0), Window(24_000, 3_600.0), Window(288_000, 86_400.0))
"""Authenticated limits, seed 000 L202-206."""

ANKORSTORE_TOKEN_BUDGET = DEFAULT_TOKEN_BUDGET
"""A third of the documented 60 token requests per hour (seed 000 L228)."""

JSONAPI_MEDIA_TYPE = "application/vnd.api+json"
"""Required ``Accept`` on every Ankorstore call and ``Content-Type`` on bodies (seed 000 L23)."""

FABRIC_TOKEN_LIFETIME = 36_000.0
"""fabric tokens are "valid only for 10 hours" (seed 003 L41); the token response is undocumented."""

UNDOCUMENTED_WINDOWS = (Window(5, 1.0), Window(120, 60.0))
"""syncd's default where a vendor publishes no limit: a few per second, 2 per second sustained."""

ACTIVEANTS_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)
"""``v2/stock/bulk?all_products=true`` is "an intensive operation" (seed 001 L2685): long reads."""

ACTIVEANTS_MAX_BODY_BYTES = 256 * 1024 * 1024
"""A full ``v2/stock/bulk`` read lists every product in one answer (seed 001 L2868), a
few hundred bytes each: 256 MiB leaves room for most of a million products, while
an endless body still stops there. Every other API pages and keeps the default."""

ACTIVEANTS_DEADLINE = 600.0
"""The full read above may stream for minutes; its overall deadline is longer to match."""


def ankorstore_windows(*, per_minute: int, per_hour: int, per_day: int) -> tuple[Window, ...]:
    """Ankorstore's three windows with the configured limits (each at most the documented one)."""
    return (Window(per_minute, 60.0), Window(per_hour, 3_600.0), Window(per_day, 86_400.0))


def with_slack(windows: Sequence[Window], slack: float) -> tuple[Window, ...]:
    """The same limits over windows ``slack`` seconds longer (see the module docstring)."""
    if slack < 0:
        raise ValueError("slack cannot be negative")
    return tuple(Window(w.limit, w.seconds + slack) for w in windows)


def token_budget(per_hour: int) -> tuple[Window, ...]:
    """syncd's own token budget for an endpoint allowing ``per_hour`` token requests.

    A third of it per hour (never less than one), at most 4 a minute -- the
    shape of :data:`DEFAULT_TOKEN_BUDGET`, which is what Ankorstore's
    documented 60/hour gives (seed 000 L228). A lower configured limit lowers it.
    """
    hourly = max(1, per_hour // 3)
    return (Window(hourly, 3600.0), Window(min(4, hourly), 60.0))


def ankorstore_client(
    *,
    base_url: str,
    client_id: str,
    client_secret: Credential,
    clock: Clock,
    windows: Sequence[Window] = ANKORSTORE_WINDOWS,
    token_windows: Sequence[Window] = ANKORSTORE_TOKEN_BUDGET,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    slack: float = 2.0,
    retry: RetryPolicy | None = None,
    rng: random.Random | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline: float = DEFAULT_DEADLINE,
) -> ApiClient:
    """The one Ankorstore client (catalog, orders, ASTRAL, bulk stock).

    ``base_url`` is the host root, production ``https://www.ankorstore.com``
    or sandbox ``https://www.public.ankorstore-sandbox.com`` (seed 000 L153,
    L326); the token comes from ``<base_url>/oauth/token`` of the same host.
    ``windows`` are the documented limits unless the config lowers them.
    """
    http = build_http_client(base_url, timeout=timeout, transport=transport)
    auth = OAuthClientCredentials(
        api="ankorstore",
        http=http,
        token_url=str(http.base_url.join("/oauth/token")),
        clock=clock,
        client_id=client_id,
        client_secret=client_secret,
        scope="*",
        budget=token_windows,
        deadline=min(deadline, TOKEN_DEADLINE),
    )
    return ApiClient(
        name="ankorstore",
        http=http,
        limiter=RateLimiter(with_slack(windows, slack), clock=clock, name="ankorstore"),
        clock=clock,
        auth=auth,
        retry=retry,
        headers={"Accept": JSONAPI_MEDIA_TYPE},
        json_content_type=JSONAPI_MEDIA_TYPE,
        rng=rng,
        max_body_bytes=max_body_bytes,
        deadline=deadline,
    )


def activeants_client(
    *,
    base_url: str,
    username: str,
    password: Credential,
    clock: Clock,
    windows: Sequence[Window] = UNDOCUMENTED_WINDOWS,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = ACTIVEANTS_TIMEOUT,
    retry: RetryPolicy | None = None,
    rng: random.Random | None = None,
    max_body_bytes: int = ACTIVEANTS_MAX_BODY_BYTES,
    deadline: float = ACTIVEANTS_DEADLINE,
) -> ApiClient:
    """Active Ants ShopApi: password grant at ``<base_url>/token`` (seed 001 L17-84).

    One request in flight at a time (seed brief activeants §5.1): the API
    publishes no limit and its heavy endpoints ask to be used sparingly.
    """
    http = build_http_client(base_url, timeout=timeout, transport=transport, max_connections=1)
    auth = PasswordGrant(
        api="activeants",
        http=http,
        token_url=str(http.base_url.join("token")),
        clock=clock,
        username=username,
        password=password,
        deadline=min(deadline, TOKEN_DEADLINE),
    )
    return ApiClient(
        name="activeants",
        http=http,
        limiter=RateLimiter(windows, clock=clock, name="activeants"),
        clock=clock,
        auth=auth,
        retry=retry,
        headers={"Accept": "application/json"},
        rng=rng,
        max_concurrency=1,
        max_body_bytes=max_body_bytes,
        deadline=deadline,
    )


def fabric_client(
    *,
    base_url: str,
    token_url: str,
    client_id: str,
    client_secret: Credential,
    clock: Clock,
    windows: Sequence[Window] = UNDOCUMENTED_WINDOWS,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    rng: random.Random | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline: float = DEFAULT_DEADLINE,
) -> ApiClient:
    """fabric Marketplace: client credentials without a scope, 10-hour tokens (seed 003 L29-41).

    ``base_url`` should be the host root (``https://marketplace-api.fabric.inc``):
    the documented base already ends in ``/v1/`` and every path starts with
    ``/v1/`` too (seed brief fabric §2.1), so joining both doubles it.
    ``token_url`` is the "Authentication URL" of the API client's page.
    """
    http = build_http_client(base_url, timeout=timeout, transport=transport)
    auth = OAuthClientCredentials(
        api="fabric",
        http=http,
        token_url=token_url,
        clock=clock,
        client_id=client_id,
        client_secret=client_secret,
        scope=None,
        default_lifetime=FABRIC_TOKEN_LIFETIME,
        deadline=min(deadline, TOKEN_DEADLINE),
    )
    return ApiClient(
        name="fabric",
        http=http,
        limiter=RateLimiter(windows, clock=clock, name="fabric"),
        clock=clock,
        auth=auth,
        retry=retry,
        headers={"Accept": "application/json"},
        rng=rng,
        max_body_bytes=max_body_bytes,
        deadline=deadline,
    )


def fashiontrade_client(
    *,
    base_url: str,
    api_key: Credential,
    clock: Clock,
    windows: Sequence[Window] = UNDOCUMENTED_WINDOWS,
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    rng: random.Random | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    deadline: float = DEFAULT_DEADLINE,
) -> ApiClient:
    """FashionTrade order integration: a static API key as bearer (seed 002 L1742-1750).

    ``base_url`` is ``https://api.fashiontrade.com/order-integration`` (L78-81);
    httpx appends request paths (``/orders``) to the base path.
    """
    http = build_http_client(base_url, timeout=timeout, transport=transport)
    return ApiClient(
        name="fashiontrade",
        http=http,
        limiter=RateLimiter(windows, clock=clock, name="fashiontrade"),
        clock=clock,
        auth=StaticBearer(api="fashiontrade", key=api_key, clock=clock),
        retry=retry,
        headers={"Accept": "application/json"},
        rng=rng,
        max_body_bytes=max_body_bytes,
        deadline=deadline,
    )
