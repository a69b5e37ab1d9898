"""The integration descriptions are the one place each API, source and channel is named.

Every table syncd derives from them -- the config's keys, the clients built,
the sources and channels built, the channel an order feed belongs to, the
client a channel pushes through -- must cover every description and nothing
else, so adding a description is all it takes to wire an integration in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import pytest
from structlog.testing import capture_logs

from syncd.assembly import feed_infos
from syncd.clock import FakeClock
from syncd.config import Config, load_config
from syncd.config.apis import ApisSection
from syncd.config.catalog import ChannelName
from syncd.config.checks import needed_apis
from syncd.config.fields import Section
from syncd.config.sections import (
    CHANNEL_NAMES,
    ChannelsSection,
    ReferenceTemplatesSection,
    SourcesSection,
)
from syncd.integrations import (
    APIS,
    CHANNELS,
    SOURCES,
    ChannelDescription,
    SourceDescription,
    build_channels,
    build_clients,
    build_order_sources,
    build_sources,
    channel_client,
    order_feed_channel,
)
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import APIS as SANDBOX_APIS
from syncd.sandbox.world import SandboxWorld
from syncd.wiring import ApiClients

pytestmark = pytest.mark.anyio


def _field_class(table: type[Section], key: str) -> type:
    """The section class a ``[table.key]`` is validated as (``X | None`` -> ``X``)."""
    args = get_args(table.model_fields[key].annotation)
    assert type(None) in args, f"[{key}] must be optional: an absent section is disabled"
    [section] = [arg for arg in args if arg is not type(None)]
    assert isinstance(section, type)
    return section


@pytest.mark.parametrize(
    ("table", "descriptions"),
    [(ApisSection, APIS), (SourcesSection, SOURCES), (ChannelsSection, CHANNELS)],
    ids=["apis", "sources", "channels"],
)
def test_each_config_key_is_one_description_with_its_section_class(
    table: type[Section], descriptions: tuple[Any, ...]
) -> None:
    assert [d.name for d in descriptions] == list(table.model_fields)
    for description in descriptions:
        assert _field_class(table, description.name) is description.section


def test_every_source_and_channel_uses_a_described_api() -> None:
    apis = {api.name for api in APIS}
    users: dict[str, list[str]] = {api: [] for api in apis}
    integrations: list[SourceDescription[Any] | ChannelDescription[Any]] = [*SOURCES, *CHANNELS]
    for integration in integrations:
        assert integration.api in apis, integration.name
        users[integration.api].append(integration.name)
    # An API no integration uses would be a client nobody asks for.
    assert all(users.values()), users


def test_an_order_feed_belongs_to_at_most_one_channel_and_the_channel_knows_it() -> None:
    channels = {channel.name: channel for channel in CHANNELS}
    for source in SOURCES:
        if source.channel is None:
            continue
        assert source.order_feed, f"{source.name} is stock and cannot belong to a channel"
        assert source.channel in channels
        # Increases of a channel wait for its order feeds: the ones on its own API.
        assert channels[source.channel].api == source.api
    for channel in CHANNELS:
        for feed in channel.order_feeds:
            assert order_feed_channel(feed) == channel.name
    every_feed = [feed for channel in CHANNELS for feed in channel.order_feeds]
    assert sorted(every_feed) == sorted(s.name for s in SOURCES if s.channel is not None)
    assert len(every_feed) == len(set(every_feed))
    assert [c.order_feeds for c in CHANNELS] == [("ankorstore_orders",), ("fabric_orders",)]


def test_stock_sources_are_built_before_order_feeds() -> None:
    kinds = [source.order_feed for source in SOURCES]
    assert kinds == sorted(kinds), "a stock source after an order feed"
    assert any(kinds)
    assert not all(kinds)


def test_the_catalog_channel_column_accepts_exactly_the_described_channels() -> None:
    names = {channel.name for channel in CHANNELS}
    assert set(get_args(ChannelName)) == names
    assert names == CHANNEL_NAMES


def _sandbox_config(tmp_path: Path) -> Config:
    """Every API, source and channel enabled; nothing listens on the ports (nothing is sent)."""
    world = SandboxWorld.create(catalog=generate_catalog(10, seed=3))
    world.urls = {api: f"http://127.0.0.1:9/{api}" for api in SANDBOX_APIS}
    return load_config(world.write_config(tmp_path))


def _only(config: Config, *, sources: tuple[str, ...], channels: tuple[str, ...]) -> Config:
    """``config`` with every other source and channel section removed."""
    kept_sources = {name: getattr(config.sources, name) for name in sources}
    kept_channels = {name: getattr(config.channels, name) for name in channels}
    return config.model_copy(
        update={
            "sources": SourcesSection.model_validate(
                {name: section.model_dump() for name, section in kept_sources.items()}
            ),
            "channels": ChannelsSection.model_validate(
                {name: section.model_dump() for name, section in kept_channels.items()}
            ),
        }
    )


@asynccontextmanager
async def _clients(config: Config) -> AsyncIterator[ApiClients]:
    clients = build_clients(config, clock=FakeClock())
    try:
        yield clients
    finally:
        await clients.aclose()


async def test_everything_described_is_built_from_a_config_that_enables_it(tmp_path: Path) -> None:
    config = _sandbox_config(tmp_path)
    clock = FakeClock()
    async with _clients(config) as clients:
        assert [client.name for client in clients.all()] == [api.name for api in APIS]
        sources = build_sources(config, clients, clock)
        channels = build_channels(config, clients, clock)
        assert [source.name for source in sources] == [source.name for source in SOURCES]
        assert list(channels) == [channel.name for channel in CHANNELS]
        for channel in CHANNELS:
            assert channel_client(clients, channel.name) is clients[channel.api]
    # The channel a feed belongs to is the one the engine holds increases back for.
    assert {feed.name: feed.channel for feed in feed_infos(sources)} == {
        source.name: source.channel for source in SOURCES
    }
    for source, built in zip(SOURCES, sources, strict=True):
        if not source.order_feed:
            continue
        # The marketplace its reservations are recorded under has a handover template...
        marketplace = vars(type(built))["channel"]
        assert marketplace in ReferenceTemplatesSection.model_fields
        if source.channel is not None:
            # ...and is the feed's channel, which adds its own open orders back.
            assert marketplace == source.channel


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
async def test_an_enabled_source_gets_exactly_the_client_of_its_api(
    tmp_path: Path, source: Any
) -> None:
    config = _only(_sandbox_config(tmp_path), sources=(source.name,), channels=())
    # The sandbox config asks for the handover, which reads Active Ants for order feeds.
    expected = {source.api} | ({config.handover.API} if source.order_feed else set())
    assert set(needed_apis(config)) == expected
    async with _clients(config) as clients:
        assert {client.name for client in clients.all()} == expected
        built = build_sources(config, clients, FakeClock())
    assert [s.name for s in built] == [source.name]


@pytest.mark.parametrize("channel", CHANNELS, ids=lambda c: c.name)
async def test_an_enabled_channel_gets_exactly_the_client_of_its_api(
    tmp_path: Path, channel: Any
) -> None:
    config = _only(_sandbox_config(tmp_path), sources=(), channels=(channel.name,))
    assert needed_apis(config) == {channel.api: [f"channels.{channel.name}"]}
    async with _clients(config) as clients:
        assert [client.name for client in clients.all()] == [channel.api]
        assert list(build_channels(config, clients, FakeClock())) == [channel.name]
        assert channel_client(clients, channel.name) is clients[channel.api]


def test_a_channel_that_is_not_described_has_no_client() -> None:
    assert channel_client(ApiClients(), "ankorstore") is None
    assert channel_client(ApiClients(), "shop") is None


HANDOVER_ONLY = """
[apis.ankorstore]
client_id = "c"
client_secret_file = "./secret"

[apis.fabric]
auth_url = "https://fabric.test/auth/token/"
client_id = "c"
client_secret_file = "./secret"
brand_id = "510"

[sources.astral]

[sources.fabric_orders]
fulfilled_from = "astral:0f1e"

[handover]
match = "external_reference"

[channels.fabric]
locations = ["astral:*"]

[[catalog.variants]]
sku = "TEE"
fabric_sku = "F-TEE"
ankorstore_variant_id = "v-1"
"""
"""Active Ants is not a stock source here: only the handover would read it."""

ACTIVEANTS = """
[apis.activeants]
username = "u"
password_file = "./secret"
"""


def _handover_config(tmp_path: Path, extra: str = "") -> Config:
    (tmp_path / "secret").write_text("s\n", encoding="utf-8")
    path = tmp_path / "syncd.toml"
    path.write_text(HANDOVER_ONLY + extra, encoding="utf-8")
    return load_config(path)


async def test_the_handover_reads_active_ants_without_a_warehouse_source(tmp_path: Path) -> None:
    """[apis.activeants] used by the handover alone: its secret is resolved, the lookup built."""
    config = _handover_config(tmp_path, ACTIVEANTS)
    assert needed_apis(config) == {
        "ankorstore": ["sources.astral"],
        "activeants": ["handover"],
        "fabric": ["sources.fabric_orders", "channels.fabric"],
    }
    with capture_logs() as logs:
        async with _clients(config) as clients:
            assert [client.name for client in clients.all()] == [
                "ankorstore",
                "activeants",
                "fabric",
            ]
            [source] = build_order_sources(config, clients, FakeClock())
            assert vars(source)["_handover"] is not None
    assert "handover.disabled" not in [event["event"] for event in logs]


async def test_a_handover_without_active_ants_is_switched_off_not_refused(tmp_path: Path) -> None:
    """Without [apis.activeants] the config loads and the handover is off, with a warning."""
    config = _handover_config(tmp_path)
    assert needed_apis(config)["activeants"] == ["handover"]
    with capture_logs() as logs:
        async with _clients(config) as clients:
            assert [client.name for client in clients.all()] == ["ankorstore", "fabric"]
            [source] = build_order_sources(config, clients, FakeClock())
            assert vars(source)["_handover"] is None
    assert [event["event"] for event in logs] == ["handover.disabled"]
