"""A scriptable API behind httpx.MockTransport, with its own token endpoint."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence

import anyio.lowlevel
import httpx

from syncd.clock import FakeClock
from syncd.http.auth import OAuthClientCredentials
from syncd.http.budget import Window
from syncd.http.client import ApiClient
from syncd.http.ratelimit import RateLimiter
from syncd.http.retry import RetryPolicy

SECRET = "client-secret-never-logged"
BASE = "https://api.example.test"

Step = httpx.Response | int | Exception
Responder = Callable[[httpx.Request], httpx.Response]


def script(*steps: Step) -> Responder:
    """Answer with each step in turn, then keep repeating the last one."""
    queue = list(steps)

    def respond(request: httpx.Request) -> httpx.Response:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, int):
            return httpx.Response(step, json={"data": []} if step < 300 else {"errors": []})
        return step

    return respond


class FakeApi:
    """Records every request; tokens are tok-1, tok-2, ... from ``/oauth/token``."""

    def __init__(self, clock: FakeClock, respond: Responder | None = None) -> None:
        self.clock = clock
        self.respond = respond or script(200)
        self.calls: list[httpx.Request] = []
        self.sent_at: list[float] = []
        self.token_requests = 0
        self.token_answer: Responder | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self._ids = itertools.count(1)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.token_requests += 1
            if self.token_answer is not None:
                return self.token_answer(request)
            body = {
                "token_type": "Bearer",
                "expires_in": 3600,
                "access_token": f"tok-{next(self._ids)}",
            }
            return httpx.Response(200, json=body)
        self.calls.append(request)
        self.sent_at.append(self.clock.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(3):  # let other tasks run, as a network round trip would
                await anyio.lowlevel.checkpoint()
            return self.respond(request)
        finally:
            self.in_flight -= 1

    def tokens_seen(self) -> list[str]:
        return [c.headers.get("authorization", "") for c in self.calls]

    def json_bodies(self) -> list[object]:
        return [json.loads(c.content) for c in self.calls if c.content]


def make_client(
    api: FakeApi,
    *,
    windows: Sequence[Window] = (Window(600, 60.0),),
    retry: RetryPolicy | None = None,
    authenticated: bool = True,
    json_content_type: str = "application/vnd.api+json",
    max_concurrency: int | None = None,
) -> ApiClient:
    http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(api.handler))
    auth = (
        OAuthClientCredentials(
            api="ankorstore",
            http=http,
            token_url=f"{BASE}/oauth/token",
            clock=api.clock,
            client_id="client",
            client_secret=SECRET,
        )
        if authenticated
        else None
    )
    return ApiClient(
        name="ankorstore",
        http=http,
        limiter=RateLimiter(windows, clock=api.clock, name="ankorstore"),
        clock=api.clock,
        auth=auth,
        retry=retry,
        headers={"Accept": "application/vnd.api+json"},
        json_content_type=json_content_type,
        max_concurrency=max_concurrency,
    )
