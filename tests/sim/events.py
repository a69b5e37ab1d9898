"""What happens in the world while syncd runs: stock moves and orders, on the simulators.

Every event changes the simulators' state directly through their state
methods (no HTTP: the warehouse and the marketplaces are not syncd's
requests). Events that do not apply to the current state (nothing to ship,
not enough stock) return None and the schedule draws again.

The flows follow what a brand sees:

- Active Ants: goods received, counted, written off, blocked or excluded;
- ASTRAL: announced, received, found/lost, reserved, released, shipped, damaged;
- orders on Ankorstore, fabric and FashionTrade: placed (within what the
  channel offers), accepted, cancelled, rejected, shipped -- on Ankorstore also
  placed and closed again in one step, never seen open by syncd; an order may be
  handed over to the warehouse (Active Ants then holds it under the order's
  reference and its ``availableStock`` drops), and it ships from there;
- credentials revoked (tokens; FashionTrade's static key until restored).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from syncd.sandbox.ankorstore_orders import OrderError
from syncd.sandbox.astral_ledger import InsufficientStock
from syncd.sandbox.fashiontrade_state import LineSpec
from syncd.sandbox.world import SandboxWorld
from tests.sim.oracle import ANKORSTORE_HOLDING, FASHIONTRADE_RESERVING

Event = Callable[[], str | None]

FT_NEXT = ("ACKNOWLEDGED", "CONFIRMED", "PARTIALLY_SHIPPED", "SHIPPED", "SHIPPED", "REJECTED")
FT_RANK = {
    "SUBMITTED": 0,
    "ACKNOWLEDGED": 1,
    "CONFIRMED": 2,
    "PARTIALLY_SHIPPED": 3,
    "SHIPPED": 4,
    "REJECTED": 4,
}
UNTRACKED_SHIPMENT = 0.2
"""Share of orders shipped from stock syncd does not track (the warehouse does not move)."""


class WorldDriver:
    """Draws and applies world events for one seed."""

    def __init__(self, world: SandboxWorld, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.fashiontrade_key_revoked = False
        self.last_event: str | None = None
        """Name of the event :meth:`random_event` applied last (None: none applied)."""
        self.activeants_seen: dict[str, set[int]] = {}
        """Every ``availableStock`` each SKU has had: the ledger must never invent another."""
        self.note_activeants()
        self._events: list[tuple[Event, int]] = [
            (self.aa_receive, 4),
            (self.aa_remove, 3),
            (self.aa_count, 2),
            (self.aa_levels, 1),
            (self.aa_list_twice, 1),
            (self.astral_move, 4),
            (self.ankorstore_place, 4),
            (self.ankorstore_advance, 4),
            (self.ankorstore_flash, 3),
            (self.fabric_place, 3),
            (self.fabric_advance, 3),
            (self.fashiontrade_place, 3),
            (self.fashiontrade_advance, 3),
            (self.handover, 3),
        ]

    def note_activeants(self) -> None:
        for product in self.world.activeants.products.values():
            seen = self.activeants_seen.setdefault(product.brand_sku, set())
            # A negative level (backorders) may be recorded as is or as zero.
            seen |= {product.available, max(0, product.available)}

    def random_event(self) -> str | None:
        events = [event for event, _ in self._events]
        weights = [weight for _, weight in self._events]
        for _ in range(8):
            event = self.rng.choices(events, weights)[0]
            done = event()
            if done is not None:
                self.last_event = event.__name__
                self.note_activeants()
                return done
        self.last_event = None
        return None

    # --- Active Ants -----------------------------------------------------------------

    def _aa_sku(self) -> str | None:
        skus = sorted(p.brand_sku for p in self.world.activeants.products.values())
        return self.rng.choice(skus) if skus else None

    def aa_receive(self) -> str | None:
        sku = self._aa_sku()
        if sku is None:
            return None
        units = self.rng.randint(1, 30)
        product = self.world.activeants.move_stock(sku, units)
        return f"activeants: {sku} received {units} (available {product.available})"

    def aa_remove(self) -> str | None:
        sku = self._aa_sku()
        if sku is None:
            return None
        product = self.world.activeants.product(sku)
        most = min(product.physical, product.available)
        if most < 1:
            return None
        units = self.rng.randint(1, most)
        product = self.world.activeants.move_stock(sku, -units)
        return f"activeants: {sku} wrote off {units} (available {product.available})"

    def aa_count(self) -> str | None:
        sku = self._aa_sku()
        if sku is None:
            return None
        level = self.rng.choice((0, self.rng.randint(0, 12), self.rng.randint(0, 80)))
        product = self.world.activeants.set_stock(sku, level)
        return f"activeants: {sku} counted, available {product.available}"

    def aa_levels(self) -> str | None:
        sku = self._aa_sku()
        if sku is None:
            return None
        product = self.world.activeants.product(sku)
        unavailable = self.rng.randint(0, 3)
        excluded = self.rng.randint(0, 3)
        if product.physical - product.ordered - unavailable - excluded < 0:
            return None
        product = self.world.activeants.set_levels(
            sku, unavailable=unavailable, excluded=excluded, expected=self.rng.randint(0, 20)
        )
        return f"activeants: {sku} blocked {unavailable}, excluded {excluded} (available {product.available})"

    def aa_list_twice(self) -> str | None:
        """A faulty stock read: the product listed a second time, first, with a larger figure.

        syncd must record the lower one (the truth here), so the ledger still only
        ever holds levels the warehouse showed (checks.py) and the channels still
        converge to the oracle; half the time the fault is lifted again.
        """
        sku = self._aa_sku()
        if sku is None:
            return None
        warehouse = self.world.activeants
        key = warehouse.product(sku).sku
        if key in warehouse.listed_twice and self.rng.random() < 0.5:
            warehouse.list_twice(sku, None)
            return f"activeants: {sku} listed once again"
        extra = self.rng.randint(1, 60)
        warehouse.list_twice(sku, extra)
        # Its next read lists it (a mutation), twice.
        product = warehouse.move_stock(sku, 0)
        return f"activeants: {sku} listed twice, the first copy {extra} units too high (available {product.available})"

    # --- ASTRAL ------------------------------------------------------------------------

    def astral_move(self) -> str | None:
        variants = sorted(v.sku for v in self.world.catalog.variants if v.at_astral)
        if not variants:
            return None
        sku = self.rng.choice(variants)
        astral = self.world.ankorstore.astral
        batches = self.rng.randint(1, 8)
        action = self.rng.choice(
            (
                "receive",
                "receive",
                "expect",
                "found",
                "lost",
                "reserve",
                "release",
                "ship",
                "damage",
            )
        )
        try:
            if action == "receive":
                astral.receive(sku, batches)
            elif action == "expect":
                astral.expect(sku, batches)
            elif action == "found":
                astral.adjust(sku, batches)
            elif action == "lost":
                astral.adjust(sku, -batches)
            elif action == "reserve":
                astral.reserve(sku, batches)
            elif action == "release":
                astral.release(sku, batches)
            elif action == "ship":
                astral.ship(sku, batches)
            else:
                astral.damage(sku, batches)
        except (InsufficientStock, ValueError):
            return None
        return f"astral: {sku} {action} {batches} (available {astral.balance(sku)} batches)"

    # --- Ankorstore orders -------------------------------------------------------------

    def ankorstore_place(self) -> str | None:
        state = self.world.ankorstore
        offered = [
            listing
            for listing in state.ordered_listings()
            if (listing.available_quantity or 0) >= listing.unit_multiplier
        ]
        if not offered:
            return None
        lines: dict[str, int] = {}
        for listing in self.rng.sample(offered, min(len(offered), self.rng.randint(1, 2))):
            packs = (listing.available_quantity or 0) // listing.unit_multiplier
            lines[listing.sku] = self.rng.randint(1, min(3, packs))
        try:
            order = state.place_order(lines)
        except OrderError:
            return None
        return f"ankorstore: order {order.reference} placed {lines}"

    def ankorstore_advance(self) -> str | None:
        state = self.world.ankorstore
        holding = [o for o in state.orders() if o.status in ANKORSTORE_HOLDING]
        if not holding:
            return None
        order = self.rng.choice(holding)
        ref = str(order.reference)
        action = self.rng.choice(("accept", "labels", "ship", "ship", "cancel", "reject"))
        try:
            if action == "accept" and order.status == "ankor_confirmed":
                state.advance_order(order.id, "brand_confirmed")
            elif action == "labels" and order.status == "brand_confirmed":
                state.advance_order(order.id, "shipping_labels_generated")
            elif action == "reject" and order.status == "ankor_confirmed":
                state.advance_order(order.id, "rejected")
                self._warehouse_cancel(ref)
            elif action == "cancel":
                state.cancel_order(order.id)
                self._warehouse_cancel(ref)
            elif action == "ship":
                lines = {
                    state.listings[i.listing_id].sku: i.multiplied_quantity for i in order.items
                }
                if not self._warehouse_ship(ref, lines):
                    return None
                state.ship_order(order.id)
            else:
                return None
        except OrderError:
            return None
        return f"ankorstore: order {ref} {action} -> {state.order(order.id).status}"

    def ankorstore_flash(self) -> str | None:
        """An order placed and closed again at once: syncd's order poll never sees it open.

        Cancelled, rejected or shipped (shipping lowers ``stockQuantity`` on
        Ankorstore and, unless the shipment is untracked, the warehouse's stock).
        """
        placed = self.ankorstore_place()
        if placed is None:
            return None
        state = self.world.ankorstore
        order = state.orders()[0]  # newest first: the one just placed
        ref = str(order.reference)
        action = self.rng.choice(("cancel", "reject", "ship", "ship"))
        if action == "ship":
            lines = {state.listings[i.listing_id].sku: i.multiplied_quantity for i in order.items}
            if not self._warehouse_ship(ref, lines):
                action = "cancel"
            else:
                state.ship_order(order.id)
        if action == "reject":
            state.advance_order(order.id, "rejected")
        elif action == "cancel":
            state.cancel_order(order.id)
        return f"{placed}, then {action} before any poll -> {state.order(order.id).status}"

    # --- fabric orders -----------------------------------------------------------------

    def fabric_place(self) -> str | None:
        state = self.world.fabric
        offered = [item for item in state.items.values() if item.inventory >= 1]
        if not offered:
            return None
        lines: dict[str | int, int] = {}
        for item in self.rng.sample(offered, min(len(offered), self.rng.randint(1, 2))):
            lines[item.brand_sku] = self.rng.randint(1, min(3, item.inventory))
        try:
            order = state.place_order(lines)
        except ValueError:
            return None
        return f"fabric: order {order.order_id} placed {lines}"

    def fabric_advance(self) -> str | None:
        state = self.world.fabric
        open_orders = [o for o in state.orders.values() if o.status == "open"]
        if not open_orders:
            return None
        order = self.rng.choice(open_orders)
        ref = str(order.order_id)
        if self.rng.random() < 0.35:
            state.cancel_lines(order.order_id)
            self._warehouse_cancel(ref)
            return f"fabric: order {ref} cancelled"
        lines = {
            state.items[line.inventory_id].brand_sku: line.quantity_open for line in order.lines
        }
        if not self._warehouse_ship(ref, lines):
            return None
        state.ship_lines(order.order_id)
        return f"fabric: order {ref} shipped"

    # --- FashionTrade orders -----------------------------------------------------------

    def fashiontrade_place(self) -> str | None:
        catalog = self.world.catalog
        keys = [v.sku for v in catalog.variants] + [b.sku for b in catalog.bundles]
        keys += [p.code for p in catalog.prepacks]
        picked = self.rng.sample(keys, min(len(keys), self.rng.randint(1, 3)))
        specs: list[LineSpec] = [(key, self.rng.randint(1, 3)) for key in picked]
        order = self.world.fashiontrade.place_order(specs)
        return f"fashiontrade: order {order.order_number} placed {picked}"

    def fashiontrade_advance(self) -> str | None:
        """Move reserving lines forward (never back): one line, or every open line."""
        state = self.world.fashiontrade
        live = [
            o
            for o in state.orders.values()
            if any(line.status in FASHIONTRADE_RESERVING for line in o.lines)
        ]
        if not live:
            return None
        order = self.rng.choice(live)
        status = self.rng.choice(FT_NEXT)
        lines = [line for line in order.lines if line.status in FASHIONTRADE_RESERVING]
        if len(lines) > 1 and self.rng.random() < 0.4:
            lines = [self.rng.choice(lines)]
        lines = [line for line in lines if FT_RANK[status] > FT_RANK[line.status]]
        if not lines:
            return None
        whole = len(lines) == sum(
            1 for line in order.lines if line.status in FASHIONTRADE_RESERVING
        )
        if status == "SHIPPED":
            units = self._fashiontrade_units(order.order_number, {line.line_id for line in lines})
            if not self._warehouse_ship(order.order_number, units, whole=whole):
                return None
        if status == "REJECTED" and whole:
            self._warehouse_cancel(order.order_number)
        for line in lines:
            state.set_line_status(order.order_number, line.line_id, status)
        which = "all open lines" if whole else f"line(s) {[line.line_id for line in lines]}"
        return f"fashiontrade: order {order.order_number} {which} -> {status}"

    def _fashiontrade_units(self, number: str, line_ids: set[str] | None = None) -> dict[str, int]:
        """Units per SKU of an order's reserving lines (all, or only ``line_ids``)."""
        catalog = self.world.catalog
        by_barcode = {v.barcode: v.sku for v in catalog.variants}
        by_barcode |= {b.barcode: b.sku for b in catalog.bundles}
        prepacks = {p.barcode: p for p in catalog.prepacks}
        units: dict[str, int] = {}
        for line in self.world.fashiontrade.order(number).lines:
            if line.status not in FASHIONTRADE_RESERVING:
                continue
            if line_ids is not None and line.line_id not in line_ids:
                continue
            if line.type == "PREPACK":
                for sku, per_pack in prepacks[line.barcode].lines.items():
                    units[sku] = units.get(sku, 0) + per_pack * line.quantity
            else:
                sku = by_barcode[line.barcode]
                units[sku] = units.get(sku, 0) + line.quantity
        return units

    # --- the warehouse takes orders over ---------------------------------------------

    def handover(self) -> str | None:
        """Active Ants takes a channel order over (its availableStock drops by it)."""
        candidates: list[tuple[str, str, dict[str, int]]] = []
        ankorstore = self.world.ankorstore
        for order in ankorstore.orders():
            if order.status in ANKORSTORE_HOLDING:
                lines = {
                    ankorstore.listings[i.listing_id].sku: i.multiplied_quantity
                    for i in order.items
                }
                candidates.append(("ankorstore", str(order.reference), lines))
        fabric = self.world.fabric
        for fabric_order in fabric.orders.values():
            if fabric_order.status == "open":
                lines = {
                    fabric.items[line.inventory_id].brand_sku: line.quantity_open
                    for line in fabric_order.lines
                    if line.quantity_open
                }
                candidates.append(("fabric", str(fabric_order.order_id), lines))
        for ft_order in self.world.fashiontrade.orders.values():
            lines = self._fashiontrade_units(ft_order.order_number)
            if lines:
                candidates.append(("fashiontrade", ft_order.order_number, lines))
        warehouse = self.world.activeants
        stocked = {p.brand_sku for p in warehouse.products.values()}
        eligible = [
            c for c in candidates if c[1] not in warehouse.orders and c[2] and set(c[2]) <= stocked
        ]
        if not eligible:
            return None
        channel, ref, lines = self.rng.choice(eligible)
        warehouse.add_order(ref, lines, channel=channel)
        return f"activeants: took over {channel} order {ref} {lines}"

    def _warehouse_ship(self, ref: str, lines: dict[str, int], *, whole: bool = True) -> bool:
        """Ship from the warehouse: its own order if it holds one, else straight from stock."""
        warehouse = self.world.activeants
        held = warehouse.orders.get(ref)
        if held is not None:
            if not whole:
                return True  # the warehouse ships its order whole, later
            if held.status != "open":
                return True
            try:
                warehouse.ship_order(ref)
            except ValueError:
                return False
            return True
        if self.rng.random() < UNTRACKED_SHIPMENT:
            return True
        stocked = {p.brand_sku for p in warehouse.products.values()}
        for sku, units in lines.items():
            if sku in stocked and warehouse.product(sku).available >= units:
                warehouse.move_stock(sku, -units)
        return True

    def _warehouse_cancel(self, ref: str) -> None:
        held = self.world.activeants.orders.get(ref)
        if held is not None and held.status == "open":
            self.world.activeants.cancel_order(ref)

    # --- credentials -------------------------------------------------------------------

    def revoke(self) -> str:
        api = self.rng.choice(("ankorstore", "activeants", "fabric", "fashiontrade"))
        if api == "ankorstore":
            revoked = self.world.ankorstore.revoke_tokens()
        elif api == "activeants":
            revoked = self.world.activeants.revoke_tokens()
        elif api == "fabric":
            revoked = self.world.fabric.revoke_tokens()
        else:
            revoked = self.world.fashiontrade.revoke_tokens()
            self.fashiontrade_key_revoked = True
        return f"{api}: {revoked} credential(s) revoked"

    def restore_fashiontrade_key(self) -> str | None:
        if not self.fashiontrade_key_revoked:
            return None
        self.world.fashiontrade.restore_key()
        self.fashiontrade_key_revoked = False
        return "fashiontrade: API key restored"
