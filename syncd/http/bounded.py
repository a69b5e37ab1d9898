"""Read one HTTP response within a size cap and an overall deadline.

httpx's timeouts bound each *phase* (connect, one read, one write): a server
that sends one byte every few seconds never trips a 30 s read timeout and can
hold a request -- and the source or channel waiting on it -- for hours. A
body is also read whole by default, so an endless answer grows syncd until
the kernel stops it. Every exchange syncd makes therefore goes through
:func:`read_bounded`:

* the whole exchange (connect, send, headers, body) must finish within
  ``deadline`` seconds of real time, or it is abandoned with
  :class:`DeadlineExceeded`;
* the body is streamed and reading stops once it passes ``limit`` bytes
  (after decompression, so a small gzip bomb counts at its real size), with
  :class:`~syncd.http.errors.ResponseTooLarge`; a ``Content-Length`` above the
  limit is refused before a byte of the body is read.

The deadline is real time on purpose, not the injected :class:`Clock`: it
guards against the network, which only real time measures.

The ``httpx.AsyncClient`` under each API client comes from
:func:`build_http_client`: explicit limits for every phase, a bounded
connection pool, and no redirects.
"""

from __future__ import annotations

from typing import Final

import anyio
import httpx

from syncd.http.errors import RequestContext, ResponseTooLarge, TransportError

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
"""Explicit limits for every phase; an API needing longer reads passes its own."""


def build_http_client(
    base_url: str,
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 10,
) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` for one API: explicit timeouts, no redirects.

    Redirects are not followed: a redirected POST/PATCH loses its body (fabric
    redirects paths missing their trailing slash, seed brief fabric §2.6), so
    a 3xx surfaces as an error instead of a silent no-op.
    """
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": "syncd"},
    )


class DeadlineExceeded(TransportError):
    """The exchange did not finish within its overall deadline (``deadline`` seconds).

    Transient: the next poll may find the server healthy again. Like any
    timeout, a request that may have been applied is only resent when it is
    idempotent.
    """

    def __init__(self, deadline: float, *, context: RequestContext) -> None:
        super().__init__(
            f"no complete response within the {deadline:g} s request deadline", context=context
        )
        self.deadline = deadline


async def read_bounded(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    limit: int,
    deadline: float,
    context: RequestContext,
    what: str = "response body",
) -> httpx.Response:
    """Send ``request`` and return an in-memory response with its decoded body.

    The response handed back holds the body already read, so later
    ``.json()``/``.text`` calls cannot read any further. Raises
    :class:`DeadlineExceeded`, :class:`ResponseTooLarge` or the
    ``httpx.HTTPError`` of a failed exchange.
    """
    with anyio.move_on_after(deadline) as scope:
        return await _read(http, request, limit=limit, context=context, what=what)
    assert scope.cancelled_caught
    raise DeadlineExceeded(deadline, context=context)


async def _read(
    http: httpx.AsyncClient,
    request: httpx.Request,
    *,
    limit: int,
    context: RequestContext,
    what: str,
) -> httpx.Response:
    response = await http.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit and not _encoded(response):
            raise _too_large(what, f"{declared} bytes announced", limit, context)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise _too_large(what, f"more than {limit} bytes", limit, context)
            chunks.append(chunk)
    finally:
        await response.aclose()
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=request,
        extensions=response.extensions,
    )


def _too_large(what: str, detail: str, limit: int, context: RequestContext) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"{what} too large ({detail}; limit {limit} bytes)", limit=limit, context=context
    )


def _encoded(response: httpx.Response) -> bool:
    """Whether the body is compressed (its Content-Length is not its decoded size)."""
    return response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
