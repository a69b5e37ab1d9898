"""A sandbox rig for the stock sources: every simulator on loopback, real SQLite ledger files.

The sources are built as the daemon builds them (the sandbox's own config,
the shared API clients, :func:`build_stock_sources`). Their clock is a
:class:`ShiftClock` -- real time that a test can move forward -- so a daily
full read or an hourly reconciliation can be made due without waiting; the
HTTP clients keep the real clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.clock import SystemClock
from syncd.config import Config, load_config
from syncd.integrations import build_clients, build_stock_sources
from syncd.ledger.store import Ledger
from syncd.model import Catalog, CursorUpdate, StockStatus, TransactionDraft, TransactionKind
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.world import SandboxWorld
from syncd.sources.astral_parse import lot_key
from syncd.sources.base import PollResult, Source
from syncd.wiring import ApiClients

Balance = tuple[str, str, str, str]
"""(location, status, sku, lot)."""


class ShiftClock(SystemClock):
    """The real clock, moved forward by :meth:`advance` (never backwards)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def advance(self, seconds: float) -> None:
        self.shift += seconds

    def monotonic(self) -> float:
        return super().monotonic() + self.shift

    def wall(self) -> float:
        return super().wall() + self.shift


@dataclass
class Rig:
    world: SandboxWorld
    config: Config
    clients: ApiClients
    clock: ShiftClock
    catalog: Catalog
    directory: Path

    def source(self, name: str, catalog: Catalog | None = None) -> Source:
        """A fresh source (as after a restart), optionally over another catalog."""
        if catalog is None:
            sources = build_stock_sources(self.config, self.clients, self.clock)
            return next(s for s in sources if s.name == name)
        from syncd.sources.activeants import ActiveAntsStockSource
        from syncd.sources.astral import AstralStockSource

        if name == "activeants":
            assert self.config.sources.activeants
            return ActiveAntsStockSource(
                self.clients["activeants"],
                catalog,
                self.config.sources.activeants,
                clock=self.clock,
            )
        assert self.config.sources.astral
        return AstralStockSource(
            self.clients["ankorstore"], catalog, self.config.sources.astral, clock=self.clock
        )

    @asynccontextmanager
    async def ledger(self, name: str = "ledger.db") -> AsyncIterator[Ledger]:
        """A ledger file in the rig's directory; its invariants are checked on close."""
        async with await Ledger.open(self.directory / name) as ledger:
            yield ledger
            assert await ledger.check_invariants() == []

    # --- simulator truth ------------------------------------------------------------

    def activeants_truth(self) -> dict[str, int]:
        """``availableStock`` per brand SKU the catalog maps to Active Ants (zeros left out)."""
        mapped = {
            v.activeants_sku: v.sku for v in self.catalog.variants.values() if v.activeants_sku
        }
        state = self.world.activeants
        with state.lock:
            return {
                mapped[aa]: p.available
                for aa, p in state.products.items()
                if aa in mapped and p.available != 0
            }

    def astral_truth(self) -> dict[Balance, int]:
        """Every ASTRAL balance but void, in units, as the ledger names it."""
        astral = self.world.ankorstore.astral
        sku_of = {
            v.astral_variant_id: v.sku
            for v in self.catalog.variants.values()
            if v.astral_variant_id
        }
        truth: dict[Balance, int] = {}
        for (location, status, variant_id, lot), batches in astral.balances().items():
            if status == "void" or batches == 0 or variant_id not in sku_of:
                continue
            units = batches * astral.variants[variant_id].unit_multiplier
            key = (
                f"astral:{location}",
                status,
                sku_of[variant_id],
                lot_key(lot[0], lot[1] or None),
            )
            truth[key] = truth.get(key, 0) + units
        return truth


async def activeants_available(ledger: Ledger) -> dict[str, int]:
    return {
        a.sku: q
        for a, q in (await ledger.balances()).items()
        if a.location == "activeants" and a.status is StockStatus.AVAILABLE
    }


async def astral_balances(ledger: Ledger) -> dict[Balance, int]:
    """Every non-void ASTRAL balance the ledger holds."""
    return {
        (a.location, a.status.value, a.sku, a.lot): q
        for a, q in (await ledger.balances()).items()
        if a.location.startswith("astral:") and a.status is not StockStatus.VOID
    }


async def poll_until_caught_up(source: Source, ledger: Ledger, limit: int = 50) -> list[PollResult]:
    results = []
    for _ in range(limit):
        result = await source.poll(ledger)
        results.append(result)
        if result.caught_up:
            return results
    raise AssertionError(f"{source.name} did not catch up in {limit} polls")


async def rewind(ledger: Ledger, feed: str, cursor: str, key: str) -> None:
    """Move a feed's cursor back, as restoring an older ledger file would."""
    await ledger.record(
        TransactionDraft(
            kind=TransactionKind.CURSOR,
            source=feed,
            key=key,
            observed_at=datetime.now(UTC),
            cursor=CursorUpdate(feed, cursor),
        )
    )


class Crash(Exception):
    """The process 'dies' here."""


class CrashingLedger:
    """A ledger whose next stock write fails before (or right after) it commits.

    Everything else is passed through, so the source under test cannot tell
    it from the real one until the crash.
    """

    def __init__(self, ledger: Ledger, *, after_commit: bool = False) -> None:
        self._ledger = ledger
        self._after_commit = after_commit
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    async def _write(self, write: Callable[[Any], Awaitable[bool]], draft: Any) -> bool:
        if self.crashed:
            return await write(draft)
        self.crashed = True
        if self._after_commit:
            await write(draft)
        raise Crash("process died during the ledger write")

    async def record(self, draft: TransactionDraft) -> bool:
        return await self._write(self._ledger.record, draft)

    async def record_snapshot(self, draft: Any) -> bool:
        return await self._write(self._ledger.record_snapshot, draft)


@asynccontextmanager
async def stock_rig(
    tmp_path: Path, *, variants: int = 120, seed: int = 5, **catalog_options: Any
) -> AsyncIterator[Rig]:
    """A running world and its config; the stock sources are made with :meth:`Rig.source`."""
    catalog = generate_catalog(variants, seed=seed, prepacks=0, **catalog_options)
    world = SandboxWorld.create(catalog=catalog)
    async with world.running():
        config = load_config(world.write_config(tmp_path / "config"))
        clients = build_clients(config, clock=SystemClock())
        try:
            yield Rig(
                world=world,
                config=config,
                clients=clients,
                clock=ShiftClock(),
                catalog=config.catalog_model(),
                directory=tmp_path,
            )
        finally:
            await clients.aclose()
