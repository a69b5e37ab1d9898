"""Every exchange has an overall deadline and a body cap, token requests included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from syncd.clock import FakeClock
from syncd.http.auth import TOKEN_MAX_BYTES, OAuthClientCredentials
from syncd.http.bounded import DeadlineExceeded, read_bounded
from syncd.http.budget import Window
from syncd.http.client import ApiClient, build_http_client
from syncd.http.errors import (
    ApiError,
    AuthError,
    RequestContext,
    ResponseTooLarge,
    TokenUnavailable,
)
from syncd.http.ratelimit import RateLimiter
from syncd.http.retry import NO_RETRY

pytestmark = pytest.mark.anyio


class _Drip(httpx.AsyncByteStream):
    """A body that never ends: one byte, then a pause, forever (no read timeout trips)."""

    def __init__(self, pause: float) -> None:
        self.pause = pause

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            yield b"x"
            await anyio.sleep(self.pause)


class _Zeros(httpx.AsyncByteStream):
    """An endless body of zeros in 64 KiB chunks; counts what was pulled from it."""

    def __init__(self) -> None:
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.sent += 65_536
            yield bytes(65_536)


def _dripping(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, stream=_Drip(0.05))


async def test_a_dripping_body_is_abandoned_at_the_deadline() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_dripping)) as http:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"0\.5 s request deadline") as raised:
            await read_bounded(
                http,
                http.build_request("GET", "https://api.test/listing"),
                limit=1 << 20,
                deadline=0.5,
                context=RequestContext(api="fabric", method="GET", path="/listing"),
            )
        assert time.monotonic() - started < 5.0
    assert "fabric GET /listing" in str(raised.value)


async def test_an_api_request_that_misses_its_deadline_fails_with_the_reason() -> None:
    clock = FakeClock()
    client = ApiClient(
        name="fabric",
        http=httpx.AsyncClient(
            base_url="https://api.test", transport=httpx.MockTransport(_dripping)
        ),
        limiter=RateLimiter((Window(100, 60.0),), clock=clock, name="fabric"),
        clock=clock,
        retry=NO_RETRY,
        deadline=0.3,
    )
    async with client:
        with pytest.raises(DeadlineExceeded) as raised:
            await client.get_json("/v1/orders")
    assert "fabric GET /v1/orders: no complete response within the 0.3 s request deadline" in str(
        raised.value
    )
    assert client.stats.errors == 1


async def test_an_endless_token_body_stops_at_the_token_cap_and_is_not_asked_again() -> None:
    zeros = _Zeros()
    requests = 0

    def endless(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return httpx.Response(200, stream=zeros)

    clock = FakeClock()
    provider = OAuthClientCredentials(
        api="ankorstore",
        http=httpx.AsyncClient(transport=httpx.MockTransport(endless)),
        token_url="https://api.test/oauth/token",
        clock=clock,
        client_id="c",
        client_secret="s3cret-value",
    )
    with pytest.raises(ResponseTooLarge, match="token response too large") as raised:
        await provider.token()
    assert raised.value.limit == TOKEN_MAX_BYTES
    assert zeros.sent <= TOKEN_MAX_BYTES + 65_536  # read stopped at the cap
    # Remembered: the next caller fails fast instead of reading it again.
    with pytest.raises(ResponseTooLarge):
        await provider.token()
    assert requests == 1
    assert "token response too large" in (provider.status().last_error or "")


async def test_a_dripping_token_endpoint_is_abandoned_and_backed_off() -> None:
    clock = FakeClock()
    provider = OAuthClientCredentials(
        api="ankorstore",
        http=httpx.AsyncClient(transport=httpx.MockTransport(_dripping)),
        token_url="https://api.test/oauth/token",
        clock=clock,
        client_id="c",
        client_secret="s3cret-value",
        deadline=0.3,
    )
    with pytest.raises(TokenUnavailable, match="request deadline"):
        await provider.token()
    # A transient failure: the provider asks again later, spaced out.
    assert provider.status().last_error is not None


async def test_redirects_are_never_followed_so_credentials_never_travel_elsewhere() -> None:
    seen: list[httpx.URL] = []

    def redirecting(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(302, headers={"Location": "http://evil.example/steal"})

    clock = FakeClock()
    client = build_http_client("https://api.test", transport=httpx.MockTransport(redirecting))
    provider = OAuthClientCredentials(
        api="fabric",
        http=client,
        token_url="https://api.test/oauth/token",
        clock=clock,
        client_id="c",
        client_secret="s3cret-value",
    )
    with pytest.raises(AuthError, match="302"):
        await provider.token()
    api = ApiClient(
        name="fabric",
        http=client,
        limiter=RateLimiter((Window(100, 60.0),), clock=clock, name="fabric"),
        clock=clock,
        retry=NO_RETRY,
    )
    with pytest.raises(ApiError, match="302"):
        await api.request("GET", "/v1/orders", authenticate=False)
    await api.aclose()
    assert [url.host for url in seen] == ["api.test", "api.test"]
