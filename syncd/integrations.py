"""Every API, source and channel syncd talks to, each described once.

A description names its config section, how it is built and, for an order
feed, the channel it belongs to. Everything that used to be written out per
integration is derived from :data:`APIS`, :data:`SOURCES` and
:data:`CHANNELS`: which clients are built (:func:`build_clients`), which
sources and channels (:func:`build_sources`, :func:`build_channels`), the
channel whose increases wait for an order feed (:func:`order_feed_channel`)
and the client a channel pushes through (:func:`channel_client`).

The API a source or channel uses is declared on its section class
(``SourceSection.API``, ``ChannelSection.API``): the config checks that report
a missing ``[apis.*]`` section and resolve only the secrets in use sit below
this module and read it there (:func:`syncd.config.checks.needed_apis`).

Adding an integration is: its section class and its key in ``[apis]``,
``[sources]`` or ``[channels]`` (``syncd.config``), its adapter and builder,
and one description here. ``tests/unit/test_integrations.py`` checks that the
descriptions and the config's keys match one for one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from syncd.channels.base import Channel
from syncd.channels.build import build_ankorstore, build_fabric
from syncd.clock import Clock
from syncd.config import Config
from syncd.config.apis import (
    ActiveAntsApiSection,
    AnkorstoreApiSection,
    ApiSection,
    FabricApiSection,
    FashionTradeApiSection,
)
from syncd.config.checks import needed_apis
from syncd.config.sections import (
    ActiveAntsSourceSection,
    AnkorstoreChannelSection,
    AnkorstoreOrdersSection,
    AstralSourceSection,
    ChannelSection,
    FabricChannelSection,
    FabricOrdersSection,
    FashionTradeSourceSection,
    OrderSourceSection,
    SourceSection,
)
from syncd.http.client import ApiClient
from syncd.sources.base import Source
from syncd.sources.build import (
    build_activeants,
    build_ankorstore_orders,
    build_astral,
    build_fabric_orders,
    build_fashiontrade,
    build_handover,
)
from syncd.wiring import (
    ApiClients,
    BuildContext,
    activeants_api_client,
    ankorstore_api_client,
    fabric_api_client,
    fashiontrade_api_client,
)

A = TypeVar("A", bound=ApiSection)
S = TypeVar("S", bound=SourceSection)
C = TypeVar("C", bound=ChannelSection)


@dataclass(frozen=True, slots=True)
class ApiDescription(Generic[A]):
    """A remote API: its ``[apis.<name>]`` section and the client preset built from it."""

    name: str
    section: type[A]
    client: Callable[[A, Clock, httpx.AsyncBaseTransport | None], ApiClient]
    """The section's values on the API's preset (:mod:`syncd.http.presets`)."""


@dataclass(frozen=True, slots=True)
class SourceDescription(Generic[S]):
    """A source: its ``[sources.<name>]`` section, its builder, its order feed's channel."""

    name: str
    section: type[S]
    build: Callable[[ApiClient, S, BuildContext], Source]
    channel: str | None = None
    """For an order feed, the channel whose own orders it reads: that channel's
    increases wait while it is overdue. None for stock and for orders of a
    marketplace syncd does not publish to (FashionTrade)."""

    @property
    def api(self) -> str:
        return self.section.API

    @property
    def order_feed(self) -> bool:
        return issubclass(self.section, OrderSourceSection)


@dataclass(frozen=True, slots=True)
class ChannelDescription(Generic[C]):
    """A channel: its ``[channels.<name>]`` section and its builder."""

    name: str
    section: type[C]
    build: Callable[[ApiClient, C, BuildContext], Channel]

    @property
    def api(self) -> str:
        return self.section.API

    @property
    def order_feeds(self) -> tuple[str, ...]:
        """The order feeds that belong to this channel (see ``SourceDescription.channel``)."""
        return tuple(source.name for source in SOURCES if source.channel == self.name)


APIS: tuple[ApiDescription[Any], ...] = (
    ApiDescription("ankorstore", AnkorstoreApiSection, ankorstore_api_client),
    ApiDescription("activeants", ActiveAntsApiSection, activeants_api_client),
    ApiDescription("fabric", FabricApiSection, fabric_api_client),
    ApiDescription("fashiontrade", FashionTradeApiSection, fashiontrade_api_client),
)

SOURCES: tuple[SourceDescription[Any], ...] = (
    # Stock first: `syncd once` books the warehouse figures before the
    # reservations that are netted against them.
    SourceDescription("activeants", ActiveAntsSourceSection, build_activeants),
    SourceDescription("astral", AstralSourceSection, build_astral),
    SourceDescription(
        "ankorstore_orders", AnkorstoreOrdersSection, build_ankorstore_orders, "ankorstore"
    ),
    SourceDescription("fabric_orders", FabricOrdersSection, build_fabric_orders, "fabric"),
    SourceDescription("fashiontrade", FashionTradeSourceSection, build_fashiontrade),
)

CHANNELS: tuple[ChannelDescription[Any], ...] = (
    ChannelDescription("ankorstore", AnkorstoreChannelSection, build_ankorstore),
    ChannelDescription("fabric", FabricChannelSection, build_fabric),
)

_API = {api.name: api for api in APIS}
_SOURCE = {source.name: source for source in SOURCES}
_CHANNEL = {channel.name: channel for channel in CHANNELS}


def order_feed_channel(feed: str) -> str | None:
    """The channel an order feed belongs to (None: a stock source, or no channel of syncd's)."""
    source = _SOURCE.get(feed)
    return source.channel if source is not None else None


def channel_client(clients: ApiClients, channel: str) -> ApiClient | None:
    """The API client ``channel`` pushes through (None: not built, or not a described channel)."""
    described = _CHANNEL.get(channel)
    return clients.get(described.api) if described is not None else None


def build_clients(
    config: Config,
    *,
    clock: Clock,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> ApiClients:
    """One client per API an enabled integration uses; ``transports`` lets tests swap in MockTransport."""
    transports = transports or {}
    present = config.apis.present()
    clients: dict[str, ApiClient] = {}
    for api in needed_apis(config):
        section = present.get(api)
        if section is not None:
            clients[api] = _API[api].client(section, clock, transports.get(api))
    return ApiClients(clients)


def build_stock_sources(config: Config, clients: ApiClients, clock: Clock) -> list[Source]:
    """One source per enabled stock section, in :data:`SOURCES` order."""
    ctx = BuildContext(config, config.catalog_model(), clock, clients)
    return [_build_source(source, config, ctx) for source in _enabled_sources(config, False)]


def build_order_sources(config: Config, clients: ApiClients, clock: Clock) -> list[Source]:
    """One source per enabled order feed, all sharing one handover lookup."""
    enabled = _enabled_sources(config, True)
    if not enabled:
        return []
    handover = build_handover(config, clients, clock)
    ctx = BuildContext(config, config.catalog_model(), clock, clients, handover)
    return [_build_source(source, config, ctx) for source in enabled]


def build_sources(config: Config, clients: ApiClients, clock: Clock) -> list[Source]:
    """Every enabled source: stock first, then the order feeds."""
    return [
        *build_stock_sources(config, clients, clock),
        *build_order_sources(config, clients, clock),
    ]


def build_channels(config: Config, clients: ApiClients, clock: Clock) -> dict[str, Channel]:
    """One channel per enabled ``[channels.*]`` section, in :data:`CHANNELS` order.

    Raises ``ValueError`` when a channel's API has no client (its ``[apis.*]``
    section is missing): config checks report that earlier, so reaching it
    here is a wiring bug, not something to run without.
    """
    ctx = BuildContext(config, config.catalog_model(), clock, clients)
    enabled = config.channels.enabled()
    channels: dict[str, Channel] = {}
    for channel in CHANNELS:
        section = enabled.get(channel.name)
        if section is None:
            continue
        client = clients.require(channel.api, f"channel {channel.name!r}")
        channels[channel.name] = channel.build(client, _narrow(section, channel.section), ctx)
    return channels


def _enabled_sources(config: Config, order_feeds: bool) -> list[SourceDescription[Any]]:
    enabled = config.sources.enabled()
    return [s for s in SOURCES if s.name in enabled and s.order_feed == order_feeds]


def _build_source(source: SourceDescription[Any], config: Config, ctx: BuildContext) -> Source:
    """Raises ``ValueError`` when the source's API has no client (see :func:`build_channels`)."""
    section = _narrow(config.sources.enabled()[source.name], source.section)
    client = ctx.clients.require(source.api, f"source {source.name!r}")
    return source.build(client, section, ctx)


_T = TypeVar("_T")


def _narrow(section: object, kind: type[_T]) -> _T:
    # The config model's field for a key has the described class as its type
    # (tests/unit/test_integrations.py); this only tells the type checker so.
    if not isinstance(section, kind):  # pragma: no cover - guarded by that test
        raise TypeError(f"{type(section).__name__} is not a {kind.__name__}")
    return section
