"""The source adapters under contract, each with a fake and a sandbox backend.

A :class:`SourceCase` says what the contract needs to know about one adapter
(its feed, the API and path it reads, how its observations show in the
ledger, how to spoil one item of a real answer); a :class:`Remote` is one
backend holding that adapter's remote state, with the few moves every clause
makes (change one item, empty everything, revoke tokens, answer an error).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from syncd.clock import FakeClock
from syncd.ledger.store import Ledger
from syncd.model import StockStatus
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.world import SandboxWorld
from syncd.sources.astral_parse import lot_key
from syncd.sources.base import PollResult, Source
from tests.contract._fake_activeants import BULK_PATH, FakeShopApi
from tests.contract._fake_ankorstore import ORDERS as AK_ORDERS
from tests.contract._fake_astral import POSTINGS as ASTRAL_POSTINGS
from tests.contract._fake_astral import PREFIX as ASTRAL_PREFIX
from tests.contract._fake_astral import STATE as ASTRAL_STATE
from tests.contract._fake_astral import FakeAstral
from tests.contract._fake_base import FakeApi
from tests.contract._fake_fabric import ORDERS as FB_ORDERS
from tests.contract._fake_fabric import PAGE_SIZE as FB_PAGE_SIZE
from tests.contract._fake_fashiontrade import ORDERS as FT_ORDERS
from tests.contract._orders import (
    WAREHOUSE,
    SandboxAnkorstoreOrders,
    SandboxFabricOrders,
    SandboxFashionTradeOrders,
    ankorstore_spoil,
    fabric_spoil,
    fake_ankorstore_orders,
    fake_fabric_orders,
    fake_fashiontrade_orders,
    fashiontrade_spoil,
    observer,
    relisted,
)
from tests.contract._rig import assembled, backend, contract_clock, write_config
from tests.contract._switchboard import Switchboards
from tests.contract._wire import Exchange, Wire

Key = tuple[str, ...]
Observations = dict[Key, int]


class Remote(Protocol):
    """One backend's remote state for one source adapter."""

    def populate(self) -> None:
        """Hold more items than one page (stock sources: the catalog already does)."""

    def truth(self) -> Observations:
        """What a correct full read must leave in the ledger."""
        ...

    def change(self) -> set[str]:
        """Change one item; the brand SKUs whose figures it moves."""
        ...

    def empty(self) -> None:
        """The remote holds nothing (no products, no open orders)."""

    def revoke(self) -> None:
        """Invalidate every token (or the API key) issued so far."""

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        """The next ``count`` reads of the feed's path answer ``status``."""


@dataclass(frozen=True)
class SourceCase:
    feed: str
    api: str
    data_path: str
    token_path: str | None
    page_size: int | None
    """Items per page the config asks for; None when one document holds everything."""
    table: str
    """The ``[sources.<feed>]`` TOML."""
    stock: bool
    """A stock source (balances) rather than an order feed (reservations)."""
    full_due_after: float
    """Seconds after which a full read (or reconciliation) is due again."""
    observe: Callable[[Ledger], Awaitable[Observations]]
    unit: Callable[[Key], str]
    """What one spoiled item stands for in the observations (a SKU, an order)."""
    spoil: Callable[[Any, SandboxCatalog], tuple[Any, str, str]]
    """Spoil one item of an answer: the document, the spoiled unit, and the name a
    problem report gives the item."""
    spoil_path: str
    fake: Callable[[SandboxCatalog, FakeClock], tuple[FakeApi, Remote]]
    sandbox: Callable[[SandboxWorld], Remote]
    check_incremental: Callable[[list[Exchange], str | None], None]
    """Asserts that the reads after a first full one asked only for what follows ``cursor``."""
    variants: int = 40
    catalog: dict[str, float] = field(default_factory=dict)
    """Options of the generated catalog (shares of ASTRAL stock, of channel listings...)."""

    def __str__(self) -> str:
        return self.feed


@dataclass
class SourceRig:
    case: SourceCase
    remote: Remote
    source: Source
    ledger: Ledger
    clock: FakeClock
    wire: Wire
    catalog: SandboxCatalog

    async def observed(self) -> Observations:
        return await self.case.observe(self.ledger)

    async def poll(self) -> PollResult:
        return await self.source.poll(self.ledger)

    async def poll_to_end(self, limit: int = 20) -> list[PollResult]:
        results = []
        for _ in range(limit):
            results.append(await self.poll())
            if results[-1].caught_up:
                return results
        raise AssertionError(f"{self.case.feed} did not catch up in {limit} polls")

    def data_requests(self, mark: int) -> int:
        return len(self.wire.since(mark, self.case.data_path))


@asynccontextmanager
async def source_rig(
    case: SourceCase,
    kind: str,
    tmp_path: Path,
    boards: Switchboards,
    *,
    requests_per_minute: int | None = None,
) -> AsyncIterator[SourceRig]:
    options: dict[str, Any] = {"channel_share": 1.0, **case.catalog}
    catalog = generate_catalog(
        case.variants, seed=13, prepacks=0, bundle_share=0.0, lot_share=0.0, **options
    )
    clock = contract_clock()
    fake, remote = case.fake(catalog, clock) if kind == "fake" else (None, None)
    b = backend(kind, case.api, catalog, clock, boards=boards, fake=fake)
    if remote is None:
        assert b.world is not None
        remote = case.sandbox(b.world)
    rate = "" if requests_per_minute is None else f"requests_per_minute = {requests_per_minute}\n"
    config = write_config(tmp_path / "config", b, catalog, case.table, rate)
    async with assembled(config, b, clock, tmp_path / "ledger.db") as assembly:
        source = next(s for s in assembly.sources if s.name == case.feed)
        yield SourceRig(case, remote, source, assembly.ledger, clock, b.wire, catalog)


# --- Active Ants stock --------------------------------------------------------------


async def _activeants_observed(ledger: Ledger) -> Observations:
    return {
        (a.sku,): q
        for a, q in (await ledger.balances()).items()
        if a.location == "activeants" and a.status is StockStatus.AVAILABLE and q
    }


def _activeants_spoil(document: Any, catalog: SandboxCatalog) -> tuple[Any, str, str]:
    product = document["result"]["products"][0]
    product["availableStock"] = "plenty"
    brand = next(v.sku for v in catalog.variants if v.activeants_sku == product["sku"])
    return document, brand, product["sku"]


def _activeants_incremental(sent: list[Exchange], cursor: str | None) -> None:
    """``all_products=false&from=<the last to>`` (seed 001 L2874-2893)."""
    assert sent
    assert next((e.params.get("all_products"), e.params.get("from")) for e in sent) == (
        "false",
        cursor,
    )


@dataclass
class FakeActiveAntsRemote:
    api: FakeShopApi
    catalog: SandboxCatalog

    def populate(self) -> None:
        pass

    def truth(self) -> Observations:
        brand = {v.activeants_sku: v.sku for v in self.catalog.variants}
        return {(brand[s],): p.available for s, p in self.api.products.items() if p.available}

    def change(self) -> set[str]:
        aa_sku, product = next((s, p) for s, p in sorted(self.api.products.items()) if p.available)
        self.api.set(aa_sku, product.available + 3)
        return {next(v.sku for v in self.catalog.variants if v.activeants_sku == aa_sku)}

    def empty(self) -> None:
        self.api.products.clear()

    def revoke(self) -> None:
        self.api.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=BULK_PATH, retry_after=retry_after)


def _fake_activeants(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, Remote]:
    api = FakeShopApi(catalog, clock)
    return api, FakeActiveAntsRemote(api, catalog)


@dataclass
class SandboxActiveAntsRemote:
    world: SandboxWorld

    def populate(self) -> None:
        pass

    def truth(self) -> Observations:
        state = self.world.activeants
        with state.lock:
            return {(p.brand_sku,): p.available for p in state.products.values() if p.available}

    def change(self) -> set[str]:
        state = self.world.activeants
        product = next(p for _, p in sorted(state.products.items()) if p.available > 0)
        state.move_stock(product.sku, 3)
        # A read's ``to`` excludes its own millisecond (seed 001 L2890-2893): step past it.
        self.world.clock.advance(0.002)
        return {product.brand_sku}

    def empty(self) -> None:
        state = self.world.activeants
        with state.lock:
            state.products.clear()

    def revoke(self) -> None:
        self.world.activeants.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.world.faults["activeants"].arm(
            "status", status=status, count=count, retry_after=retry_after, path_prefix=BULK_PATH
        )


ACTIVEANTS = SourceCase(
    feed="activeants",
    api="activeants",
    data_path=BULK_PATH,
    token_path="/token",
    page_size=None,
    table="[sources.activeants]\nfull_reconcile_interval = 3600.0\n",
    stock=True,
    full_due_after=3601.0,
    observe=_activeants_observed,
    unit=lambda key: key[0],
    spoil=_activeants_spoil,
    spoil_path=BULK_PATH,
    fake=_fake_activeants,
    sandbox=SandboxActiveAntsRemote,
    check_incremental=_activeants_incremental,
)


# --- ASTRAL stock ---------------------------------------------------------------------


async def _astral_observed(ledger: Ledger) -> Observations:
    return {
        (a.location, a.status.value, a.sku, a.lot): q
        for a, q in (await ledger.balances()).items()
        if a.location.startswith("astral:") and a.status is not StockStatus.VOID and q
    }


def _astral_spoil(document: Any, catalog: SandboxCatalog) -> tuple[Any, str, str]:
    entity = next(e for e in document["data"] if e["attributes"]["quantities"])
    entity["attributes"]["quantities"][0]["quantity"] = "lots"
    brand = next(v.sku for v in catalog.variants if v.astral_variant_id == entity["id"])
    return document, brand, entity["id"]


def _astral_incremental(sent: list[Exchange], cursor: str | None) -> None:
    """Postings after the committed cursor, and no state read (seed 000 L13517-13529)."""
    assert sent
    assert sent[0].path == ASTRAL_POSTINGS
    assert sent[0].params.get("page[after]") == cursor
    assert all(e.path == ASTRAL_POSTINGS for e in sent)


def _astral_truth(
    balances: dict[tuple[str, str], int],
    location: str,
    multipliers: dict[str, int],
    catalog: SandboxCatalog,
) -> Observations:
    brand = {v.astral_variant_id: v.sku for v in catalog.variants if v.at_astral}
    return {
        (f"astral:{location}", status, brand[vid], lot_key("", None)): batches * multipliers[vid]
        for (vid, status), batches in balances.items()
        if batches and vid in brand
    }


@dataclass
class FakeAstralRemote:
    api: FakeAstral
    catalog: SandboxCatalog

    def populate(self) -> None:
        pass

    def truth(self) -> Observations:
        return _astral_truth(
            self.api.balances(), self.api.location, self.api.multipliers, self.catalog
        )

    def change(self) -> set[str]:
        vid, _ = next(k for k, q in sorted(self.api.balances().items()) if q > 0)
        self.api.move(vid, "available", "damaged", 1)
        return {next(v.sku for v in self.catalog.variants if v.astral_variant_id == vid)}

    def empty(self) -> None:
        self.api.listed = False

    def revoke(self) -> None:
        self.api.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.api.arm(status, count=count, path_prefix=ASTRAL_PREFIX, retry_after=retry_after)


def _fake_astral(catalog: SandboxCatalog, clock: FakeClock) -> tuple[FakeApi, Remote]:
    api = FakeAstral(catalog, clock)
    return api, FakeAstralRemote(api, catalog)


@dataclass
class SandboxAstralRemote:
    world: SandboxWorld

    def populate(self) -> None:
        pass

    def truth(self) -> Observations:
        astral = self.world.ankorstore.astral
        with astral.lock:
            balances: dict[tuple[str, str], int] = {}
            for (location, status, vid, _), batches in astral.balances().items():
                if status != "void" and location == astral.warehouse.id:
                    balances[(vid, status)] = balances.get((vid, status), 0) + batches
            multipliers = {vid: v.unit_multiplier for vid, v in astral.variants.items()}
        return _astral_truth(balances, astral.warehouse.id, multipliers, self.world.catalog)

    def change(self) -> set[str]:
        astral = self.world.ankorstore.astral
        variant = next(v for v in self.world.catalog.variants if v.at_astral and v.astral_batches)
        astral.move(variant.sku, "available", "damaged", 1, "broken")
        return {variant.sku}

    def empty(self) -> None:
        astral = self.world.ankorstore.astral
        with astral.lock:
            astral.variants.clear()

    def revoke(self) -> None:
        self.world.ankorstore.revoke_tokens()

    def arm(self, status: int, *, count: int, retry_after: int = 1) -> None:
        self.world.faults["ankorstore"].arm(
            "status", status=status, count=count, retry_after=retry_after, path_prefix=ASTRAL_PREFIX
        )


ASTRAL = SourceCase(
    feed="astral",
    api="ankorstore",
    data_path=ASTRAL_PREFIX,
    token_path="/oauth/token",
    page_size=5,
    table="[sources.astral]\npage_size = 5\nreconcile_interval = 600.0\n",
    stock=True,
    full_due_after=601.0,
    observe=_astral_observed,
    unit=lambda key: key[2],
    spoil=_astral_spoil,
    spoil_path=ASTRAL_STATE,
    fake=_fake_astral,
    sandbox=SandboxAstralRemote,
    check_incremental=_astral_incremental,
    catalog={"astral_share": 0.8},
)


# --- order feeds (tests.contract._orders) --------------------------------------------------

ANKORSTORE_ORDERS = SourceCase(
    feed="ankorstore_orders",
    api="ankorstore",
    data_path=AK_ORDERS,
    token_path="/oauth/token",
    page_size=5,
    table="[sources.ankorstore_orders]\npage_size = 5\n" + WAREHOUSE,
    stock=False,
    full_due_after=0.0,
    observe=observer("ankorstore"),
    unit=lambda key: key[0],
    spoil=ankorstore_spoil,
    spoil_path=AK_ORDERS,
    fake=fake_ankorstore_orders,
    sandbox=SandboxAnkorstoreOrders,
    check_incremental=relisted,
)

FABRIC_ORDERS = SourceCase(
    feed="fabric_orders",
    api="fabric",
    data_path=FB_ORDERS,
    token_path="/auth/token/",
    page_size=FB_PAGE_SIZE,
    table="[sources.fabric_orders]\n" + WAREHOUSE,
    stock=False,
    full_due_after=0.0,
    observe=observer("fabric"),
    unit=lambda key: key[0],
    spoil=fabric_spoil,
    spoil_path=FB_ORDERS,
    fake=fake_fabric_orders,
    sandbox=SandboxFabricOrders,
    check_incremental=relisted,
)

FASHIONTRADE = SourceCase(
    feed="fashiontrade",
    api="fashiontrade",
    data_path=FT_ORDERS,
    token_path=None,
    # The listing's page is 1000 orders (seed 002 L1385-1390); what a poll bounds is
    # the orders it reads one by one: the rest waits for the next poll.
    page_size=5,
    table="[sources.fashiontrade]\nmax_order_requests = 5\n" + WAREHOUSE,
    stock=False,
    full_due_after=0.0,
    observe=observer("fashiontrade"),
    unit=lambda key: key[0],
    spoil=fashiontrade_spoil,
    spoil_path=f"{FT_ORDERS}/",
    fake=fake_fashiontrade_orders,
    sandbox=SandboxFashionTradeOrders,
    check_incremental=relisted,
)

SOURCES = [ACTIVEANTS, ASTRAL, ANKORSTORE_ORDERS, FABRIC_ORDERS, FASHIONTRADE]
