"""Hostile bodies and headers at the HTTP layer every source and channel shares.

A body is read only up to the client's limit (``max_body_bytes``; 32 MiB by
default, more for Active Ants' single-answer full reads): an endless stream,
an announced 10 GB or a small gzip that inflates to tens of MB ends in a
typed `ResponseTooLarge` after at most the limit, never in syncd's memory
running out. Rate-limit headers that make no sense are ignored or waited
out within bounds, never a crash.
"""

from __future__ import annotations

import gzip
import json

import httpx
import pytest

from syncd.clock import FakeClock
from syncd.http.client import DEFAULT_MAX_BODY_BYTES, ApiClient
from syncd.http.errors import InvalidResponse, RateLimited, ResponseTooLarge
from syncd.http.presets import ACTIVEANTS_MAX_BODY_BYTES, activeants_client, ankorstore_client
from tests.badinput._support import NO_RETRY, TENS_OF_MB, EndlessStream, Script, token

pytestmark = pytest.mark.anyio

PATH = "/api/v1/orders"


def client_for(script: Script) -> ApiClient:
    return ankorstore_client(
        base_url="https://ankorstore.test",
        client_id="id",
        client_secret="secret",
        clock=FakeClock(),
        transport=script.transport(),
        retry=NO_RETRY,
    )


def serving(response: httpx.Response) -> Script:
    script = Script(token)
    script.always[PATH] = response
    return script


async def test_an_endless_body_is_cut_at_the_limit() -> None:
    stream = EndlessStream()
    script = serving(httpx.Response(200, stream=stream))
    with pytest.raises(ResponseTooLarge) as raised:
        await client_for(script).get_json(PATH)
    assert raised.value.limit == DEFAULT_MAX_BODY_BYTES
    assert DEFAULT_MAX_BODY_BYTES < stream.served <= DEFAULT_MAX_BODY_BYTES + 2 * len(stream.chunk)


async def test_an_announced_enormous_body_is_refused_before_reading_it() -> None:
    stream = EndlessStream()
    script = serving(httpx.Response(200, stream=stream, headers={"content-length": str(10**10)}))
    with pytest.raises(ResponseTooLarge, match="announced"):
        await client_for(script).get_json(PATH)
    assert stream.served == 0


async def test_a_small_gzip_that_inflates_past_the_limit_is_cut() -> None:
    bomb = gzip.compress(b"\0" * TENS_OF_MB, compresslevel=1)
    assert len(bomb) < 1024 * 1024
    script = serving(httpx.Response(200, content=bomb, headers={"content-encoding": "gzip"}))
    with pytest.raises(ResponseTooLarge):
        await client_for(script).get_json(PATH)


async def test_a_compressed_body_within_the_limit_reads_as_before() -> None:
    document = {"data": [{"id": str(n)} for n in range(1000)]}
    script = serving(
        httpx.Response(
            200,
            content=gzip.compress(json.dumps(document).encode()),
            headers={"content-encoding": "gzip", "content-type": "application/json"},
        )
    )
    client = client_for(script)
    response = await client.request("GET", PATH)
    assert response.json() == document
    assert "content-encoding" not in response.headers  # the body handed on is decoded
    assert response.request.headers["x-request-id"]


async def test_active_ants_reads_more_than_the_default_limit_in_one_answer() -> None:
    """Its full stock read lists every product at once (seed 001 L2868): tens of MB is a
    large catalog there, not an attack, so its client reads past the default limit."""
    body = b'{"messageCode": "OK", "padding": "' + b"x" * TENS_OF_MB + b'"}'
    assert DEFAULT_MAX_BODY_BYTES < len(body) < ACTIVEANTS_MAX_BODY_BYTES
    script = Script(token)
    script.always["/v2/stock/bulk"] = httpx.Response(200, content=body)
    client = activeants_client(
        base_url="https://shopapi.test",
        username="u",
        password="p",
        clock=FakeClock(),
        transport=script.transport(),
        retry=NO_RETRY,
    )
    document = await client.get_json("v2/stock/bulk")
    assert len(document["padding"]) == TENS_OF_MB


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "NaN"},
        {"Retry-After": "-5"},
        {"Retry-After": "1e400"},
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"Retry-After": "soon"},
        {"X-RateLimit-Reset": "9" * 5000, "X-RateLimit-Remaining": "-1"},
        {"X-RateLimit-Remaining": "abc", "X-RateLimit-Limit": "1e9"},
    ],
    ids=lambda headers: ",".join(f"{k}={v[:12]}" for k, v in headers.items()),
)
async def test_nonsense_rate_limit_headers_end_in_a_typed_error(headers: dict[str, str]) -> None:
    script = serving(httpx.Response(429, headers=headers, content=b"slow down"))
    with pytest.raises(RateLimited):
        await client_for(script).get_json(PATH)


@pytest.mark.parametrize(
    "content_type", ["text/html", "application/json", "application/octet-stream"]
)
async def test_undecodable_bytes_are_an_invalid_response(content_type: str) -> None:
    script = serving(
        httpx.Response(
            200, content=b"\xff\xfe\x00\x81" * 1000, headers={"content-type": content_type}
        )
    )
    with pytest.raises(InvalidResponse):
        await client_for(script).get_json(PATH)
