"""Typed failures of the HTTP layer, each carrying enough context to act on.

Every error names the API, the request (method and path -- never the query
string or headers, which could carry credentials) and syncd's request id,
which is also sent as ``X-Request-Id`` so a vendor can find the call in
their logs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Which logical request failed, and after how many HTTP attempts."""

    api: str = ""
    method: str = ""
    path: str = ""
    request_id: str = ""
    attempts: int = 0


_NO_CONTEXT = RequestContext()


class HttpError(Exception):
    """Base of every error raised by :mod:`syncd.http`."""

    def __init__(self, message: str, *, context: RequestContext = _NO_CONTEXT) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    @property
    def request_id(self) -> str:
        return self.context.request_id

    @property
    def transient(self) -> bool:
        """Whether trying the same thing again later may succeed."""
        return False

    def __str__(self) -> str:
        ctx = self.context
        where = " ".join(part for part in (ctx.api, ctx.method, ctx.path) if part)
        rid = f" [request {ctx.request_id}]" if ctx.request_id else ""
        return f"{where}: {self.message}{rid}" if where else f"{self.message}{rid}"


class ApiError(HttpError):
    """The server answered with a status syncd does not accept.

    ``body`` is a short excerpt of the response body and ``details`` the
    JSON:API ``errors[]`` entries rendered as ``"422 detail (pointer)"``
    (Ankorstore's error ``status`` is a string, seed brief catalog §7.1).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: str = "",
        details: Sequence[str] = (),
        context: RequestContext = _NO_CONTEXT,
    ) -> None:
        super().__init__(message, context=context)
        self.status = status
        self.body = body
        self.details = tuple(details)

    @property
    def transient(self) -> bool:
        # 501/505 say "this server will never do that"; other 5xx and 408 may pass later.
        return self.status == 408 or (500 <= self.status <= 599 and self.status not in (501, 505))


class RateLimited(ApiError):
    """429 Too Many Requests that syncd would not, or could no longer, wait out.

    ``retry_after`` is how long the server asked us to wait, in seconds.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None,
        body: str = "",
        context: RequestContext = _NO_CONTEXT,
    ) -> None:
        super().__init__(message, status=429, body=body, context=context)
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return False  # the wait is already known to be too long; the caller decides


class AuthError(HttpError):
    """Credentials were refused, or no token can be had without breaking a limit.

    Not transient: retrying the same credentials in a loop only burns the
    token endpoint's budget (Ankorstore: 60 per hour, seed 000 L228).
    """

    def __init__(
        self, message: str, *, status: int | None = None, context: RequestContext = _NO_CONTEXT
    ) -> None:
        super().__init__(message, context=context)
        self.status = status


class TransportError(HttpError):
    """No usable HTTP response: timeout, connection refused or reset, protocol error."""

    def __init__(
        self, message: str, *, retryable: bool = True, context: RequestContext = _NO_CONTEXT
    ) -> None:
        super().__init__(message, context=context)
        self.retryable = retryable

    @property
    def transient(self) -> bool:
        return self.retryable


class TokenUnavailable(TransportError):
    """The token endpoint is failing (5xx, timeout); no request was sent.

    ``retry_in`` is when the provider will ask again: it spaces its attempts
    out (5 s, 10 s, 20 s ... 5 min) so an outage cannot burn the token budget.
    """

    def __init__(
        self, cause: str, *, retry_in: float, context: RequestContext = _NO_CONTEXT
    ) -> None:
        super().__init__(
            f"token endpoint unavailable ({cause}); next try in {math.ceil(retry_in)} s",
            context=context,
        )
        self.cause = cause
        self.retry_in = retry_in


class InvalidResponse(HttpError):
    """A 2xx response whose body is not what the protocol promises (e.g. not JSON)."""


class ResponseTooLarge(InvalidResponse):
    """A response body larger than the client accepts; reading stopped at the limit.

    ``limit`` is that limit in bytes. Never retried: the same request would
    bring the same body.
    """

    def __init__(self, message: str, *, limit: int, context: RequestContext = _NO_CONTEXT) -> None:
        super().__init__(message, context=context)
        self.limit = limit


class PaginationError(HttpError):
    """A paginated listing that cannot be read to its end safely.

    Raised instead of returning a silently truncated listing: a partial read
    must never be mistaken for a complete one (it could zero stock).
    """
