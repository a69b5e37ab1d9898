"""A sandbox rig for the order sources: every simulator on loopback, a real SQLite ledger.

The sources are built exactly as the daemon builds them (the sandbox's own
config, shared API clients, :func:`build_order_sources`), so what the tests
see is what `syncd run` would record. Leaving the rig checks the ledger's
invariants, so every test ends on a sound ledger.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from syncd.clock import SystemClock
from syncd.config import Config, load_config
from syncd.http.client import ApiClient
from syncd.integrations import build_clients, build_order_sources
from syncd.ledger.store import Ledger
from syncd.model import StockStatus
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld
from syncd.sources.base import PollResult, Source
from syncd.wiring import ApiClients

Line = tuple[str, str, str]
"""(channel, order_ref, sku)."""


@dataclass
class Rig:
    world: SandboxWorld
    config: Config
    clients: ApiClients
    sources: dict[str, Source]
    ledger: Ledger

    async def poll(self, *names: str) -> dict[str, PollResult]:
        """Poll the named sources (all, by default) once each, in order."""
        return {name: await self.sources[name].poll(self.ledger) for name in names or self.sources}

    async def lines(self) -> dict[Line, int]:
        """Every open reservation line the ledger holds."""
        return {
            (r.channel, r.order_ref, r.sku): r.quantity
            for r in await self.ledger.open_reservations()
        }

    async def reserved(self) -> dict[str, dict[str, int]]:
        """The ``reserved`` balance per channel pool and SKU (what allocation subtracts)."""
        pools: dict[str, dict[str, int]] = {}
        for account, quantity in (await self.ledger.balances()).items():
            if account.status is StockStatus.RESERVED and account.location.startswith("reserved:"):
                channel = account.location.removeprefix("reserved:")
                pools.setdefault(channel, {})[account.sku] = quantity
        return pools

    async def warehouse_read(self) -> None:
        """What a successful Active Ants stock poll leaves behind: a fresh feed success."""
        await self.ledger.mark_feed("activeants", success_at=datetime.now(UTC))

    def skus(self, channel: str, *, count: int, pack: bool | None = None) -> list[str]:
        """Variants stocked at Active Ants and sold on ``channel`` (pack: pack-sold or not)."""
        found = [
            v.sku
            for v in self.world.catalog.variants
            if v.at_activeants
            and (channel == "fashiontrade" or channel in v.channels)
            and (pack is None or (v.pack_size > 1) == pack)
        ]
        if len(found) < count:
            raise AssertionError(f"the sandbox catalog has too few {channel} variants")
        return found[:count]


def expected_lines(channel: str, ref: str, lines: dict[str, int]) -> dict[Line, int]:
    return {(channel, ref, sku): quantity for sku, quantity in lines.items()}


def totals(*groups: dict[Line, int]) -> dict[str, dict[str, int]]:
    """The reserved balances that a set of open lines must produce."""
    pools: dict[str, dict[str, int]] = {}
    for group in groups:
        for (channel, _, sku), quantity in group.items():
            pool = pools.setdefault(channel, {})
            pool[sku] = pool.get(sku, 0) + quantity
    return pools


@asynccontextmanager
async def order_rig(
    tmp_path: Path, *, variants: int = 40, seed: int = 11, **catalog: Any
) -> AsyncIterator[Rig]:
    sandbox_catalog = generate_catalog(
        variants, seed=seed, channel_share=catalog.pop("channel_share", 0.9), **catalog
    )
    world = SandboxWorld.create(catalog=sandbox_catalog)
    async with world.running():
        config = load_config(world.write_config(tmp_path / "config"))
        clock = SystemClock()
        clients = build_clients(config, clock=clock)
        try:
            sources = {s.name: s for s in build_order_sources(config, clients, clock)}
            async with await Ledger.open(tmp_path / "ledger.db") as ledger:
                yield Rig(world, config, clients, sources, ledger)
                # Every test ends on a sound ledger (reached only when the test passed).
                assert await ledger.check_invariants() == []
        finally:
            await clients.aclose()


def after_first_page(client: ApiClient, path: str, action: Callable[[], object]) -> None:
    """Run ``action`` once, right after the first response for ``path`` (mid-pagination)."""
    fired = False

    async def hook(response: httpx.Response) -> None:
        nonlocal fired
        if not fired and response.request.url.path == path and response.status_code == 200:
            fired = True
            action()

    client.http.event_hooks["response"].append(hook)
