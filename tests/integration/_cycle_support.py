"""Shared by the whole-cycle integration tests: sandbox configs, simulator views, traffic capture.

Every view reads the simulators' own state -- what a retailer on the
channel would see -- or the ledger file syncd wrote, never syncd's memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from syncd.assembly import Assembly, assemble
from syncd.config import load_config
from syncd.engine import ChannelCycle
from syncd.ledger.store import Ledger
from syncd.model import OutboxRow
from syncd.once import push_all, read_sources
from syncd.sandbox.catalog import SandboxCatalog
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import set_channel_keys

RELAXED = "max_zero_share = 1.0\nmax_change_share = 1.0\n"
"""The sandbox starts far from what syncd computes: without this a first publication is held."""
OPERATIONS = "POST /api/v1/operations"
CHANNELS = ("ankorstore", "fabric")


def sandbox_config(
    world: SandboxWorld,
    directory: Path,
    *,
    relaxed: bool = True,
    channel_keys: str = "",
    per_channel: Mapping[str, str] | None = None,
    **options: Any,
) -> Path:
    """The sandbox's own config, optionally without share holds and with extra channel keys.

    ``channel_keys`` go into every ``[channels.*]`` section, ``per_channel``
    into the named one only.
    """
    config = world.write_config(directory, **options)
    for channel in CHANNELS:
        keys = (RELAXED if relaxed else "") + channel_keys + (per_channel or {}).get(channel, "")
        if keys:
            set_channel_keys(config, channel, keys)
    return config


def only_some_on_fabric(catalog: SandboxCatalog, count: int) -> SandboxCatalog:
    """Publish only the first ``count`` singles on fabric (one request per variant there)."""
    for index, variant in enumerate(catalog.variants):
        if index >= count:
            variant.channels = variant.channels - {"fabric"} or frozenset({"ankorstore"})
    for bundle in catalog.bundles:
        bundle.channels = bundle.channels - {"fabric"} or frozenset({"ankorstore"})
    return catalog


def run_once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``syncd once`` as a user runs it: a separate process, its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", "once", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- what the channels show ------------------------------------------------------


def whole_packs(units: int, pack: int) -> int:
    return units - units % pack


def ankorstore_available(world: SandboxWorld) -> dict[str, int | None]:
    """``availableQuantity`` per published SKU: what a retailer can order now."""
    return {
        sku: world.ankorstore.listing(sku).available_quantity
        for sku in world.catalog.published("ankorstore")
    }


def fabric_inventory(world: SandboxWorld) -> dict[str, int]:
    return {sku: world.fabric.inventory(sku) for sku in world.catalog.published("fabric")}


def shown(world: SandboxWorld) -> dict[str, dict[str, int | None]]:
    return {"ankorstore": ankorstore_available(world), "fabric": dict(fabric_inventory(world))}


def write_counters(world: SandboxWorld) -> dict[str, int]:
    """Every stock write either simulator accepted, and every write request it saw."""
    fabric = world.fabric.counters.snapshot()
    return {
        "ankorstore_writes": world.ankorstore.counters.write_requests,
        "ankorstore_updated": world.ankorstore.counters.updated_variants,
        "ankorstore_write_requests": world.ankorstore.counters.requests.get(OPERATIONS, 0),
        "fabric_writes": sum(fabric["writes"].values()),
        "fabric_write_requests": sum(
            count for key, count in fabric["requests"].items() if key.startswith("PATCH ")
        ),
    }


async def outbox(database: Path) -> dict[str, dict[str, OutboxRow]]:
    """The outbox of every channel, read from the ledger file."""
    async with await Ledger.open(database) as ledger:
        return {c: {r.sku: r for r in await ledger.outbox_rows(c)} for c in CHANNELS}


def matches_outbox(world: SandboxWorld, rows: dict[str, dict[str, OutboxRow]]) -> dict[str, Any]:
    """(channel, SKU) -> (shown, desired) wherever a channel shows other than the outbox says."""
    wrong: dict[str, Any] = {}
    for sku, row in rows["ankorstore"].items():
        listing = world.ankorstore.listing(sku)
        if listing.available_quantity != whole_packs(row.desired, listing.unit_multiplier):
            wrong[f"ankorstore/{sku}"] = (listing.available_quantity, row.desired)
    for sku, row in rows["fabric"].items():
        if world.fabric.inventory(sku) != row.desired:
            wrong[f"fabric/{sku}"] = (world.fabric.inventory(sku), row.desired)
    return wrong


# --- traffic ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    method: str
    path: str
    body: Any


@dataclass
class Recording(httpx.AsyncBaseTransport):
    """A real loopback transport that keeps every stock write the server accepted, in order.

    ``before_write`` runs before a write is forwarded: tests use it to let
    "the rest of the daemon" act while a push is in flight.
    """

    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    writes: list[Write] = field(default_factory=list)
    before_write: Callable[[httpx.Request], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_write = request.method in ("POST", "PATCH", "PUT") and "token" not in request.url.path
        if is_write and self.before_write is not None:
            await self.before_write(request)
        response = await self.inner.handle_async_request(request)
        if is_write and 200 <= response.status_code < 300:
            body = json.loads(request.content) if request.content else None
            self.writes.append(Write(request.method, request.url.path, body))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def ankorstore_ops(world: SandboxWorld, recording: Recording) -> list[list[tuple[str, int]]]:
    """(SKU, stockQuantity) per accepted ``POST /api/v1/operations``, in the order sent."""
    sku_by_id = {listing.id: listing.sku for listing in world.ankorstore.ordered_listings()}
    return [
        [
            (sku_by_id[op["data"]["id"]], op["data"]["attributes"]["stockQuantity"])
            for op in write.body["atomic:operations"]
        ]
        for write in recording.writes
        if write.path == "/api/v1/operations"
    ]


def fabric_writes(world: SandboxWorld, recording: Recording) -> list[tuple[str, int]]:
    """(SKU, inventory) per accepted fabric inventory write, in the order sent."""
    found = []
    for write in recording.writes:
        if "/inventory/" in write.path:
            inventory_id = int(write.path.rstrip("/").rsplit("/", 1)[1])
            found.append((world.fabric.items[inventory_id].brand_sku, write.body["inventory"]))
    return found


# --- an in-process syncd ------------------------------------------------------------------


@dataclass
class Rig:
    world: SandboxWorld
    assembly: Assembly
    ledger: Ledger
    traffic: dict[str, Recording]

    async def cycle(self, *, push: bool = True) -> dict[str, ChannelCycle]:
        """What `syncd once` does: read every source, recompute, push every channel.

        The simulators' clock first moves past the current millisecond: Active Ants'
        incremental read stops at "now" cut to the millisecond, excluding it, so a
        change the test made an instant ago would otherwise belong to the next read.
        """
        self.world.clock.advance(0.002)
        await read_sources(self.assembly)
        await self.assembly.engine.recompute()
        return await push_all(self.assembly, confirm=False) if push else {}

    async def rows(self, channel: str) -> dict[str, OutboxRow]:
        return {row.sku: row for row in await self.ledger.outbox_rows(channel)}

    async def desired(self) -> dict[str, dict[str, int]]:
        """Channel -> SKU -> the outbox's desired value."""
        return {c: {s: r.desired for s, r in (await self.rows(c)).items()} for c in CHANNELS}

    async def outbox(self) -> dict[str, dict[str, OutboxRow]]:
        return {c: await self.rows(c) for c in CHANNELS}

    async def settled(self) -> bool:
        """Every channel has values and has acknowledged (or parked) all of them."""
        published = all([await self.ledger.outbox_rows(c) for c in CHANNELS])
        return published and not any([await self.ledger.pending(c) for c in CHANNELS])

    def source(self, name: str) -> Any:
        return next(s for s in self.assembly.sources if s.name == name)


@asynccontextmanager
async def rig(world: SandboxWorld, directory: Path, **config: Any) -> AsyncIterator[Rig]:
    """syncd assembled in this process against the running world, traffic recorded."""
    settings = load_config(sandbox_config(world, directory, **config))
    ledger = await Ledger.open(directory / "ledger.db")
    traffic = {"ankorstore": Recording(), "fabric": Recording()}
    assembly = assemble(settings, ledger, clock=ledger.clock, transports=dict(traffic))
    try:
        yield Rig(world, assembly, ledger, traffic)
    finally:
        await assembly.aclose()
        await ledger.close()


def single_skus(
    world: SandboxWorld, channel: str, *, count: int, minimum: int = 0, pack: int | None = 1
) -> list[str]:
    """Singles stocked only at Active Ants, published on ``channel``, with enough stock."""
    found = [
        v.sku
        for v in world.catalog.variants
        if channel in v.channels
        and v.at_activeants
        and not v.at_astral
        and (pack is None or v.pack_size == pack)
        and world.activeants.product(v.sku).available >= minimum
    ]
    if len(found) < count:
        raise AssertionError(f"the sandbox catalog has only {len(found)} such SKUs, not {count}")
    return found[:count]
