"""Per-API clients carry the documented numbers, and Ankorstore shares one budget."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx
import pytest

from syncd.clock import FakeClock
from syncd.http.budget import Window
from syncd.http.presets import (
    activeants_client,
    ankorstore_client,
    fabric_client,
    fashiontrade_client,
    with_slack,
)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if "token" in request.url.path:
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        return httpx.Response(200, json={"data": []})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def api_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if "token" not in r.url.path]


@pytest.mark.anyio
async def test_ankorstore_catalog_orders_astral_and_bulk_share_one_token_and_one_budget() -> None:
    recorder = Recorder()
    clock = FakeClock()
    client = ankorstore_client(
        base_url="https://www.public.ankorstore-sandbox.com",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=recorder.transport(),
    )
    assert [(w.limit, w.seconds) for w in client.limiter.windows] == [
        (600, 62.0),
        (24_000, 3602.0),
        (288_000, 86_402.0),
    ]
    await client.request("GET", "/api/v1/product-variants", params={"filter[sku]": "A"})
    await client.request("GET", "/api/v1/orders")
    await client.request("GET", "/api/astral/v1/stock/postings")
    await client.request(
        "POST", "/api/v1/operations", json={"atomic:operations": []}, idempotent=True
    )
    token_request, *_ = recorder.requests
    assert str(token_request.url) == "https://www.public.ankorstore-sandbox.com/oauth/token"
    assert parse_qs(token_request.content.decode())["scope"] == ["*"]
    assert len(recorder.requests) == 5  # one token for all four kinds of call
    minute = client.limiter.snapshot().windows[0]
    assert minute.used == 4
    calls = recorder.api_calls()
    assert all(c.headers["accept"] == "application/vnd.api+json" for c in calls)
    assert calls[-1].headers["content-type"] == "application/vnd.api+json"


@pytest.mark.anyio
async def test_activeants_uses_the_password_grant_and_one_request_at_a_time() -> None:
    recorder = Recorder()
    client = activeants_client(
        base_url="https://shopapi.example.test",
        username="shopapi-user",
        password="pw",
        clock=FakeClock(),
        transport=recorder.transport(),
    )
    await client.request("GET", "/v2/stock/bulk", params={"from": "2024-12-05T11:22:52+01:00"})
    token_request, call = recorder.requests
    assert token_request.url.path == "/token"
    assert parse_qs(token_request.content.decode())["grant_type"] == ["password"]
    assert call.url.params["from"] == "2024-12-05T11:22:52+01:00"  # "+" is encoded (seed 001 L2874)
    assert "%2B" in str(call.url)
    assert client.http.timeout.read == 120.0


@pytest.mark.anyio
async def test_fabric_token_has_no_scope_and_a_configurable_token_url() -> None:
    recorder = Recorder()
    client = fabric_client(
        base_url="https://marketplace-api-sandbox.fabric.inc",
        token_url="https://marketplace-api-sandbox.fabric.inc/api-token/",
        client_id="id",
        client_secret="secret",
        clock=FakeClock(),
        transport=recorder.transport(),
        windows=(Window(1, 1.0),),
    )
    await client.request("GET", "/v1/brands/7/inventory/")
    form = parse_qs(recorder.requests[0].content.decode())
    assert "scope" not in form
    assert form["grant_type"] == ["client_credentials"]
    assert recorder.requests[1].url.path == "/v1/brands/7/inventory/"


@pytest.mark.anyio
async def test_fashiontrade_sends_its_key_as_bearer_under_the_base_path() -> None:
    recorder = Recorder()
    client = fashiontrade_client(
        base_url="https://api.fashiontrade.com/order-integration",
        api_key="ft-key",
        clock=FakeClock(),
        transport=recorder.transport(),
    )
    await client.request("GET", "/orders", params={"status": "SUBMITTED"})
    (call,) = recorder.requests
    assert call.url.path == "/order-integration/orders"
    assert call.headers["authorization"] == "Bearer ft-key"


def test_slack_lengthens_windows_but_keeps_limits() -> None:
    assert with_slack([Window(600, 60.0)], 2.0) == (Window(600, 62.0),)
    with pytest.raises(ValueError, match="negative"):
        with_slack([Window(600, 60.0)], -1.0)
