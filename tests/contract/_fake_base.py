"""What every in-memory fake API shares: bearer tokens, and armed answers.

A fake serves the documented answers of one API from a small in-memory
model, behind ``httpx.MockTransport``. Tokens follow the documents: a token
endpoint issues a bearer token, every other request must carry a live one,
and the API may revoke tokens before they expire, after which requests get
401 and "a new token must be requested" (ShopApi, seed 001 L28; Ankorstore
seed 000 L364). ``arm`` makes the next ``count`` requests under a path
answer ``status`` instead; a 429 carries what Ankorstore documents for it:
``Retry-After`` seconds and ``X-RateLimit-Reset`` as epoch seconds, with
``X-RateLimit-Remaining: 0`` (seed 000 L219-226) -- the same headers the
sandbox's fault middleware sends.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import httpx

from syncd.clock import Clock


@dataclass(slots=True)
class Armed:
    status: int
    count: int
    """Answers left; -1 answers until disarmed."""
    path_prefix: str
    retry_after: int


class FakeApi:
    """Token handling and armed answers around :meth:`serve`, which subclasses write."""

    token_path: str | None = None
    """The token endpoint's path; None for an API key (FashionTrade)."""
    token_lifetime = 3600

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._serial = itertools.count(1)
        self.live_tokens: set[str] = set()
        self.armed: list[Armed] = []
        self.api_key: str | None = None
        self.key_revoked = False

    # --- what a test does --------------------------------------------------------------

    def arm(
        self, status: int, *, count: int = 1, path_prefix: str = "", retry_after: int = 1
    ) -> None:
        self.armed.append(Armed(status, count, path_prefix, retry_after))

    def revoke_tokens(self) -> None:
        """Every issued token stops working (an API key is revoked)."""
        self.live_tokens.clear()
        self.key_revoked = True

    # --- serving -------------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.token_path is not None and path == self.token_path:
            token = f"tok-{next(self._serial)}"
            self.live_tokens.add(token)
            return httpx.Response(
                200,
                json={
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": self.token_lifetime,
                },
            )
        armed = next(
            (a for a in self.armed if a.count != 0 and path.startswith(a.path_prefix)), None
        )
        if armed is not None:
            armed.count -= 1 if armed.count > 0 else 0
            return self._armed_answer(armed)
        if not self._authorized(request):
            return self.unauthorized()
        return self.serve(request)

    def _authorized(self, request: httpx.Request) -> bool:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if self.token_path is None:
            return presented == self.api_key and not self.key_revoked
        return presented in self.live_tokens

    def _armed_answer(self, armed: Armed) -> httpx.Response:
        headers: dict[str, str] = {}
        if armed.status == 429:
            headers = {
                "Retry-After": str(armed.retry_after),
                "X-RateLimit-Reset": str(int(self.clock.wall()) + armed.retry_after),
                "X-RateLimit-Remaining": "0",
            }
        body = {"errors": [{"status": str(armed.status), "title": "armed by the test"}]}
        return httpx.Response(armed.status, headers=headers, json=body)

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(401, json={"errors": [{"status": "401", "title": "Unauthenticated"}]})

    def serve(self, request: httpx.Request) -> httpx.Response:
        raise NotImplementedError


def json_body(request: httpx.Request) -> Any:
    return json.loads(request.content)
