"""One request to an OAuth-style token endpoint: a form body in, a token and its lifetime out.

The provider (:mod:`syncd.http.auth`) decides when to ask and what to do
with the answer; this module sends the request and says what came back. The
read is bounded (:data:`TOKEN_MAX_BYTES`, ``deadline``; :mod:`syncd.http.bounded`),
every status is mapped to syncd's HTTP errors -- 429 as :class:`RateLimited`
with its ``Retry-After``, 408 and 5xx as a transient :class:`ApiError`, any
other refusal as an :class:`AuthError` that says which config keys to check
-- and the JSON is checked. No message quotes the body: it holds the token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from syncd.clock import Clock
from syncd.http.bounded import read_bounded
from syncd.http.budget import parse_rate_headers
from syncd.http.errors import ApiError, AuthError, RateLimited, RequestContext, TransportError
from syncd.http.token_response import oauth_error, token_lifetime

TOKEN_MAX_BYTES = 64 * 1024
"""Largest token response read: a token answer is a few hundred bytes (seed 000
L158-165: ``token_type``, ``expires_in``, ``access_token``), so anything near this
is not a token endpoint talking."""

TOKEN_DEADLINE = 60.0
"""Longest a token request may take in all, body included (:mod:`syncd.http.bounded`)."""


async def request_token(
    http: httpx.AsyncClient,
    url: str,
    form: Mapping[str, str],
    *,
    context: RequestContext,
    clock: Clock,
    deadline: float,
    default_lifetime: float | None,
    refused: str,
    hint: str,
) -> tuple[str, float]:
    """``(token, lifetime in seconds)`` from ``url``; raises an :class:`HttpError` otherwise.

    ``refused`` and ``hint`` word a refusal of the credentials, e.g. "login
    refused (400 invalid_grant): check [apis.activeants] username and password".
    """
    request = http.build_request(
        "POST",
        url,
        data=dict(form),
        # The token endpoint is not JSON:API (seed 000 L149-152).
        headers={"Accept": "application/json"},
    )
    try:
        response = await read_bounded(
            http,
            request,
            limit=TOKEN_MAX_BYTES,
            deadline=deadline,
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
        signal = parse_rate_headers(response.headers, wall_now=clock.wall())
        raise RateLimited(
            "token endpoint answered 429", retry_after=signal.retry_after, context=context
        )
    if status == 408 or status >= 500:
        raise ApiError(f"token endpoint answered {status}", status=status, context=context)
    if not 200 <= status <= 299:
        code = oauth_error(response)
        answer = f"{status} {code}" if code else str(status)
        raise AuthError(f"{refused} ({answer}): {hint}", status=status, context=context)
    return _parse(response, context, default_lifetime)


def _parse(
    response: httpx.Response, context: RequestContext, default_lifetime: float | None
) -> tuple[str, float]:
    try:
        document: Any = response.json()
    except ValueError:
        raise AuthError("token response is not JSON", context=context) from None
    if not isinstance(document, dict):
        raise AuthError("token response is not a JSON object", context=context)
    value = document.get("access_token")
    if not isinstance(value, str) or not value:
        raise AuthError("token response has no access_token", context=context)
    lifetime = token_lifetime(document, default_lifetime)
    if lifetime is None:
        raise AuthError("token response has no usable expires_in", context=context)
    return value, lifetime
