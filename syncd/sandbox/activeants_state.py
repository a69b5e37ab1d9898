"""The Active Ants warehouse the ShopApi simulator serves (seed 001).

Quantities per product, in units. The seed defines only ``availableStock``
by formula (L2743); the other identities are the simulator's choice, made
consistent so a client can check them (seed brief §3.0):

- ``physical``: every unit on hand; the lot list sums to it (L2914).
- ``ordered``: units allocated to open orders the warehouse holds.
- ``unavailable``: blocked/damaged units (part of physical, never free).
- ``excluded``: units on locations excluded from fulfilment (free, not available).
- ``expected``: inbound on open purchase orders (not on hand).

  freeStock      = physical - ordered - unavailable
  availableStock = freeStock - excluded                  (L2743)
  economicStock  = freeStock + expected
  stock          = economic if useEconomicStock else free      (v2/stock/bulk, L2910;
                   stock/get/:sku, L2648) or ... else available (stock/bulk/:all, L2715)

So ``available <= free <= physical`` while no order exceeds the stock on
hand. The warehouse accepts backorders (``partialDelivery``, L461), so
free and available go negative when held orders exceed the stock: that is
what the real figures can do too, and clients must clamp.

Every change stamps the product's *stock mutation time* (the cursor of
``v2/stock/bulk?from=``, L2874-2893) and sets its "needs to be synched"
flag (``stock/bulk/:all``, L2685). Order allocation and shipment stamp it
too (``orders_bump_mutation_time``); the seed leaves that open (brief A3).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from syncd.sandbox.catalog import SandboxCatalog
from syncd.sandbox.limits import SimClock
from syncd.sandbox.simkit import Counters, TokenStore, iso_utc

DEFAULT_USERNAME = "shopapi-user"
DEFAULT_PASSWORD = "your-secret-is-safe"  # the seed's own sample (L84)  # noqa: S105
TOKEN_LIFETIME = 56_499
"""``expires_in`` of the seed's token sample (L93)."""
DEFAULT_RATE_LIMIT = 120
"""Requests per minute. The seed gives no number (brief §5.1); a conservative default."""


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


@dataclass(slots=True)
class AALot:
    number: str
    tht: str | None
    """Best-before date (ISO date) or None."""
    quantity: int


@dataclass(slots=True)
class AAProduct:
    sku: str
    """The SKU as Active Ants knows it (``activeants_sku``)."""
    brand_sku: str
    name: str
    product_id: int
    use_economic_stock: bool
    physical: int
    unavailable: int
    excluded: int
    expected: int
    lots: list[AALot]
    mutated_us: int
    ordered: int = 0
    needs_sync: bool = True

    @property
    def free(self) -> int:
        return self.physical - self.ordered - self.unavailable

    @property
    def available(self) -> int:
        return self.free - self.excluded

    @property
    def economic(self) -> int:
        return self.free + self.expected

    def set_physical(self, physical: int) -> None:
        """Change physical stock, keeping the lots summing to it (FIFO by best-before)."""
        if physical < 0:
            raise ValueError(f"{self.sku}: physical stock cannot go below zero")
        delta = physical - self.physical
        self.physical = physical
        if not self.lots:
            return
        if delta > 0:
            self.lots[-1].quantity += delta
            return
        remaining = -delta
        for lot in sorted(self.lots, key=lambda lot: lot.tht or "9999"):
            take = min(lot.quantity, remaining)
            lot.quantity -= take
            remaining -= take

    def to_json(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "brandSku": self.brand_sku,
            "productId": self.product_id,
            "useEconomicStock": self.use_economic_stock,
            "physicalStock": self.physical,
            "orderedStock": self.ordered,
            "unavailableStock": self.unavailable,
            "excludedStock": self.excluded,
            "expectedStock": self.expected,
            "freeStock": self.free,
            "availableStock": self.available,
            "economicStock": self.economic,
            "lots": [
                {"lotNumber": lot.number, "tht": lot.tht, "quantity": lot.quantity}
                for lot in self.lots
            ],
            "mutatedAt": iso_utc(self.mutated_us / 1_000_000),
            "needsSync": self.needs_sync,
        }


@dataclass(slots=True)
class AAOrder:
    order_id: int
    external_order_number: str
    lines: dict[str, int]
    """Active Ants SKU -> units."""
    ordered_on: float
    channel: str | None = None
    reference: str | None = None
    on_hold: bool = False
    status: str = "open"
    """``open`` (held, allocated), ``shipped`` or ``cancelled``."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.order_id,
            "externalOrderNumber": self.external_order_number,
            "channel": self.channel,
            "reference": self.reference,
            "onHold": self.on_hold,
            "status": self.status,
            "orderedOn": iso_utc(self.ordered_on),
            "lines": dict(self.lines),
        }


class ActiveAntsState:
    """The warehouse, its orders and its API credentials. Thread-safe."""

    def __init__(
        self,
        catalog: SandboxCatalog,
        *,
        username: str = DEFAULT_USERNAME,
        password: str = DEFAULT_PASSWORD,
        token_lifetime: int = TOKEN_LIFETIME,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        clock: SimClock | None = None,
        orders_bump_mutation_time: bool = True,
    ) -> None:
        self.clock = clock or SimClock()
        self.username = username
        self.password = password
        self.rate_limit = rate_limit
        self.orders_bump_mutation_time = orders_bump_mutation_time
        self.tokens = TokenStore(self.clock, token_lifetime)
        self.counters = Counters()
        self.lock = threading.RLock()
        self.products: dict[str, AAProduct] = {}
        self.orders: dict[str, AAOrder] = {}
        self._brand_to_aa: dict[str, str] = {}
        self.listed_twice: dict[str, int] = {}
        """Active Ants SKU -> how many units more than the truth a faulty bulk read's
        second entry for it shows (see :meth:`list_twice`)."""
        self._next_order_id = 470_345_326  # the seed's sample order id (L881)
        self._seed(catalog)

    def _seed(self, catalog: SandboxCatalog) -> None:
        # Not for security: seeded so every sandbox run starts identical.
        rng = random.Random(catalog.seed * 7919 + 1)  # noqa: S311
        # Seeded mutation times lie two days back: outside the default
        # one-day window of v2/stock/bulk without parameters (L2857).
        start = _us(self.clock.now() - 2 * 86_400)
        for index, variant in enumerate(catalog.variants):
            if not variant.at_activeants:
                continue
            excluded = rng.choice((0, 0, 0, rng.randint(1, 5)))
            unavailable = rng.choice((0, 0, 0, rng.randint(1, 3)))
            physical = variant.activeants_stock + excluded + unavailable
            lots = [AALot(lot.number, lot.expiry, 0) for lot in variant.lots]
            if lots:
                share, rest = divmod(physical, len(lots))
                for position, lot in enumerate(lots):
                    lot.quantity = share + (rest if position == 0 else 0)
            self.products[variant.activeants_sku] = AAProduct(
                sku=variant.activeants_sku,
                brand_sku=variant.sku,
                name=f"Product {variant.sku}",
                product_id=1_326_169 + index,  # product/add sample id (L2433)
                use_economic_stock=rng.random() < 0.2,
                physical=physical,
                unavailable=unavailable,
                excluded=excluded,
                expected=rng.choice((0, 0, rng.randint(5, 50))),
                lots=lots,
                mutated_us=start,
            )
            self._brand_to_aa[variant.sku] = variant.activeants_sku

    # --- lookups -------------------------------------------------------------

    def product(self, sku: str) -> AAProduct:
        """A product by Active Ants SKU or by brand SKU; KeyError if neither."""
        with self.lock:
            found = self.products.get(sku) or self.products.get(self._brand_to_aa.get(sku, ""))
            if found is None:
                raise KeyError(f"unknown sku {sku!r}")
            return found

    def now_us(self) -> int:
        return _us(self.clock.now())

    def _touch(self, product: AAProduct) -> None:
        product.mutated_us = max(product.mutated_us, self.now_us())
        product.needs_sync = True

    # --- stock -----------------------------------------------------------------

    def set_stock(self, sku: str, available: int) -> AAProduct:
        """Make ``availableStock`` equal ``available`` by changing physical stock."""
        if available < 0:
            raise ValueError("available stock to set must be >= 0")
        with self.lock:
            product = self.product(sku)
            product.set_physical(
                available + product.ordered + product.unavailable + product.excluded
            )
            self._touch(product)
            return product

    def list_twice(self, sku: str, extra: int | None) -> None:
        """Make every bulk read that lists ``sku`` list it twice: first a copy showing
        ``extra`` units more than the truth (a stale, larger figure), then the real entry;
        ``None`` stops it. A fault for tests: the seed documents one entry per product
        (seed 001 L2895-2900)."""
        with self.lock:
            key = self.product(sku).sku
            if extra is None:
                self.listed_twice.pop(key, None)
            else:
                self.listed_twice[key] = extra

    def move_stock(self, sku: str, delta: int) -> AAProduct:
        """Receive (``delta > 0``) or correct away (``delta < 0``) physical units."""
        with self.lock:
            product = self.product(sku)
            product.set_physical(product.physical + delta)
            self._touch(product)
            return product

    def set_levels(
        self,
        sku: str,
        *,
        unavailable: int | None = None,
        excluded: int | None = None,
        expected: int | None = None,
    ) -> AAProduct:
        """Change the non-physical figures (blocked, excluded locations, inbound)."""
        with self.lock:
            product = self.product(sku)
            for name, value in (
                ("unavailable", unavailable),
                ("excluded", excluded),
                ("expected", expected),
            ):
                if value is not None:
                    if value < 0:
                        raise ValueError(f"{name} must be >= 0")
                    setattr(product, name, value)
            self._touch(product)
            return product

    # --- orders ----------------------------------------------------------------

    def add_order(
        self,
        external_order_number: str,
        lines: dict[str, int],
        *,
        channel: str | None = None,
        reference: str | None = None,
        on_hold: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> AAOrder:
        """The warehouse takes an order over: its units leave free and available stock."""
        if not external_order_number:
            raise ValueError("externalOrderNumber is required")
        if not lines:
            raise ValueError("an order needs at least one line")
        with self.lock:
            if external_order_number in self.orders:
                raise ValueError(f"order {external_order_number!r} already exists")
            resolved: dict[str, int] = {}
            for sku, quantity in lines.items():
                if quantity <= 0:
                    raise ValueError(f"quantity for {sku!r} must be > 0")
                aa_sku = self.product(sku).sku
                resolved[aa_sku] = resolved.get(aa_sku, 0) + quantity
            order = AAOrder(
                order_id=self._next_order_id,
                external_order_number=external_order_number,
                lines=resolved,
                ordered_on=self.clock.now(),
                channel=channel,
                reference=reference,
                on_hold=on_hold,
                extra=dict(extra or {}),
            )
            self._next_order_id += 1
            for aa_sku, quantity in resolved.items():
                product = self.products[aa_sku]
                product.ordered += quantity
                if self.orders_bump_mutation_time:
                    self._touch(product)
            self.orders[external_order_number] = order
            return order

    def ship_order(self, external_order_number: str) -> AAOrder:
        """Ship a held order whole: physical stock decreases, free stock does not move."""
        with self.lock:
            order = self._open_order(external_order_number)
            for aa_sku, quantity in order.lines.items():
                if self.products[aa_sku].physical < quantity:
                    raise ValueError(f"not enough physical stock of {aa_sku} to ship")
            for aa_sku, quantity in order.lines.items():
                product = self.products[aa_sku]
                product.ordered -= quantity
                product.set_physical(product.physical - quantity)
                self._touch(product)
            order.status = "shipped"
            return order

    def cancel_order(self, external_order_number: str) -> AAOrder:
        """Cancel a held order: its allocation returns to free stock."""
        with self.lock:
            order = self._open_order(external_order_number)
            for aa_sku, quantity in order.lines.items():
                product = self.products[aa_sku]
                product.ordered -= quantity
                if self.orders_bump_mutation_time:
                    self._touch(product)
            order.status = "cancelled"
            return order

    def _open_order(self, external_order_number: str) -> AAOrder:
        order = self.orders.get(external_order_number)
        if order is None:
            raise KeyError(f"unknown order {external_order_number!r}")
        if order.status != "open":
            raise ValueError(f"order {external_order_number!r} is already {order.status}")
        return order

    # --- credentials -----------------------------------------------------------

    def revoke_tokens(self) -> int:
        """Invalidate every token (seed L28: "intrusion detection")."""
        return self.tokens.revoke_all()

    # --- admin view ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "api": "activeants",
                "now": iso_utc(self.clock.now()),
                "rateLimitPerMinute": self.rate_limit,
                "liveTokens": self.tokens.live(),
                "tokensIssued": self.tokens.issued,
                "products": {sku: p.to_json() for sku, p in sorted(self.products.items())},
                "orders": {ref: o.to_json() for ref, o in sorted(self.orders.items())},
                "counters": self.counters.snapshot(),
            }
