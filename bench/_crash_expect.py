"""What the channels should show, from the simulators' final state alone; and what syncd holds.

Used by `bench/crash` once the last daemon has converged and stopped. Three
reads, kept apart on purpose:

- :func:`source_truth` reads the **simulators** (Active Ants, ASTRAL and the
  three order books): the stock levels and open reservations a faithful
  reader of those APIs would record, built here without any syncd reader;
- :func:`expected_values` runs :func:`syncd.allocation.allocate` over that
  truth with the config's catalog and channel rules: the value every
  published (channel, SKU) must show;
- :func:`read_ledger` opens syncd's ledger: what syncd recorded, its open
  reservations, its outbox (for diagnosis only) and
  ``Ledger.check_invariants()``.

The comparisons (:func:`lost_updates`, :func:`wrong_values`) return one
:class:`Finding` per mismatch; `bench/crash`'s docstring defines what each
one counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from syncd.allocation import allocate
from syncd.config import Config
from syncd.ledger.store import Ledger
from syncd.model import Account, OutboxRow, Reservation, StockStatus
from syncd.sandbox.world import SandboxWorld

ANKORSTORE_RESERVING = frozenset(
    {"ankor_confirmed", "brand_confirmed", "shipping_labels_generated"}
)
"""Ankorstore statuses whose goods are still at the brand's warehouse (seed 000 L3274-3296;
``fulfillment_requested`` leaves from Ankorstore's own warehouse and the driver never uses it)."""
FASHIONTRADE_RESERVING = frozenset({"SUBMITTED", "ACKNOWLEDGED", "CONFIRMED", "PARTIALLY_SHIPPED"})
"""FashionTrade line statuses that commit stock (seed 002 L608-615)."""

StockKey = tuple[str, str]
"""(source, SKU): ``activeants`` or ``astral`` available units of one single SKU."""
OrderKey = tuple[str, str, str]
"""(channel, order ref, SKU): units an open order reserves."""
ValueKey = tuple[str, str]
"""(channel, SKU)."""


@dataclass(frozen=True, slots=True)
class SourceTruth:
    """Final stock and open reservations as the simulators hold them."""

    stock: dict[StockKey, int]
    reservations: dict[OrderKey, int]
    balances: dict[Account, int]
    """``stock`` as ledger accounts, the input ``allocate`` takes."""
    negative: list[str]
    """Active Ants products whose available stock is below zero (syncd skips those)."""


@dataclass(frozen=True, slots=True)
class LedgerView:
    stock: dict[StockKey, int]
    reservations: dict[OrderKey, int]
    outbox: dict[ValueKey, OutboxRow]
    first_seen: dict[tuple[str, str], str]
    """(channel, order ref) -> when syncd first recorded the order."""
    violations: list[str]


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    key: tuple[str, ...]
    expected: int | None
    actual: int | None
    detail: str = ""

    def line(self) -> str:
        where = "/".join(self.key)
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.kind}: {where}: expected {self.expected}, found {self.actual}{extra}"


# --- the simulators ---------------------------------------------------------------------


def _locations(config: Config) -> tuple[str, str]:
    """The Active Ants location and the ASTRAL location prefix the config names."""
    activeants, astral = config.sources.activeants, config.sources.astral
    if activeants is None or astral is None:
        raise ValueError("the crash test needs the activeants and astral sources configured")
    return activeants.location, astral.location_prefix


def source_truth(world: SandboxWorld, config: Config) -> SourceTruth:
    """Available stock per single SKU and open reservation units per order line."""
    aa_location, astral_prefix = _locations(config)
    stock: dict[StockKey, int] = {}
    negative: list[str] = []
    activeants = world.activeants
    with activeants.lock:
        for product in activeants.products.values():
            stock["activeants", product.brand_sku] = product.available
            if product.available < 0:
                negative.append(product.brand_sku)
        warehouse_orders = set(activeants.orders)
    astral = world.ankorstore.astral
    for variant in world.catalog.variants:
        if variant.at_astral:
            batches = astral.balance(variant.sku, "available")
            stock["astral", variant.sku] = batches * variant.astral_unit_multiplier
    balances: dict[Account, int] = {}
    astral_location = f"{astral_prefix}:{astral.warehouse.id}"
    for (source, sku), units in stock.items():
        location = aa_location if source == "activeants" else astral_location
        if units:
            balances[Account(location, StockStatus.AVAILABLE, sku)] = units
    reservations = _open_orders(world, warehouse_orders)
    return SourceTruth(stock, reservations, balances, negative)


def _open_orders(world: SandboxWorld, held: set[str]) -> dict[OrderKey, int]:
    """Units each open channel order reserves.

    A fabric or FashionTrade order Active Ants holds reserves nothing (the
    warehouse's ``externalOrderNumber`` is the channel's order ref: the
    sandbox config's ``reference_templates`` are ``{order_ref}``); its units
    are already out of ``availableStock``. An Ankorstore order keeps reserving
    until Ankorstore ships, cancels or rejects it, handed over or not: syncd
    writes ``stockQuantity`` = sellable + what Ankorstore's own open orders
    took, and Ankorstore subtracts them itself until it closes them, so the
    handover window is a documented undersell (syncd/sources/handover.py).
    """
    units: dict[OrderKey, int] = {}

    def add(channel: str, ref: str, sku: str, quantity: int, *, handed_over: bool) -> None:
        if not handed_over and quantity > 0:
            units[channel, ref, sku] = units.get((channel, ref, sku), 0) + quantity

    ankorstore = world.ankorstore
    for order in ankorstore.orders():
        if order.status in ANKORSTORE_RESERVING:
            for item in order.items:
                sku = ankorstore.listings[item.listing_id].sku
                ref = str(order.reference)
                add("ankorstore", ref, sku, item.multiplied_quantity, handed_over=False)
    fabric = world.fabric
    with fabric.lock:
        for fabric_order in fabric.orders.values():
            for line in fabric_order.lines:
                sku = fabric.items[line.inventory_id].brand_sku
                ref = str(fabric_order.order_id)
                add("fabric", ref, sku, line.quantity_open, handed_over=ref in held)
    prepacks = {p.barcode: p for p in world.catalog.prepacks}
    skus_by_barcode = {v.barcode: v.sku for v in world.catalog.variants}
    skus_by_barcode |= {b.barcode: b.sku for b in world.catalog.bundles}
    fashiontrade = world.fashiontrade
    with fashiontrade.lock:
        for ft_order in fashiontrade.orders.values():
            for ft_line in ft_order.lines:
                if ft_line.status not in FASHIONTRADE_RESERVING:
                    continue
                number = ft_order.order_number
                if ft_line.type == "PREPACK":
                    for sku, per_pack in prepacks[ft_line.barcode].lines.items():
                        pieces = per_pack * ft_line.quantity
                        add("fashiontrade", number, sku, pieces, handed_over=number in held)
                else:
                    sku = skus_by_barcode[ft_line.barcode]
                    add("fashiontrade", number, sku, ft_line.quantity, handed_over=number in held)
    return units


def expected_values(truth: SourceTruth, config: Config) -> dict[ValueKey, int]:
    """syncd's own allocation rules over the simulators' final state."""
    location, _ = _locations(config)
    since = datetime.now(UTC)
    reservations = [
        Reservation(channel, ref, sku, quantity, location, since)
        for (channel, ref, sku), quantity in sorted(truth.reservations.items())
    ]
    desired = allocate(truth.balances, reservations, config.catalog_model(), config.channel_rules())
    return {(d.channel, d.sku): d.quantity for d in desired}


@dataclass(frozen=True, slots=True)
class Shown:
    value: int | None
    note: str
    """What else the channel says about it (Ankorstore: the stock and reserved figures)."""


def channel_values(world: SandboxWorld) -> dict[ValueKey, Shown]:
    """What each channel shows now: Ankorstore ``availableQuantity``, fabric ``inventory``."""
    shown: dict[ValueKey, Shown] = {}
    with world.ankorstore.lock:
        for listing in world.ankorstore.listings.values():
            note = f"stockQuantity {listing.stock_quantity}, reservedQuantity {listing.reserved_quantity}"
            shown["ankorstore", listing.sku] = Shown(listing.available_quantity, note)
    with world.fabric.lock:
        for item in world.fabric.items.values():
            note = f"last submitted {item.last_submitted}"
            shown["fabric", item.brand_sku] = Shown(item.inventory, note)
    return shown


# --- the ledger --------------------------------------------------------------------------


def read_ledger(path: Path, config: Config) -> LedgerView:
    return anyio.run(_read_ledger, path, config)


async def _read_ledger(path: Path, config: Config) -> LedgerView:
    aa_location, prefix = _locations(config)
    astral_prefix = prefix + ":"
    async with await Ledger.open(path) as ledger:
        balances = await ledger.balances()
        open_lines = await ledger.open_reservations()
        outbox = {
            (row.channel, row.sku): row
            for channel in config.channels.enabled()
            for row in await ledger.outbox_rows(channel)
        }
        violations = await ledger.check_invariants()
    stock: dict[StockKey, int] = {}
    for account, quantity in balances.items():
        if account.status != StockStatus.AVAILABLE:
            continue
        if account.location == aa_location:
            source = "activeants"
        elif account.location.startswith(astral_prefix):
            source = "astral"
        else:
            continue
        stock[source, account.sku] = stock.get((source, account.sku), 0) + quantity
    reservations: dict[OrderKey, int] = {}
    for line in open_lines:
        key = (line.channel, line.order_ref, line.sku)
        reservations[key] = reservations.get(key, 0) + line.quantity
    return LedgerView(stock, reservations, outbox, _first_seen(path), violations)


def _first_seen(path: Path) -> dict[tuple[str, str], str]:
    """When syncd first recorded each order (read-only SQL: diagnosis, not a verdict)."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT channel, order_ref, first_seen FROM orders").fetchall()
    return {(str(channel), str(ref)): str(seen) for channel, ref, seen in rows}


# --- comparisons --------------------------------------------------------------------------


def lost_updates(truth: SourceTruth, ledger: LedgerView) -> list[Finding]:
    """Source state the ledger does not hold: a stock level or an order's open units."""
    found: list[Finding] = []
    for key in sorted(truth.stock.keys() | ledger.stock.keys()):
        expected, actual = truth.stock.get(key, 0), ledger.stock.get(key, 0)
        if expected != actual:
            found.append(Finding("lost update", key, expected, actual, "available units"))
    for order_key in sorted(truth.reservations.keys() | ledger.reservations.keys()):
        expected, actual = (
            truth.reservations.get(order_key, 0),
            ledger.reservations.get(order_key, 0),
        )
        if expected != actual:
            channel, ref, _ = order_key
            seen = ledger.first_seen.get((channel, ref), "never")
            found.append(
                Finding(
                    "lost update", order_key, expected, actual, f"reserved units; first seen {seen}"
                )
            )
    return found


def wrong_values(
    expected: Mapping[ValueKey, int],
    shown: Mapping[ValueKey, Shown],
    outbox: Mapping[ValueKey, OutboxRow],
) -> list[Finding]:
    """Published (channel, SKU) pairs whose channel value differs from the expected one."""
    found: list[Finding] = []
    missing = Shown(None, "not listed on the channel")
    for key in sorted(expected):
        seen = shown.get(key, missing)
        if seen.value != expected[key]:
            row = outbox.get(key)
            syncd = (
                f"syncd outbox: desired {row.desired}, acknowledged {row.acknowledged}, {row.status}"
                if row
                else "no outbox row"
            )
            detail = f"{seen.note}; {syncd}"
            found.append(Finding("wrong final value", key, expected[key], seen.value, detail))
    return found


def describe(findings: Iterable[Finding], limit: int = 20) -> list[str]:
    """At most ``limit`` finding lines, and how many were left out."""
    items = list(findings)
    lines = [f.line() for f in items[:limit]]
    if len(items) > limit:
        lines.append(f"... and {len(items) - limit} more")
    return lines
