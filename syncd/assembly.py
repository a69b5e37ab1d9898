"""Assemble a running syncd from a config: ledger, clients, sources, channels, engine.

`syncd run`, `syncd once` and the tests build the same object graph here so
they cannot drift apart. Nothing in this module performs a request; it only
opens the ledger and constructs the adapters.

One :class:`~syncd.clock.Clock` goes to everything: the ledger is opened
with it (its timestamps and feed ages), and the clients, sources, channels
and engine get the same one, so time and chance have a single source that a
test or the simulation replaces whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from syncd.channels.base import Channel
from syncd.clock import Clock
from syncd.config import Config
from syncd.engine import Engine, FeedInfo
from syncd.http.auth import OAuthClientCredentials, PasswordGrant
from syncd.integrations import build_channels, build_clients, build_sources, order_feed_channel
from syncd.ledger.store import Ledger
from syncd.safety import SafetyPolicy
from syncd.sources.base import Source
from syncd.wiring import ApiClients


@dataclass(slots=True)
class Assembly:
    config: Config
    ledger: Ledger
    clients: ApiClients
    sources: list[Source]
    channels: dict[str, Channel]
    engine: Engine
    clock: Clock
    """The one clock the ledger, clients, sources, channels and engine share."""
    policies: dict[str, SafetyPolicy] = field(default_factory=dict)

    async def aclose(self) -> None:
        """Close adapters and clients; the ledger stays open (the caller owns it)."""
        for source in self.sources:
            await source.aclose()
        for channel in self.channels.values():
            await channel.aclose()
        await self.clients.aclose()


def safety_policies(config: Config) -> dict[str, SafetyPolicy]:
    return {
        name: SafetyPolicy(
            max_zero_share=section.max_zero_share,
            max_change_share=section.max_change_share,
            min_catalog_for_share_check=section.min_catalog_for_share_check,
            confirm_increase_after_zero=section.confirm_increase_after_zero,
            block_on_stale_source=section.block_on_stale_source,
        )
        for name, section in config.channels.enabled().items()
    }


def feed_infos(sources: list[Source]) -> list[FeedInfo]:
    return [
        FeedInfo(
            name=source.name,
            locations=tuple(source.locations),
            stale_after=source.stale_after,
            # The channel's increases wait for an order feed that belongs to it.
            channel=order_feed_channel(source.name),
            # A channel's order feed two polls behind already means orders may
            # have landed unseen: its increases wait (issue "Channels", fabric).
            overdue_after=min(2 * source.poll_interval, source.stale_after),
        )
        for source in sources
    ]


async def open_ledger(config: Config, clock: Clock) -> Ledger:
    path = Path(config.daemon.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return await Ledger.open(path, clock=clock)


def assemble(
    config: Config,
    ledger: Ledger,
    *,
    clock: Clock,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
) -> Assembly:
    """Build every adapter for ``config`` around an already open ledger.

    ``clock`` must be the one the ledger was opened with: record stamps, feed
    ages and every adapter's time then agree (a fake clock in tests).
    """
    if ledger.clock is not clock:
        raise ValueError("the ledger was opened with another clock than the assembly's")
    clients = build_clients(config, clock=clock, transports=transports)
    for client in clients.all():
        if isinstance(client.auth, OAuthClientCredentials | PasswordGrant):
            # Tokens outlive the process: `syncd once` from a timer reuses them.
            client.auth.use_store(ledger)
    sources = build_sources(config, clients, clock)
    channels = build_channels(config, clients, clock)
    policies = safety_policies(config)
    engine = Engine(
        ledger,
        config.catalog_model(),
        config.channel_rules(),
        channels,
        policies=policies,
        feeds=feed_infos(sources),
        now=clock.now,
    )
    return Assembly(
        config=config,
        ledger=ledger,
        clients=clients,
        sources=sources,
        channels=channels,
        engine=engine,
        clock=clock,
        policies=policies,
    )
