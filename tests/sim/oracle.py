"""What each channel should show, computed from the simulators alone.

The oracle never reads syncd's ledger and never calls syncd's allocation: it
takes the warehouse figures and the open orders straight from the simulators'
state and applies the rules of ARCHITECTURE.md and the sandbox config, written
out here (a bug in :mod:`syncd.allocation` then shows as a difference instead
of being copied into the expected values):

- pool per single SKU: Active Ants ``availableStock`` (location ``activeants``;
  below zero -- backorders -- counts as zero, as syncd's Active Ants source
  documents), plus for Ankorstore the ASTRAL warehouse's ``available`` batches
  x the batch's ``unitMultiplier`` (``astral:*``); ``reserved``/``damaged``/
  ``incoming`` never count;
- reservations, all on ``activeants`` (every order feed is ``fulfilled_from =
  "activeants"``), subtracted from every channel's pool: Ankorstore orders in
  ``ankor_confirmed``, ``brand_confirmed``, ``shipping_labels_generated``
  (``multipliedQuantity`` pieces), fabric ``quantity_open``, FashionTrade lines
  in SUBMITTED / ACKNOWLEDGED / CONFIRMED / PARTIALLY_SHIPPED (prepacks
  expanded through the catalog); a bundle reserves its components, times
  their multipliers, recursively; net = max(0, pool - reserved);
- a bundle offers min over its components of floor(their net / multiplier)
  (a nested bundle: its own figure);
- Ankorstore publishes whole packs of the listing's ``unitMultiplier`` (the
  channel's pack: syncd takes it from Ankorstore), fabric single units,
  nothing below zero.

Two answers differ in one documented respect, the warehouse handover:

- :func:`truth`: what is physically for sale. An order Active Ants holds under
  the order's reference (``[handover] match = "external_reference"``) reserves
  nothing: the warehouse's ``availableStock`` already excludes it.
- :func:`expected`: what syncd is designed to publish. The same, except that
  an Ankorstore order keeps reserving until Ankorstore ships, cancels or
  rejects it, even once the warehouse holds it: Ankorstore subtracts its open
  orders from the ``stockQuantity`` syncd writes, so syncd adds them back and
  keeps subtracting them for as long (syncd/sources/handover.py,
  syncd/allocation.py step 5). For that window the order counts twice -- an
  accepted undersell, never an oversell -- on every channel fed by the
  warehouse.

What a channel *shows* (:func:`shown`): Ankorstore ``availableQuantity``
(= ``stockQuantity - reservedQuantity``), fabric ``inventory``.
"""

from __future__ import annotations

from syncd.sandbox.world import SandboxWorld

ANKORSTORE_HOLDING = frozenset({"ankor_confirmed", "brand_confirmed", "shipping_labels_generated"})
FASHIONTRADE_RESERVING = frozenset({"SUBMITTED", "ACKNOWLEDGED", "CONFIRMED", "PARTIALLY_SHIPPED"})
CHANNELS = ("ankorstore", "fabric")
ALL_CHANNELS = frozenset({"ankorstore", "fabric", "fashiontrade"})
"""Every channel that takes orders."""

Expected = dict[tuple[str, str], int]
"""(channel, SKU) -> units."""


def warehouse_pools(world: SandboxWorld) -> dict[str, dict[str, int]]:
    """Sellable units per single SKU, per channel, as the simulators hold them now."""
    activeants = {p.brand_sku: max(0, p.available) for p in world.activeants.products.values()}
    # Backorders can take availableStock below zero (seed 001 L461): that
    # warehouse has nothing to sell, and what it owes is its own to fill --
    # it does not eat into another location's stock.
    astral = world.ankorstore.astral
    ankorstore = dict(activeants)
    for variant in world.catalog.variants:
        if variant.at_astral:
            batches = astral.balance(variant.astral_variant_id, "available")
            units = batches * variant.astral_unit_multiplier
            ankorstore[variant.sku] = ankorstore.get(variant.sku, 0) + units
    return {"ankorstore": ankorstore, "fabric": activeants}


def handed_over(world: SandboxWorld) -> set[str]:
    """``externalOrderNumber`` of every order the warehouse holds (any status)."""
    return set(world.activeants.orders)


def open_orders(
    world: SandboxWorld, *, keep_handed_over: frozenset[str] = frozenset()
) -> dict[tuple[str, str], dict[str, int]]:
    """(channel, order ref) -> units per SKU, for every order that reserves stock now.

    An order the warehouse holds reserves nothing, unless its channel is in
    ``keep_handed_over``.
    """
    held = handed_over(world)
    orders: dict[tuple[str, str], dict[str, int]] = {}

    def add(channel: str, ref: str, sku: str, units: int) -> None:
        if (ref in held and channel not in keep_handed_over) or units <= 0:
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


def _reserved_singles(
    world: SandboxWorld, orders: dict[tuple[str, str], dict[str, int]]
) -> dict[str, int]:
    """Units reserved per single SKU, bundle lines expanded through their components."""
    bundles = {b.sku: b.components for b in world.catalog.bundles}
    reserved: dict[str, int] = {}
    stack = [(sku, units) for lines in orders.values() for sku, units in lines.items()]
    while stack:
        sku, units = stack.pop()
        if sku in bundles:
            stack.extend((part, units * per) for part, per in bundles[sku].items())
        else:
            reserved[sku] = reserved.get(sku, 0) + units
    return reserved


def offers(
    world: SandboxWorld, orders: dict[tuple[str, str], dict[str, int]]
) -> dict[tuple[str, str], int]:
    """Units each published (channel, SKU) may show, given these open orders."""
    bundles = {b.sku: b.components for b in world.catalog.bundles}
    reserved = _reserved_singles(world, orders)
    result: dict[tuple[str, str], int] = {}
    for channel, pool in warehouse_pools(world).items():
        memo: dict[str, int] = {}

        def base(sku: str, pool: dict[str, int] = pool, memo: dict[str, int] = memo) -> int:
            if sku not in memo:
                if sku in bundles:
                    memo[sku] = min(base(part) // per for part, per in bundles[sku].items())
                else:
                    memo[sku] = max(0, pool.get(sku, 0) - reserved.get(sku, 0))
            return memo[sku]

        for sku in world.catalog.published(channel):
            units = base(sku)
            if channel == "ankorstore":
                pack = world.ankorstore.listing(sku).unit_multiplier
                units -= units % pack
            result[(channel, sku)] = max(0, units)
    return result


def truth(world: SandboxWorld) -> Expected:
    """Units physically for sale per published (channel, SKU), every open order subtracted once."""
    return offers(world, open_orders(world))


def expected(world: SandboxWorld) -> Expected:
    """What syncd is designed to publish per (channel, SKU) (the module docstring)."""
    return offers(world, open_orders(world, keep_handed_over=frozenset({"ankorstore"})))


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
