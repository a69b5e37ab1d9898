"""The checks every Ankorstore (and ASTRAL) API request passes, in order.

1. **Authentication**: ``Authorization: Bearer <token>`` with a live token
   (seed 000 L172-174). Unknown, expired (past ``expires_in``, on the
   simulator's clock) and revoked tokens get the documented 401 body
   ``{"errors":[{"detail":"Unauthorized","status":"401"}]}`` (L9447-9452).
   Such requests count against the unauthenticated limits (L212-216).
2. **Rate limits**: one sliding-window budget of 600/min, 24 000/h and
   288 000/day per client (L202-206), shared by every endpoint on the host,
   ASTRAL included. Every answer carries ``X-RateLimit-Limit`` and
   ``X-RateLimit-Remaining``; a 429 adds ``Retry-After`` and
   ``X-RateLimit-Reset`` (L218-226). A rejected request does not consume
   budget.
3. **Media types**: ``Accept: application/vnd.api+json`` is required, else 406;
   a body must be ``Content-Type: application/vnd.api+json``, else 415 (L23;
   both statuses documented on every endpoint in the spec).

The ``revoke_tokens`` fault revokes every issued token just before the check,
so the request it fires on is the first to see a 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from syncd.sandbox.ankorstore_state import AnkorstoreState, IssuedToken
from syncd.sandbox.faults import FaultPlan
from syncd.sandbox.jsonapi_sim import (
    ApiError,
    accepts_json,
    accepts_jsonapi,
    error_response,
    is_jsonapi_body,
)
from syncd.sandbox.limits import Verdict

Media = Literal["jsonapi", "json"]


@dataclass(frozen=True, slots=True)
class Admitted:
    """What a handler knows about a request that passed the checks."""

    token: IssuedToken
    verdict: Verdict


Handler = Callable[[Request, Admitted], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


class Guard:
    """Wraps handlers with authentication, rate limiting and media-type checks."""

    def __init__(self, state: AnkorstoreState, faults: FaultPlan) -> None:
        self.state = state
        self.faults = faults

    def wrap(
        self,
        label: str,
        handler: Handler,
        *,
        media: Media = "jsonapi",
        body: bool = False,
        integer_status: bool = False,
    ) -> Endpoint:
        """An endpoint running ``handler`` behind the checks; ``label`` names it in counters.

        ``integer_status``: ASTRAL's error schema writes ``status`` as an
        integer where the main API writes a string.
        """

        async def endpoint(request: Request) -> Response:
            state = self.state
            state.count_request(label)
            if self.faults.take("revoke_tokens", request.method, request.url.path):
                state.revoke_tokens()
            token = state.authenticate(_bearer(request))
            if token is None:
                verdict = state.anonymous_rate.check("anonymous")
                if not verdict.allowed:
                    return self._too_many(verdict, integer_status)
                with state.lock:
                    state.counters.unauthorized += 1
                headers = {**verdict.headers(), "WWW-Authenticate": 'Bearer error="invalid_token"'}
                return error_response(
                    [ApiError(401, "Unauthorized")], headers=headers, integer_status=integer_status
                )
            verdict = state.rate.check(token.client_id)
            if not verdict.allowed:
                return self._too_many(verdict, integer_status)
            headers = verdict.headers()
            accept = request.headers.get("accept")
            acceptable = accepts_jsonapi(accept) if media == "jsonapi" else accepts_json(accept)
            if not acceptable:
                return error_response(
                    [ApiError(406, "Not Acceptable")],
                    headers=headers,
                    integer_status=integer_status,
                )
            if body and not is_jsonapi_body(request.headers.get("content-type")):
                return error_response(
                    [ApiError(415, "Unsupported Media Type")],
                    headers=headers,
                    integer_status=integer_status,
                )
            response = await handler(request, Admitted(token=token, verdict=verdict))
            response.headers.update(headers)
            return response

        return endpoint

    def _too_many(self, verdict: Verdict, integer_status: bool) -> Response:
        with self.state.lock:
            self.state.counters.rate_limited += 1
        return error_response(
            [ApiError(429, f"Too Many Requests: retry after {verdict.retry_after} s.")],
            headers=verdict.headers(),
            integer_status=integer_status,
        )
