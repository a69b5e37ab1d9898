"""What each channel should show, computed from the simulators alone.

The oracle never reads syncd's ledger: it takes the warehouse figures and the
open orders straight from the simulators' state and runs them through the
pure :func:`syncd.allocation.allocate` with rules written out here from
ARCHITECTURE.md and the sandbox config (not parsed from it):

- pool: Active Ants ``availableStock`` (location ``activeants``; below zero
  -- backorders -- counts as zero, as syncd's Active Ants source documents), plus for
  Ankorstore the ASTRAL warehouse's ``available`` batches x ``unitMultiplier``
  (``astral:*``); ``reserved``/``damaged``/``incoming`` never count;
- reservations, all on ``activeants`` (every order feed is ``fulfilled_from =
  "activeants"``): Ankorstore orders in ``ankor_confirmed``,
  ``brand_confirmed``, ``shipping_labels_generated`` (``multipliedQuantity``
  pieces), fabric ``quantity_open``, FashionTrade lines in SUBMITTED /
  ACKNOWLEDGED / CONFIRMED / PARTIALLY_SHIPPED (prepacks expanded through the
  catalog); an order Active Ants holds under the order's reference
  (``[handover] match = "external_reference"``) reserves nothing -- the
  warehouse's ``availableStock`` already excludes it;
- Ankorstore publishes whole packs, fabric single units, nothing below zero.

What a channel *shows* (:func:`shown`): Ankorstore ``availableQuantity``
(= ``stockQuantity - reservedQuantity``), fabric ``inventory``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from syncd.allocation import allocate
from syncd.model import Account, ChannelRule, Reservation, StockStatus
from syncd.sandbox.world import SandboxWorld
from tests.sim.simclock import WALL_START

ASTRAL_PREFIX = "astral"
ANKORSTORE_HOLDING = frozenset({"ankor_confirmed", "brand_confirmed", "shipping_labels_generated"})
FASHIONTRADE_RESERVING = frozenset({"SUBMITTED", "ACKNOWLEDGED", "CONFIRMED", "PARTIALLY_SHIPPED"})
CHANNELS = ("ankorstore", "fabric")

Expected = dict[tuple[str, str], int]
"""(channel, SKU) -> units."""


def rules(world: SandboxWorld) -> list[ChannelRule]:
    catalog = world.catalog
    return [
        ChannelRule(
            channel="ankorstore",
            locations=("activeants", f"{ASTRAL_PREFIX}:*"),
            pack_rounding=True,
            skus=frozenset(catalog.published("ankorstore")),
        ),
        ChannelRule(
            channel="fabric",
            locations=("activeants",),
            pack_rounding=False,
            skus=frozenset(catalog.published("fabric")),
        ),
    ]


def warehouse_balances(world: SandboxWorld) -> dict[Account, int]:
    """Sellable stock per location as the simulators hold it now (units)."""
    balances: dict[Account, int] = {}
    for product in world.activeants.products.values():
        account = Account("activeants", StockStatus.AVAILABLE, product.brand_sku)
        # Backorders can take availableStock below zero (seed 001 L461): that
        # warehouse has nothing to sell, and what it owes is its own to fill --
        # it does not eat into another location's stock.
        balances[account] = max(0, product.available)
    astral = world.ankorstore.astral
    location = f"{ASTRAL_PREFIX}:{astral.warehouse.id}"
    for variant in world.catalog.variants:
        if variant.at_astral:
            batches = astral.balance(variant.astral_variant_id, "available")
            account = Account(location, StockStatus.AVAILABLE, variant.sku)
            balances[account] = batches * variant.astral_unit_multiplier
    return balances


def handed_over(world: SandboxWorld) -> set[str]:
    """``externalOrderNumber`` of every order the warehouse holds (any status)."""
    return set(world.activeants.orders)


def open_orders(world: SandboxWorld) -> dict[tuple[str, str], dict[str, int]]:
    """(channel, order ref) -> units per SKU, for every order that reserves stock now."""
    held = handed_over(world)
    orders: dict[tuple[str, str], dict[str, int]] = {}

    def add(channel: str, ref: str, sku: str, units: int) -> None:
        if ref in held or units <= 0:
            return
        lines = orders.setdefault((channel, ref), {})
        lines[sku] = lines.get(sku, 0) + units

    ankorstore = world.ankorstore
    for order in ankorstore.orders():
        if order.status in ANKORSTORE_HOLDING:
            for item in order.items:
                sku = ankorstore.listings[item.listing_id].sku
                add("ankorstore", str(order.reference), sku, item.multiplied_quantity)
    fabric = world.fabric
    for fabric_order in fabric.orders.values():
        for line in fabric_order.lines:
            sku = fabric.items[line.inventory_id].brand_sku
            add("fabric", str(fabric_order.order_id), sku, line.quantity_open)
    by_barcode = {v.barcode: v.sku for v in world.catalog.variants}
    by_barcode |= {b.barcode: b.sku for b in world.catalog.bundles}
    prepacks = {p.barcode: p for p in world.catalog.prepacks}
    for ft_order in world.fashiontrade.orders.values():
        for ft_line in ft_order.lines:
            if ft_line.status not in FASHIONTRADE_RESERVING:
                continue
            if ft_line.type == "PREPACK":
                for sku, per_pack in prepacks[ft_line.barcode].lines.items():
                    add("fashiontrade", ft_order.order_number, sku, per_pack * ft_line.quantity)
            else:
                add(
                    "fashiontrade",
                    ft_order.order_number,
                    by_barcode[ft_line.barcode],
                    ft_line.quantity,
                )
    return orders


def reservations(world: SandboxWorld) -> list[Reservation]:
    since = datetime.fromtimestamp(WALL_START, UTC)
    return [
        Reservation(channel, ref, sku, units, "activeants", since)
        for (channel, ref), lines in sorted(open_orders(world).items())
        for sku, units in sorted(lines.items())
    ]


def expected(world: SandboxWorld) -> Expected:
    """Desired units per published (channel, SKU) for the simulators' state now."""
    desired = allocate(
        warehouse_balances(world), reservations(world), world.catalog.to_model(), rules(world)
    )
    return {(d.channel, d.sku): d.quantity for d in desired}


def shown(world: SandboxWorld) -> Expected:
    """What each channel shows now per published SKU (None-valued listings left out)."""
    values: Expected = {}
    for sku in world.catalog.published("ankorstore"):
        available = world.ankorstore.listing(sku).available_quantity
        if available is not None:
            values[("ankorstore", sku)] = available
    for sku in world.catalog.published("fabric"):
        values[("fabric", sku)] = world.fabric.item(sku).inventory
    return values
