"""What the integration builders share: the API clients, and a client per ``[apis.*]`` section.

Ankorstore's catalog, orders, ASTRAL and bulk-stock calls go through the one
Ankorstore client, so they share one token and one rate budget exactly as
the API accounts for them (seed 000 L200-228). Which clients are built, and
for whom, is derived from the descriptions in :mod:`syncd.integrations`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict, TypeVar

import httpx

from syncd.clock import Clock
from syncd.config import Config
from syncd.config.apis import (
    ActiveAntsApiSection,
    AnkorstoreApiSection,
    ApiSection,
    FabricApiSection,
    FashionTradeApiSection,
)
from syncd.http.budget import Window
from syncd.http.client import ApiClient
from syncd.http.presets import (
    activeants_client,
    ankorstore_client,
    ankorstore_windows,
    fabric_client,
    fashiontrade_client,
    token_budget,
)
from syncd.model import Catalog

if TYPE_CHECKING:
    from syncd.sources.handover import Handover

A = TypeVar("A", bound=ApiSection)


class ApiClients:
    """The shared clients by API name (``ankorstore``...); only the APIs in use have one.

    Adapters borrow their client; this object closes them all.
    """

    __slots__ = ("_clients",)

    def __init__(
        self, clients: Mapping[str, ApiClient] | None = None, /, **by_api: ApiClient | None
    ) -> None:
        merged = {**(clients or {}), **by_api}
        self._clients = {api: client for api, client in merged.items() if client is not None}

    def get(self, api: str) -> ApiClient | None:
        """The client for ``api``, or None when no enabled integration uses it."""
        return self._clients.get(api)

    def __getitem__(self, api: str) -> ApiClient:
        """The client for ``api``; KeyError when there is none."""
        return self._clients[api]

    def require(self, api: str, user: str) -> ApiClient:
        """The client ``user`` (``source 'astral'``) needs; ValueError when there is none.

        Config checks report a missing ``[apis.*]`` section first, so reaching
        the error is a wiring bug, not something to run without.
        """
        client = self._clients.get(api)
        if client is None:
            raise ValueError(f"{user} needs [apis.{api}]")
        return client

    def all(self) -> list[ApiClient]:
        return list(self._clients.values())

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What every source and channel builder gets besides its client and section."""

    config: Config
    catalog: Catalog
    clock: Clock
    clients: ApiClients
    handover: Handover | None = None
    """The one handover lookup the order feeds share (None: ``match = "none"`` or no client)."""

    def api_section(self, name: str, kind: type[A]) -> A:
        """``[apis.<name>]``, for a builder that needs more of it than its client (ids)."""
        section = self.config.apis.present().get(name)
        if not isinstance(section, kind):
            # Unreachable through build_*: a client exists only where its section does.
            raise ValueError(f"[apis.{name}] is missing")
        return section


class _Bounds(TypedDict):
    """What every ``[apis.*]`` section sets on its client the same way."""

    transport: httpx.AsyncBaseTransport | None
    timeout: httpx.Timeout
    deadline: float
    max_body_bytes: int


def _bounds(
    api: ApiSection, transport: httpx.AsyncBaseTransport | None, timeout: httpx.Timeout
) -> _Bounds:
    return _Bounds(
        transport=transport,
        timeout=timeout,
        deadline=api.deadline,
        max_body_bytes=api.max_response_bytes,
    )


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


def _per_minute(limit: int) -> tuple[Window, ...]:
    return (Window(limit, 60.0),)


def ankorstore_api_client(
    api: AnkorstoreApiSection, clock: Clock, transport: httpx.AsyncBaseTransport | None
) -> ApiClient:
    return ankorstore_client(
        base_url=api.base_url,
        client_id=api.client_id,
        client_secret=api.secret("client_secret"),
        clock=clock,
        windows=ankorstore_windows(
            per_minute=api.requests_per_minute,
            per_hour=api.requests_per_hour,
            per_day=api.requests_per_day,
        ),
        token_windows=token_budget(api.token_requests_per_hour),
        **_bounds(api, transport, _timeout(api.timeout)),
    )


def activeants_api_client(
    api: ActiveAntsApiSection, clock: Clock, transport: httpx.AsyncBaseTransport | None
) -> ApiClient:
    # A full v2/stock/bulk read streams for long (seed 001 L2685): reads wait at least 2 minutes.
    timeout = httpx.Timeout(api.timeout, read=max(api.timeout, 120.0))
    return activeants_client(
        base_url=api.base_url,
        username=api.username,
        password=api.secret("password"),
        clock=clock,
        windows=_per_minute(api.requests_per_minute),
        **_bounds(api, transport, timeout),
    )


def fabric_api_client(
    api: FabricApiSection, clock: Clock, transport: httpx.AsyncBaseTransport | None
) -> ApiClient:
    return fabric_client(
        base_url=api.base_url,
        token_url=api.auth_url,
        client_id=api.client_id,
        client_secret=api.secret("client_secret"),
        clock=clock,
        windows=_per_minute(api.requests_per_minute),
        **_bounds(api, transport, _timeout(api.timeout)),
    )


def fashiontrade_api_client(
    api: FashionTradeApiSection, clock: Clock, transport: httpx.AsyncBaseTransport | None
) -> ApiClient:
    return fashiontrade_client(
        base_url=api.base_url,
        api_key=api.secret("api_key"),
        clock=clock,
        windows=_per_minute(api.requests_per_minute),
        **_bounds(api, transport, _timeout(api.timeout)),
    )
