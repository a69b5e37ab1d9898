"""ApiClient: auth, rate limits and retries as a user of the API would notice them."""

from __future__ import annotations

import anyio
import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.http.budget import Window
from syncd.http.errors import ApiError, AuthError, InvalidResponse, RateLimited, TransportError
from syncd.http.retry import RetryPolicy
from tests.unit.http.fakeapi import SECRET, FakeApi, make_client, script
from tests.unit.http.test_budget import max_in_any_window


def jsonapi_error(status: int, detail: str) -> httpx.Response:
    body = {
        "jsonapi": {"version": "1.0"},
        "errors": [
            {
                "detail": detail,
                "status": str(status),
                "source": {"pointer": "data.attributes.stockQuantity"},
            }
        ],
    }
    return httpx.Response(status, json=body)


@pytest.mark.anyio
async def test_jsonapi_headers_token_and_request_id_are_sent() -> None:
    api = FakeApi(FakeClock())
    client = make_client(api)
    await client.request("GET", "/api/v1/product-variants", params={"filter[sku]": "A,B"})
    await client.request(
        "PATCH",
        "/api/v1/product-variants/v1/stock",
        json={"data": {"attributes": {"stockQuantity": 3}}},
        idempotent=True,
    )
    get, patch = api.calls
    assert get.headers["accept"] == "application/vnd.api+json"
    assert get.headers["authorization"] == "Bearer tok-1"
    assert get.url.params["filter[sku]"] == "A,B"
    assert len(get.headers["x-request-id"]) == 32
    assert patch.headers["content-type"] == "application/vnd.api+json"
    assert patch.content == b'{"data":{"attributes":{"stockQuantity":3}}}'
    assert get.headers["x-request-id"] != patch.headers["x-request-id"]
    assert api.token_requests == 1


@pytest.mark.anyio
async def test_401_refreshes_the_token_once_and_succeeds() -> None:
    api = FakeApi(FakeClock())
    api.respond = lambda r: httpx.Response(
        401 if r.headers["authorization"] == "Bearer tok-1" else 200
    )
    client = make_client(api)
    response = await client.request("GET", "/api/v1/me")
    assert response.status_code == 200
    assert api.tokens_seen() == ["Bearer tok-1", "Bearer tok-2"]
    assert api.token_requests == 2
    assert client.stats.reauthentications == 1
    # Both attempts belong to one logical request.
    assert len({c.headers["x-request-id"] for c in api.calls}) == 1


@pytest.mark.anyio
async def test_repeated_401_is_an_auth_error_not_a_loop() -> None:
    api = FakeApi(FakeClock(), script(401))
    client = make_client(api)
    with pytest.raises(AuthError, match="after a fresh token"):
        await client.request("GET", "/api/v1/me")
    assert len(api.calls) == 2
    assert api.token_requests == 2
    assert client.stats.errors == 1


@pytest.mark.anyio
async def test_429_waits_exactly_retry_after_then_succeeds() -> None:
    clock = FakeClock(start=0.0)
    api = FakeApi(
        clock,
        script(
            httpx.Response(429, headers={"Retry-After": "7", "X-RateLimit-Remaining": "0"}), 200
        ),
    )
    client = make_client(api)
    response = await client.request("GET", "/api/v1/orders")
    assert response.status_code == 200
    assert api.sent_at[1] - api.sent_at[0] == pytest.approx(7.0, abs=0.01)
    assert client.stats.rate_limited == 1
    assert client.stats.retries == 1


@pytest.mark.anyio
async def test_429_pauses_other_callers_of_the_same_api_too() -> None:
    clock = FakeClock(start=0.0)
    first = True

    def respond(request: httpx.Request) -> httpx.Response:
        nonlocal first
        if first:
            first = False
            return httpx.Response(429, headers={"Retry-After": "30"})
        return httpx.Response(200)

    api = FakeApi(clock, respond)
    client = make_client(api)
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.request, "GET", "/a")
        await clock.sleep(1.0)
        tg.start_soon(client.request, "GET", "/b")
    assert api.sent_at[0] == 0.0
    assert all(t >= 30.0 for t in api.sent_at[1:])


@pytest.mark.anyio
async def test_persistent_429_gives_up_after_the_bound() -> None:
    api = FakeApi(FakeClock(), script(httpx.Response(429, headers={"Retry-After": "1"})))
    client = make_client(api, retry=RetryPolicy(max_rate_limited=3))
    with pytest.raises(RateLimited) as caught:
        await client.request("GET", "/api/v1/orders")
    assert len(api.calls) == 4
    assert caught.value.retry_after == 1.0


@pytest.mark.anyio
async def test_429_asking_for_too_long_a_wait_is_raised_at_once() -> None:
    api = FakeApi(FakeClock(), script(httpx.Response(429, headers={"Retry-After": "3600"})))
    client = make_client(api)
    with pytest.raises(RateLimited) as caught:
        await client.request("GET", "/api/v1/orders")
    assert caught.value.retry_after == 3600.0
    assert len(api.calls) == 1
    assert client.limiter.snapshot().blocked_for == pytest.approx(3600.0)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 403, 404, 406, 415, 422])
async def test_documented_client_errors_are_never_retried(status: int) -> None:
    api = FakeApi(FakeClock(), script(jsonapi_error(status, "nope")))
    client = make_client(api)
    with pytest.raises(ApiError) as caught:
        await client.request("PATCH", "/api/v1/product-variants/x/stock", json={}, idempotent=True)
    assert len(api.calls) == 1
    error = caught.value
    assert error.status == status
    assert error.details == (f"{status} nope (data.attributes.stockQuantity)",)
    assert error.request_id == api.calls[0].headers["x-request-id"]
    assert "/api/v1/product-variants/x/stock" in str(error)


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_back_off_with_bounded_jitter_then_give_up(status: int) -> None:
    clock = FakeClock()
    api = FakeApi(clock, script(status))
    policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=3.0, max_elapsed=100.0)
    client = make_client(api, retry=policy)
    with pytest.raises(ApiError) as caught:
        await client.request("GET", "/api/v1/orders")
    assert caught.value.status == status
    assert caught.value.context.attempts == 5
    assert len(api.calls) == 5
    backoffs = [s for s in clock.sleeps if s > 0.002]  # limiter sleeps are separate and tiny
    assert len(backoffs) <= 4
    gaps = [b - a for a, b in zip(api.sent_at, api.sent_at[1:], strict=False)]
    for retry, gap in enumerate(gaps, start=1):
        assert 0.0 <= gap <= min(3.0, 0.5 * 2 ** (retry - 1)) + 0.01


@pytest.mark.anyio
async def test_request_ids_and_back_off_jitter_come_from_the_clock_so_a_seed_replays_them() -> None:
    async def run(seed: int) -> tuple[list[str], list[float]]:
        clock = FakeClock(seed=seed)
        api = FakeApi(clock, script(503, 503, 200))
        policy = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=3.0, max_elapsed=100.0)
        client = make_client(api, retry=policy)
        await client.request("GET", "/api/v1/orders")
        await client.request("GET", "/api/v1/orders")
        return [call.headers["x-request-id"] for call in api.calls], api.sent_at

    (ids, sent_at), again, (other_ids, other_sent_at) = await run(1), await run(1), await run(2)
    assert (ids, sent_at) == again
    # Retries of one request carry its id; the next request gets a new one.
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert other_ids[0] != ids[0]
    assert other_sent_at != sent_at  # the back-off jitter is another draw too


@pytest.mark.anyio
async def test_server_error_then_success_is_transparent() -> None:
    api = FakeApi(FakeClock(), script(503, 502, 200))
    client = make_client(api)
    response = await client.request("GET", "/api/v1/orders")
    assert response.status_code == 200
    assert client.stats.as_dict() == {
        "requests": 1,
        "attempts": 3,
        "retries": 2,
        "rate_limited": 0,
        "reauthentications": 0,
        "transport_errors": 0,
        "errors": 0,
    }


@pytest.mark.anyio
async def test_total_retry_time_is_bounded() -> None:
    clock = FakeClock(start=0.0)
    api = FakeApi(clock, script(httpx.Response(503, headers={"Retry-After": "20"})))
    client = make_client(api, retry=RetryPolicy(max_attempts=50, max_delay=20.0, max_elapsed=60.0))
    with pytest.raises(ApiError):
        await client.request("GET", "/api/v1/orders")
    # Retry-After is honoured as the minimum back-off, and no retry starts past 60 s.
    assert len(api.calls) == 4
    assert api.sent_at[-1] <= 60.0


@pytest.mark.anyio
async def test_non_idempotent_requests_are_not_retried_on_5xx() -> None:
    api = FakeApi(FakeClock(), script(500, 200))
    client = make_client(api)
    with pytest.raises(ApiError) as caught:
        await client.request("POST", "/api/v1/orders", json={"data": {}})
    assert caught.value.transient
    assert len(api.calls) == 1


@pytest.mark.anyio
async def test_absolute_stock_writes_marked_idempotent_are_retried() -> None:
    api = FakeApi(FakeClock(), script(500, 200))
    client = make_client(api)
    body = {
        "atomic:operations": [
            {
                "op": "update",
                "data": {"type": "productVariants", "id": "v", "attributes": {"stockQuantity": 5}},
            }
        ]
    }
    await client.request("POST", "/api/v1/operations", json=body, idempotent=True)
    assert api.json_bodies() == [body, body]


@pytest.mark.anyio
async def test_read_timeouts_are_retried_for_reads_but_not_for_posts() -> None:
    api = FakeApi(FakeClock(), script(httpx.ReadTimeout("slow"), 200))
    client = make_client(api)
    assert (await client.request("GET", "/api/v1/orders")).status_code == 200
    assert client.stats.transport_errors == 1

    api.respond = script(httpx.ReadTimeout("slow"), 200)
    with pytest.raises(TransportError, match="ReadTimeout"):
        await client.request("POST", "/api/v1/orders", json={})


@pytest.mark.anyio
async def test_connection_failures_are_retried_for_any_method() -> None:
    """Nothing left the machine, so even a POST is safe to send again."""
    api = FakeApi(FakeClock(), script(httpx.ConnectError("refused"), 200))
    client = make_client(api)
    response = await client.request("POST", "/api/v1/orders", json={})
    assert response.status_code == 200


@pytest.mark.anyio
async def test_token_endpoint_outage_is_retried_before_anything_is_sent() -> None:
    api = FakeApi(FakeClock())
    failures = iter([httpx.Response(503), httpx.Response(503)])
    api.token_answer = lambda request: (
        next(failures, None)
        or httpx.Response(200, json={"access_token": "tok-x", "expires_in": 3600})
    )
    client = make_client(api)
    response = await client.request("POST", "/api/v1/orders", json={})
    assert response.status_code == 200
    assert api.tokens_seen() == ["Bearer tok-x"]


@pytest.mark.anyio
async def test_rate_slot_is_taken_before_every_attempt() -> None:
    clock = FakeClock(start=0.0)
    api = FakeApi(clock, script(503, 503, 200))
    client = make_client(api, windows=(Window(2, 60.0),))
    await client.request("GET", "/api/v1/orders")
    assert len(api.calls) == 3
    assert max_in_any_window(api.sent_at, 60.0) <= 2
    assert api.sent_at[2] >= 60.0


@pytest.mark.anyio
async def test_many_concurrent_requests_never_exceed_any_window() -> None:
    clock = FakeClock(start=0.0)
    api = FakeApi(clock)
    client = make_client(api, windows=(Window(10, 1.0), Window(100, 60.0)))
    async with anyio.create_task_group() as tg:
        for i in range(250):
            tg.start_soon(client.request, "GET", f"/api/v1/product-variants/{i}")
    assert len(api.calls) == 250
    assert max_in_any_window(api.sent_at, 1.0) <= 10
    assert max_in_any_window(api.sent_at, 60.0) <= 100
    assert api.token_requests == 1


@pytest.mark.anyio
async def test_max_concurrency_keeps_one_request_in_flight() -> None:
    api = FakeApi(FakeClock())
    client = make_client(api, max_concurrency=1)
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(client.request, "GET", "/stock")
    assert api.max_in_flight == 1
    assert len(api.calls) == 10


@pytest.mark.anyio
async def test_credentials_are_never_sent_to_another_host() -> None:
    api = FakeApi(FakeClock())
    client = make_client(api)
    with pytest.raises(ValueError, match="refusing to send credentials"):
        await client.request("GET", "https://elsewhere.example.test/api/v1/orders")
    assert api.calls == []


@pytest.mark.anyio
async def test_unauthenticated_calls_carry_no_token() -> None:
    api = FakeApi(FakeClock())
    client = make_client(api)
    await client.request("GET", "/status/get", authenticate=False)
    assert "authorization" not in api.calls[0].headers
    assert api.token_requests == 0


@pytest.mark.anyio
async def test_get_json_reports_a_non_json_body() -> None:
    api = FakeApi(FakeClock(), script(httpx.Response(200, text="<html>maintenance</html>")))
    client = make_client(api)
    with pytest.raises(InvalidResponse, match="maintenance"):
        await client.get_json("/api/v1/orders")


@pytest.mark.anyio
async def test_logs_carry_request_ids_and_never_secrets() -> None:
    api = FakeApi(FakeClock())
    api.respond = script(401, 503, 200)
    client = make_client(api)
    with capture_logs() as logs:
        await client.request("GET", "/api/v1/orders")
        api.respond = script(jsonapi_error(422, "stockQuantity must be >= 0"))
        with pytest.raises(ApiError):
            await client.request("PATCH", "/x", json={"a": 1}, idempotent=True)
    http_events = [
        e for e in logs if e["event"] in {"http.response", "http.retry", "http.request_failed"}
    ]
    assert {e["event"] for e in http_events} == {
        "http.response",
        "http.retry",
        "http.request_failed",
    }
    assert all(len(e["request_id"]) == 32 for e in http_events)
    rendered = repr(logs)
    for secret in (SECRET, "tok-1", "tok-2", "Bearer", "authorization", "Authorization"):
        assert secret not in rendered
