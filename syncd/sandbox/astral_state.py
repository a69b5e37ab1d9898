"""The simulated ASTRAL warehouse: catalog stock and the movements that change it.

The movement methods (:meth:`AstralState.receive`, ``reserve``, ``ship``,
...) are what tests, the demo and the admin route use to make stock move;
each records one zero-sum transaction in the :class:`AstralLedger`. Each can
be given an older ``created_at`` to record a *late* transaction: it sorts
before transactions a client may already have read, which is exactly the
case a cursor-following client misses and must reconcile (brief seed-astral
5.3, A14).

Decisions where the seed is silent:

- a reservation needs ``available >= requested`` (L13161 says "higher than";
  brief A6 -- the newer spec even allows going negative);
- without a lot number, lots are taken earliest expiry first, lots without
  expiry last (FEFO, L13121);
- a shipment moves ``reserved`` to ``void``; snapshots and adjustments move
  between ``void`` and ``available``; goods never announced as ``incoming``
  arrive from ``void``;
- opening stock is one ``snapshot`` transaction per variant, a day before
  the simulator starts, split evenly over the variant's lots;
- bundles (L13111-13115, L13163-13171) exist in ASTRAL only when every
  component is stocked there and each component's units per bundle is a
  whole number of its batches; their state is min over components of
  floor(component batches / batches per bundle), per location and status.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from syncd.sandbox.astral_ledger import (
    LOCATION_STATUSES,
    MOVEMENT_TYPES,
    ON_HAND,
    AstralLedger,
    AstralTransaction,
    AstralVariant,
    InsufficientStock,
    Leg,
    LotKey,
    SimLocation,
)
from syncd.sandbox.catalog import SandboxCatalog, bundle_components_closure
from syncd.sandbox.limits import SimClock


class AstralState(AstralLedger):
    """One brand's ASTRAL stock: a warehouse and a brand location, seeded from the catalog."""

    def __init__(self, catalog: SandboxCatalog, *, clock: SimClock | None = None) -> None:
        super().__init__(clock or SimClock(), seed=catalog.seed)
        self.brand_uuid = self._uuid5("brand")
        self.warehouse = SimLocation(
            catalog.astral_location_id, "warehouse", self._uuid5("warehouse")
        )
        self.brand_location = SimLocation(self._uuid5("brand-location"), "brand", self.brand_uuid)
        self.locations = [self.warehouse, self.brand_location]
        self._by_sku: dict[str, str] = {}
        self.bundles: dict[str, dict[str, int]] = {}
        """Bundle id -> {component variant id: batches per bundle}."""
        self.bundle_skus: dict[str, str] = {}
        self._load(catalog)

    @staticmethod
    def _uuid5(name: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"astral-sim/{name}"))

    def _load(self, catalog: SandboxCatalog) -> None:
        start = self.clock.now() - 86_400
        for v in catalog.variants:
            if not v.at_astral:
                continue
            lots = [(lot.number, lot.expiry or "") for lot in v.lots]
            self.variants[v.astral_variant_id] = AstralVariant(
                v.astral_variant_id, v.sku, v.astral_unit_multiplier, lots
            )
            self._by_sku[v.sku] = v.astral_variant_id
        for bundle in catalog.bundles:
            components: dict[str, int] = {}
            for sku, units in bundle_components_closure(catalog, bundle.sku):
                variant_id = self._by_sku.get(sku)
                if variant_id is None:
                    break
                multiplier = self.variants[variant_id].unit_multiplier
                if units % multiplier:
                    break
                components[variant_id] = components.get(variant_id, 0) + units // multiplier
            else:
                bundle_id = self._uuid5(f"bundle/{bundle.sku}")
                self.bundles[bundle_id] = components
                self.bundle_skus[bundle_id] = bundle.sku
        # Opening stock: one snapshot transaction per variant, a day ago.
        for v in catalog.variants:
            if v.at_astral and v.astral_batches > 0:
                lots = [(lot.number, lot.expiry or "") for lot in v.lots] or [("", "")]
                share, rest = divmod(v.astral_batches, len(lots))
                legs = []
                for index, lot in enumerate(lots):
                    quantity = share + (rest if index == 0 else 0)
                    if quantity:
                        legs += self._pair("void", "available", v.astral_variant_id, quantity, lot)
                self._record(
                    "snapshot",
                    legs,
                    related_id=self._uuid5(f"opening/{v.sku}"),
                    metadata={"reason": "opening stock"},
                    created_at=start,
                )

    def variant_id(self, key: str) -> str:
        """An ASTRAL product-variant id from a brand SKU or the id itself."""
        if key in self.variants or key in self.bundles:
            return key
        try:
            return self._by_sku[key]
        except KeyError:
            for bundle_id, sku in self.bundle_skus.items():
                if sku == key:
                    return bundle_id
            raise KeyError(f"no ASTRAL variant {key!r}") from None

    def balance(self, key: str, status: str = "available", *, lot: LotKey | None = None) -> int:
        """Batches of ``key`` in ``status`` at the warehouse (all lots unless ``lot``)."""
        variant_id = self.variant_id(key)
        with self.lock:
            return sum(
                qty
                for (loc, st, vid, lk), qty in self._balances.items()
                if vid == variant_id
                and st == status
                and loc == self.warehouse.id
                and (lot is None or lk == lot)
            )

    def _pair(
        self, source: str, target: str, variant_id: str, quantity: int, lot: LotKey
    ) -> list[Leg]:
        loc = self.warehouse.id
        return [
            Leg(source, variant_id, -quantity, lot, loc),
            Leg(target, variant_id, quantity, lot, loc),
        ]

    def _take(
        self, variant_id: str, status: str, batches: int, lot: LotKey | None
    ) -> list[tuple[LotKey, int]]:
        """Which lots supply ``batches`` from ``status``: the named lot, else FEFO (L13121)."""
        if batches < 1:
            raise ValueError("a movement moves at least one batch")
        held = {
            lk: qty
            for (loc, st, vid, lk), qty in self._balances.items()
            if vid == variant_id and st == status and loc == self.warehouse.id and qty > 0
        }
        if lot is not None:
            held = {lot: held.get(lot, 0)}
        if sum(held.values()) < batches:
            raise InsufficientStock(
                f"{variant_id}: {batches} batches asked from {status}, {sum(held.values())} held"
            )
        # Earliest expiry first; stock without an expiry date last.
        order = sorted(held, key=lambda lk: (lk[1] == "", lk[1], lk[0]))
        taken: list[tuple[LotKey, int]] = []
        remaining = batches
        for lk in order:
            step = min(remaining, held[lk])
            if step:
                taken.append((lk, step))
                remaining -= step
        return taken

    def move(
        self,
        key: str,
        source: str,
        target: str,
        batches: int,
        movement: str,
        *,
        lot: LotKey | None = None,
        related_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        created_at: float | None = None,
        check_source: bool = True,
    ) -> AstralTransaction:
        """Move ``batches`` between two statuses at the warehouse in one transaction."""
        if source not in LOCATION_STATUSES or target not in LOCATION_STATUSES:
            raise ValueError(f"unknown location status {source!r} or {target!r}")
        if movement not in MOVEMENT_TYPES:
            raise ValueError(f"unknown movement type {movement!r}")
        variant_id = self.variant_id(key)
        if variant_id in self.bundles:
            raise ValueError("postings are only ever for single variants (L13165)")
        with self.lock:
            if check_source and source != "void":
                parts = self._take(variant_id, source, batches, lot)
            else:
                parts = [(lot or ("", ""), batches)]
            legs = [
                leg for lk, qty in parts for leg in self._pair(source, target, variant_id, qty, lk)
            ]
            return self._record(
                movement, legs, related_id=related_id, metadata=metadata, created_at=created_at
            )

    def expect(
        self, key: str, batches: int, *, lot: LotKey | None = None, created_at: float | None = None
    ) -> AstralTransaction:
        """A replenishment is announced: void -> incoming."""
        return self.move(
            key, "void", "incoming", batches, "replenishment", lot=lot, created_at=created_at
        )

    def receive(
        self, key: str, batches: int, *, lot: LotKey | None = None, created_at: float | None = None
    ) -> AstralTransaction:
        """Goods arrive: incoming -> available; what was never announced comes from void."""
        variant_id = self.variant_id(key)
        with self.lock:
            incoming = sum(
                qty
                for (loc, st, vid, _), qty in self._balances.items()
                if vid == variant_id and st == "incoming" and loc == self.warehouse.id and qty > 0
            )
            from_incoming = min(incoming, batches)
            legs: list[Leg] = []
            if from_incoming:
                for lk, qty in self._take(variant_id, "incoming", from_incoming, None):
                    legs.append(Leg("incoming", variant_id, -qty, lk, self.warehouse.id))
            if batches > from_incoming:
                legs.append(
                    Leg("void", variant_id, -(batches - from_incoming), ("", ""), self.warehouse.id)
                )
            legs.append(Leg("available", variant_id, batches, lot or ("", ""), self.warehouse.id))
            return self._record("replenishment", legs, related_id=None, created_at=created_at)

    def reserve(
        self,
        key: str,
        batches: int,
        *,
        related_id: str | None = None,
        lot: LotKey | None = None,
        created_at: float | None = None,
    ) -> AstralTransaction:
        """available -> reserved at the same location (L13159-13161)."""
        return self.move(
            key,
            "available",
            "reserved",
            batches,
            "order_reserved",
            lot=lot,
            related_id=related_id,
            created_at=created_at,
        )

    def release(
        self,
        key: str,
        batches: int,
        *,
        related_id: str | None = None,
        created_at: float | None = None,
    ) -> AstralTransaction:
        """A reservation is cancelled: reserved -> available."""
        return self.move(
            key,
            "reserved",
            "available",
            batches,
            "order_cancelled",
            related_id=related_id,
            created_at=created_at,
        )

    def ship(
        self,
        key: str,
        batches: int,
        *,
        related_id: str | None = None,
        created_at: float | None = None,
    ) -> AstralTransaction:
        """A reserved order leaves the warehouse: reserved -> void."""
        return self.move(
            key,
            "reserved",
            "void",
            batches,
            "order_shipped",
            related_id=related_id,
            created_at=created_at,
        )

    def damage(
        self, key: str, batches: int, *, created_at: float | None = None
    ) -> AstralTransaction:
        """available -> damaged."""
        return self.move(key, "available", "damaged", batches, "broken", created_at=created_at)

    def expire(
        self, key: str, batches: int, *, lot: LotKey | None = None, created_at: float | None = None
    ) -> AstralTransaction:
        """available -> blocked ("For example: expired", L13155)."""
        return self.move(
            key, "available", "blocked", batches, "expired", lot=lot, created_at=created_at
        )

    def adjust(
        self, key: str, delta: int, *, lot: LotKey | None = None, created_at: float | None = None
    ) -> AstralTransaction:
        """An unexplained change of available stock, booked against void."""
        if delta > 0:
            return self.move(
                key, "void", "available", delta, "found", lot=lot, created_at=created_at
            )
        return self.move(key, "available", "void", -delta, "lost", lot=lot, created_at=created_at)

    def snapshot(
        self, key: str, batches: int, *, lot: LotKey | None = None, created_at: float | None = None
    ) -> AstralTransaction | None:
        """Set available (of one lot) to an absolute count; the difference goes to void."""
        if batches < 0:
            raise ValueError("a count is never negative")
        target = lot or ("", "")
        with self.lock:
            delta = batches - self.balance(key, "available", lot=target)
            if delta == 0:
                return None
            source, dest = ("void", "available") if delta > 0 else ("available", "void")
            return self.move(
                key, source, dest, abs(delta), "snapshot", lot=target, created_at=created_at
            )

    def expand(self, variant_ids: Iterable[str]) -> set[str]:
        """Bundle ids become their single components (L13165)."""
        out: set[str] = set()
        for variant_id in variant_ids:
            out |= set(self.bundles.get(variant_id, {variant_id: 1}))
        return out

    def bundle_balances(
        self, bundle_id: str, *, until: float | None = None
    ) -> dict[tuple[str, str], int]:
        """(location, status) -> complete bundles: min over components of floor(qty / per bundle).

        ``onHand`` is summed per component before dividing (L13151, L13171).
        """
        per_component = []
        for component, per_bundle in self.bundles[bundle_id].items():
            summed: dict[tuple[str, str], int] = {}
            for (loc, st, _), qty in self.single_balances(component, until=until).items():
                summed[(loc, st)] = summed.get((loc, st), 0) + qty
                if st in ON_HAND:
                    summed[(loc, "onHand")] = summed.get((loc, "onHand"), 0) + qty
            per_component.append((summed, per_bundle))
        keys: set[tuple[str, str]] = set()
        for summed, _ in per_component:
            keys |= set(summed)
        return {key: min(max(0, s.get(key, 0)) // n for s, n in per_component) for key in keys}

    def summary(self) -> dict[str, Any]:
        """Balances (batches and units) for ``GET /_sandbox/state``."""
        with self.lock:
            rows = []
            for (loc, st, vid, lk), qty in sorted(self._balances.items()):
                if st == "void" or qty == 0:
                    continue
                variant = self.variants[vid]
                rows.append(
                    {
                        "variantId": vid,
                        "sku": variant.sku,
                        "locationId": loc,
                        "status": st,
                        "lotNumber": lk[0] or None,
                        "expiryDate": lk[1] or None,
                        "batches": qty,
                        "unitMultiplier": variant.unit_multiplier,
                        "units": qty * variant.unit_multiplier,
                    }
                )
            return {
                "warehouseId": self.warehouse.id,
                "transactions": len(self._txns),
                "postings": len(self._feed),
                "balances": rows,
            }
