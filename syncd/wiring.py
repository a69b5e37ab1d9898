"""Build the HTTP clients a config needs: one per API, shared by its users.

Ankorstore's catalog, orders, ASTRAL and bulk-stock calls go through the one
Ankorstore client, so they share one token and one rate budget exactly as
the API accounts for them (seed 000 L200-228). A client is only built for an
API that an enabled source or channel uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from syncd.clock import Clock
from syncd.config import Config
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

_USES: dict[str, str] = {
    "activeants": "activeants",
    "astral": "ankorstore",
    "ankorstore_orders": "ankorstore",
    "fabric_orders": "fabric",
    "fashiontrade": "fashiontrade",
}
_CHANNEL_USES: dict[str, str] = {"ankorstore": "ankorstore", "fabric": "fabric"}


@dataclass(slots=True)
class ApiClients:
    ankorstore: ApiClient | None = None
    activeants: ApiClient | None = None
    fabric: ApiClient | None = None
    fashiontrade: ApiClient | None = None

    def all(self) -> list[ApiClient]:
        return [c for c in (self.ankorstore, self.activeants, self.fabric, self.fashiontrade) if c]

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()


def needed_apis(config: Config) -> set[str]:
    """The APIs some enabled source or channel talks to."""
    needed = {_USES[name] for name in config.sources.enabled()}
    needed |= {_CHANNEL_USES[name] for name in config.channels.enabled()}
    order_feeds = {"ankorstore_orders", "fabric_orders", "fashiontrade"} & set(
        config.sources.enabled()
    )
    if order_feeds and config.handover.match == "external_reference":
        # Handover asks Active Ants which channel orders it already holds.
        needed.add("activeants")
    return needed


def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


def build_clients(
    config: Config,
    *,
    clock: Clock,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> ApiClients:
    """One client per needed API; ``transports`` lets tests swap in MockTransport."""
    transports = transports or {}
    needed = needed_apis(config)
    clients = ApiClients()
    apis = config.apis
    if "ankorstore" in needed and apis.ankorstore is not None:
        clients.ankorstore = ankorstore_client(
            base_url=apis.ankorstore.base_url,
            client_id=apis.ankorstore.client_id,
            client_secret=apis.ankorstore.secret("client_secret"),
            clock=clock,
            windows=ankorstore_windows(
                per_minute=apis.ankorstore.requests_per_minute,
                per_hour=apis.ankorstore.requests_per_hour,
                per_day=apis.ankorstore.requests_per_day,
            ),
            token_windows=token_budget(apis.ankorstore.token_requests_per_hour),
            transport=transports.get("ankorstore"),
            timeout=_timeout(apis.ankorstore.timeout),
            deadline=apis.ankorstore.deadline,
            max_body_bytes=apis.ankorstore.max_response_bytes,
        )
    if "activeants" in needed and apis.activeants is not None:
        clients.activeants = activeants_client(
            base_url=apis.activeants.base_url,
            username=apis.activeants.username,
            password=apis.activeants.secret("password"),
            clock=clock,
            windows=(Window(apis.activeants.requests_per_minute, 60.0),),
            transport=transports.get("activeants"),
            timeout=httpx.Timeout(
                apis.activeants.timeout, read=max(apis.activeants.timeout, 120.0)
            ),
            deadline=apis.activeants.deadline,
            max_body_bytes=apis.activeants.max_response_bytes,
        )
    if "fabric" in needed and apis.fabric is not None:
        clients.fabric = fabric_client(
            base_url=apis.fabric.base_url,
            token_url=apis.fabric.auth_url,
            client_id=apis.fabric.client_id,
            client_secret=apis.fabric.secret("client_secret"),
            clock=clock,
            windows=(Window(apis.fabric.requests_per_minute, 60.0),),
            transport=transports.get("fabric"),
            timeout=_timeout(apis.fabric.timeout),
            deadline=apis.fabric.deadline,
            max_body_bytes=apis.fabric.max_response_bytes,
        )
    if "fashiontrade" in needed and apis.fashiontrade is not None:
        clients.fashiontrade = fashiontrade_client(
            base_url=apis.fashiontrade.base_url,
            api_key=apis.fashiontrade.secret("api_key"),
            clock=clock,
            windows=(Window(apis.fashiontrade.requests_per_minute, 60.0),),
            transport=transports.get("fashiontrade"),
            timeout=_timeout(apis.fashiontrade.timeout),
            deadline=apis.fashiontrade.deadline,
            max_body_bytes=apis.fashiontrade.max_response_bytes,
        )
    return clients
