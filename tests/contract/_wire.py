"""What crosses the wire between one API client and its backend, timed on the client's clock.

:class:`Wire` wraps the transport an :class:`~syncd.http.client.ApiClient` is
built with -- ``httpx.MockTransport`` around an in-memory fake, or a real
loopback transport to a sandbox simulator -- so the same contract clause
reads the same record from either backend: which requests were sent, when
(on the injected clock, so a 429's wait is measured without sleeping), and
what status came back. A clause that needs one item of a real answer spoiled
(:meth:`Wire.spoil_next`) rewrites that answer's JSON on its way to the client,
so the backend itself never has to serve broken documents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from syncd.clock import Clock

Spoiler = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Exchange:
    sent_at: float
    """``clock.monotonic()`` when the request left."""
    method: str
    path: str
    params: httpx.QueryParams
    status: int
    body: bytes
    """The request's body."""
    request: httpx.Request
    response: httpx.Response
    """As the client received it (read only for in-memory fakes: a loopback answer's
    body belongs to the client)."""


class Wire(httpx.AsyncBaseTransport):
    """A transport that records every exchange and can spoil chosen answers."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.exchanges: list[Exchange] = []
        self._spoilers: list[tuple[str, Spoiler]] = []

    def spoil_next(self, path_prefix: str, spoil: Spoiler) -> None:
        """Rewrite the JSON of the next 200 answer under ``path_prefix`` with ``spoil``."""
        self._spoilers.append((path_prefix, spoil))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent_at = self.clock.monotonic()
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = b""
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        spoiler = next((s for s in self._spoilers if path.startswith(s[0])), None)
        if spoiler is not None and response.status_code == 200:
            self._spoilers.remove(spoiler)
            await response.aread()
            document = spoiler[1](json.loads(response.content))
            headers = [
                (k, v)
                for k, v in response.headers.items()
                if k.lower() not in {"content-length", "content-encoding", "transfer-encoding"}
            ]
            response = httpx.Response(
                200, headers=headers, content=json.dumps(document).encode(), request=request
            )
        self.exchanges.append(
            Exchange(
                sent_at,
                request.method,
                path,
                request.url.params,
                response.status_code,
                body,
                request,
                response,
            )
        )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    # --- reading the record ----------------------------------------------------------

    def mark(self) -> int:
        """A position to count from (:meth:`since`)."""
        return len(self.exchanges)

    def since(self, mark: int, path_prefix: str = "", method: str | None = None) -> list[Exchange]:
        return [
            e
            for e in self.exchanges[mark:]
            if e.path.startswith(path_prefix) and (method is None or e.method == method)
        ]
