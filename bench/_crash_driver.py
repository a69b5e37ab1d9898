"""Heavy, seeded change against the sandbox simulators, for `bench/crash`.

The driver plays the world around syncd: the warehouses move stock and the
channels take orders, and every order goes through the warehouse the way a
brand's orders do. It acts only through the simulators' own state methods
(the same ones the admin routes call), never through syncd.

What one :meth:`Driver.step` can do (weights in :data:`WEIGHTS`):

- **Active Ants**: set a product's ``availableStock`` to a new level, or
  receive goods (physical stock up).
- **ASTRAL**: receive batches, count a variant (snapshot), book a loss or a
  find, damage batches, reserve batches and later ship or release them.
- **Orders** on Ankorstore, fabric and FashionTrade (an order source, not a
  channel), for SKUs the brand's warehouse (Active Ants, where
  ``fulfilled_from`` points) stocks -- singles, bundles whose every
  component is stocked there, and prepacks. An open order then moves on:

  * *handover*: Active Ants takes the order over (``externalOrderNumber`` =
    the channel's order ref, ``[handover] match = "external_reference"``);
    its units leave Active Ants' available stock. Only done when the
    warehouse has the units, so available stock never goes negative
    (syncd skips a negative figure, which would make the expected value
    ambiguous);
  * *ship* (only after handover, since goods leave a warehouse): Active Ants
    ships, then the channel marks the order shipped;
  * *cancel*: the channel cancels; a handed-over order is cancelled at
    Active Ants in the same step;
  * Ankorstore orders may also just be accepted (``brand_confirmed``),
    FashionTrade orders confirmed.

Each step draws from the driver's own ``random.Random``, so a seed fixes
the stream of attempted changes. The world they produce can still differ
between runs of one seed: Ankorstore and fabric refuse an order larger than
the stock they show, and what they show is what syncd pushed, when it
pushed it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.sandbox.ankorstore_orders import OrderError
from syncd.sandbox.astral_ledger import InsufficientStock
from syncd.sandbox.catalog import SandboxCatalog, bundle_components_closure
from syncd.sandbox.world import SandboxWorld

WEIGHTS: dict[str, float] = {
    "aa_set_stock": 3.0,
    "aa_receive": 1.0,
    "astral_receive": 1.0,
    "astral_snapshot": 0.7,
    "astral_adjust": 0.7,
    "astral_damage": 0.3,
    "astral_reserve": 0.5,
    "astral_ship_or_release": 0.5,
    "ankorstore_place": 1.5,
    "fabric_place": 1.5,
    "fashiontrade_place": 0.7,
    "advance_order": 4.0,
}
MAX_OPEN_ORDERS = 40
"""Placing stops while this many orders are open; advancing catches up."""


@dataclass(slots=True)
class OpenOrder:
    """A channel order the driver still has to ship or cancel."""

    channel: str
    ref: str
    """The channel's order ref: what syncd reserves under and the warehouse's externalOrderNumber."""
    sim_id: str
    """The simulator's handle for it (Ankorstore order id, fabric order id, FashionTrade number)."""
    units: dict[str, int]
    """Units per single brand SKU (bundles and prepacks expanded): what the warehouse ships."""
    ordered: dict[str, int]
    """What the retailer ordered: quantity per SKU, bundle or prepack (packs on Ankorstore)."""
    handed_over: bool = False

    def describe(self) -> str:
        ordered = ",".join(f"{key}x{quantity}" for key, quantity in sorted(self.ordered.items()))
        units = " ".join(f"{sku}:{units}" for sku, units in sorted(self.units.items()))
        return f"{self.ref} [{ordered}] {units}"


@dataclass(slots=True)
class Tally:
    """What the driver did, by kind (attempts that were impossible are not counted)."""

    done: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str) -> None:
        self.done[kind] = self.done.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.done.values())


class Driver:
    """Seeded random change against one :class:`SandboxWorld` (see the module docstring)."""

    def __init__(self, world: SandboxWorld, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.tally = Tally()
        self.open: list[OpenOrder] = []
        catalog = world.catalog
        self.aa_skus = sorted(v.sku for v in catalog.variants if v.at_activeants)
        self.astral_skus = sorted(v.sku for v in catalog.variants if v.at_astral)
        stocked = set(self.aa_skus)
        self._leaves = {
            sku: _leaves(catalog, sku) for sku in (*self.aa_skus, *_bundle_skus(catalog))
        }
        orderable = {sku for sku, leaves in self._leaves.items() if set(leaves) <= stocked}
        self.orderable = {
            channel: sorted(sku for sku in catalog.published(channel) if sku in orderable)
            for channel in ("ankorstore", "fabric")
        }
        self.orderable["fashiontrade"] = sorted(orderable)
        self.prepacks = [p for p in catalog.prepacks if set(p.lines) <= stocked]
        self._actions: dict[str, Callable[[], str | None]] = {
            "aa_set_stock": self._aa_set_stock,
            "aa_receive": self._aa_receive,
            "astral_receive": self._astral_receive,
            "astral_snapshot": self._astral_snapshot,
            "astral_adjust": self._astral_adjust,
            "astral_damage": self._astral_damage,
            "astral_reserve": self._astral_reserve,
            "astral_ship_or_release": self._astral_ship_or_release,
            "ankorstore_place": self._ankorstore_place,
            "fabric_place": self._fabric_place,
            "fashiontrade_place": self._fashiontrade_place,
            "advance_order": self._advance_order,
        }
        self._names = list(WEIGHTS)
        self._weights = [WEIGHTS[name] for name in self._names]

    def step(self) -> str | None:
        """Attempt one random change; ``"<kind> <detail>"``, or None when it was not possible now."""
        name = self.rng.choices(self._names, self._weights)[0]
        done = self._actions[name]()
        if done is not None:
            self.tally.add(done.split(" ", 1)[0])
        return done

    # --- Active Ants --------------------------------------------------------------------

    def _aa_set_stock(self) -> str | None:
        if not self.aa_skus:
            return None
        sku = self.rng.choice(self.aa_skus)
        level = self.rng.choice((0, self.rng.randint(1, 10), self.rng.randint(10, 300)))
        self.world.activeants.set_stock(sku, level)
        return f"aa_set_stock {sku}={level}"

    def _aa_receive(self) -> str | None:
        if not self.aa_skus:
            return None
        sku, units = self.rng.choice(self.aa_skus), self.rng.randint(1, 40)
        self.world.activeants.move_stock(sku, units)
        return f"aa_receive {sku}+{units}"

    # --- ASTRAL -------------------------------------------------------------------------

    def _astral_sku(self) -> str | None:
        return self.rng.choice(self.astral_skus) if self.astral_skus else None

    def _astral_receive(self) -> str | None:
        sku = self._astral_sku()
        if sku is None:
            return None
        batches = self.rng.randint(1, 20)
        self.world.ankorstore.astral.receive(sku, batches)
        return f"astral_receive {sku}+{batches}b"

    def _astral_snapshot(self) -> str | None:
        sku = self._astral_sku()
        if sku is None:
            return None
        # A count of the lot-less stock: the difference is booked against void.
        batches = self.rng.randint(0, 60)
        done = self.world.ankorstore.astral.snapshot(sku, batches)
        return f"astral_snapshot {sku}={batches}b" if done is not None else None

    def _astral_adjust(self) -> str | None:
        sku = self._astral_sku()
        if sku is None:
            return None
        delta = self.rng.choice((-1, 1)) * self.rng.randint(1, 10)
        try:
            self.world.ankorstore.astral.adjust(sku, delta)
        except InsufficientStock:
            return None
        return f"astral_adjust {sku}{delta:+d}b"

    def _astral_damage(self) -> str | None:
        sku = self._astral_sku()
        if sku is None:
            return None
        try:
            batches = self.rng.randint(1, 3)
            self.world.ankorstore.astral.damage(sku, batches)
        except InsufficientStock:
            return None
        return f"astral_damage {sku}-{batches}b"

    def _astral_reserve(self) -> str | None:
        sku = self._astral_sku()
        if sku is None:
            return None
        try:
            batches = self.rng.randint(1, 5)
            self.world.ankorstore.astral.reserve(sku, batches)
        except InsufficientStock:
            return None
        return f"astral_reserve {sku}-{batches}b"

    def _astral_ship_or_release(self) -> str | None:
        sku = self._astral_sku()
        if sku is None:
            return None
        astral = self.world.ankorstore.astral
        reserved = astral.balance(sku, "reserved")
        if reserved < 1:
            return None
        batches = self.rng.randint(1, reserved)
        if self.rng.random() < 0.6:
            astral.ship(sku, batches)
            return f"astral_ship {sku} {batches}b"
        astral.release(sku, batches)
        return f"astral_release {sku}+{batches}b"

    # --- placing orders -----------------------------------------------------------------

    def _pick_lines(self, channel: str) -> dict[str, int] | None:
        skus = self.orderable[channel]
        if not skus or len(self.open) >= MAX_OPEN_ORDERS:
            return None
        chosen = self.rng.sample(skus, min(len(skus), self.rng.randint(1, 3)))
        return {sku: self.rng.randint(1, 3) for sku in chosen}

    def _units(self, lines: dict[str, int], per_line: Callable[[str], int]) -> dict[str, int]:
        units: dict[str, int] = {}
        for sku, quantity in lines.items():
            for single, per_unit in self._leaves[sku].items():
                units[single] = units.get(single, 0) + quantity * per_line(sku) * per_unit
        return units

    def _ankorstore_place(self) -> str | None:
        lines = self._pick_lines("ankorstore")
        if lines is None:
            return None
        state = self.world.ankorstore
        try:
            order = state.place_order(lines)
        except OrderError:
            return None  # Ankorstore refuses more than availableQuantity (deny policy)
        units = self._units(lines, lambda sku: state.listing(sku).unit_multiplier)
        placed = OpenOrder("ankorstore", str(order.reference), order.id, units, lines)
        self.open.append(placed)
        return f"ankorstore_place {placed.describe()}"

    def _fabric_place(self) -> str | None:
        lines = self._pick_lines("fabric")
        if lines is None:
            return None
        fabric = self.world.fabric
        keyed: dict[str | int, int] = {
            fabric.item(sku).brand_identifier: q for sku, q in lines.items()
        }
        try:
            order = fabric.place_order(keyed)
        except ValueError:
            return None  # fabric only sells what it shows
        ref = str(order.order_id)
        placed = OpenOrder("fabric", ref, ref, self._units(lines, _one), lines)
        self.open.append(placed)
        return f"fabric_place {placed.describe()}"

    def _fashiontrade_place(self) -> str | None:
        if len(self.open) >= MAX_OPEN_ORDERS:
            return None
        if self.prepacks and self.rng.random() < 0.3:
            prepack = self.rng.choice(self.prepacks)
            packs = self.rng.randint(1, 2)
            order = self.world.fashiontrade.place_order([(prepack.code, packs)])
            units = {sku: per_pack * packs for sku, per_pack in prepack.lines.items()}
            lines = {prepack.code: packs}
        else:
            picked = self._pick_lines("fashiontrade")
            if picked is None:
                return None
            order = self.world.fashiontrade.place_order(list(picked.items()))
            units, lines = self._units(picked, _one), picked
        number = order.order_number
        placed = OpenOrder("fashiontrade", number, number, units, lines)
        self.open.append(placed)
        return f"fashiontrade_place {placed.describe()}"

    # --- moving orders on ---------------------------------------------------------------

    def _advance_order(self) -> str | None:
        if not self.open:
            return None
        order = self.rng.choice(self.open)
        roll = self.rng.random()
        if order.handed_over:
            return self._ship(order) if roll < 0.7 else self._cancel(order)
        if roll < 0.55:
            return self._hand_over(order)
        if roll < 0.8:
            return self._cancel(order)
        return self._confirm(order)

    def _hand_over(self, order: OpenOrder) -> str | None:
        activeants = self.world.activeants
        with activeants.lock:
            if any(activeants.product(sku).available < q for sku, q in order.units.items()):
                return None  # not in the warehouse: the order waits
            activeants.add_order(order.ref, order.units, channel=order.channel)
        order.handed_over = True
        return f"{order.channel}_handover {order.describe()}"

    def _ship(self, order: OpenOrder) -> str:
        self.world.activeants.ship_order(order.ref)
        if order.channel == "ankorstore":
            self.world.ankorstore.ship_order(order.sim_id)
        elif order.channel == "fabric":
            self.world.fabric.ship_lines(int(order.sim_id))
        else:
            self.world.fashiontrade.set_order_status(order.sim_id, "SHIPPED")
        self.open.remove(order)
        return f"{order.channel}_ship {order.describe()}"

    def _cancel(self, order: OpenOrder) -> str:
        if order.handed_over:
            self.world.activeants.cancel_order(order.ref)
        if order.channel == "ankorstore":
            self.world.ankorstore.cancel_order(order.sim_id)
        elif order.channel == "fabric":
            self.world.fabric.cancel_lines(int(order.sim_id))
        else:
            self.world.fashiontrade.set_order_status(order.sim_id, "REJECTED")
        self.open.remove(order)
        return f"{order.channel}_cancel {order.describe()}"

    def _confirm(self, order: OpenOrder) -> str | None:
        if order.channel == "ankorstore":
            state = self.world.ankorstore
            if state.order(order.sim_id).status != "ankor_confirmed":
                return None
            state.advance_order(order.sim_id, "brand_confirmed")
            return f"ankorstore_accept {order.describe()}"
        if order.channel == "fashiontrade":
            self.world.fashiontrade.set_order_status(order.sim_id, "CONFIRMED")
            return f"fashiontrade_confirm {order.describe()}"
        return None


def _one(_sku: str) -> int:
    return 1


def _bundle_skus(catalog: SandboxCatalog) -> list[str]:
    return [b.sku for b in catalog.bundles]


def _leaves(catalog: SandboxCatalog, sku: str) -> dict[str, int]:
    """Units of each single SKU in one unit of ``sku`` (a single is its own leaf)."""
    units: dict[str, int] = {}
    for single, per_unit in bundle_components_closure(catalog, sku):
        units[single] = units.get(single, 0) + per_unit
    return units
