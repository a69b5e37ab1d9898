"""The FashionTrade order book the simulator serves (seed 002).

Wholesale orders placed by retailers with the brand. Each line is either a
``PRODUCT`` line (``barcode`` = the variant's EAN, ``quantity`` in units) or a
``PREPACK`` line (``barcode`` = the prepack's own EAN, ``product_id`` = the
prepack code, ``quantity`` in packs; the composition is not in the API,
seed 002 L481-486, so a client needs the catalog's prepack table).

Line statuses are the seed's enum (L608-615); an order's status is its
lines' common status, or ``MIXED`` when they differ (L698). Nobody moves a
line on their own: the brand does (L1686-1740), here through
:meth:`FashionTradeState.set_line_status` or the documented PUT.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from syncd.sandbox.catalog import SandboxCatalog
from syncd.sandbox.limits import SimClock
from syncd.sandbox.simkit import Counters, iso_utc, iso_utc_ms

LINE_STATUSES = (
    "SUBMITTED",
    "ACKNOWLEDGED",
    "CONFIRMED",
    "SHIPPED",
    "REJECTED",
    "PARTIALLY_SHIPPED",
)
ORDER_STATUSES = (*LINE_STATUSES, "MIXED")
DEFAULT_API_KEY = "ft-sandbox-key"
LineSpec = tuple[str, int] | dict[str, Any]
"""``(sku | variant barcode | prepack code | prepack barcode, quantity)``, or a raw
``{"barcode": ..., "quantity": ..., "type": "PRODUCT"}`` (any barcode, mapped or not)."""


@dataclass(slots=True)
class FTLine:
    line_id: str
    type: str
    barcode: str
    quantity: int
    display_name: str
    status: str = "SUBMITTED"
    product_id: str | None = None
    size: str | None = None
    price_value: int = 2995

    def to_json(self, retailer: str, delivery: tuple[float, float]) -> dict[str, Any]:
        """An ``OrderLine`` (L394-486); ``$ref`` types rebuilt per brief §3.4."""
        line: dict[str, Any] = {
            "barcode": self.barcode,
            "delivery_location": {
                "address": {
                    "address_line1": "Kalverstraat 1",
                    "city": "Amsterdam",
                    "country": "NL",
                    "zipcode": "1012 NX",
                },
                "name": retailer,
            },
            "delivery_window": {
                "start_date": iso_utc(delivery[0]),
                "end_date": iso_utc(delivery[1]),
            },
            "display_name": self.display_name,
            "line_id": self.line_id,
            "metadata": {"external_order_ids": []},
            "price": {"currency": "EUR", "discounts": [], "value": self.price_value},
            "quantity": self.quantity,
            "shop_location": {"name": retailer},
            "status": self.status,
            "type": self.type,
        }
        if self.product_id is not None:
            line["product_id"] = self.product_id
        if self.size is not None:
            line["size"] = self.size
        return line


@dataclass(slots=True)
class FTOrder:
    order_number: str
    created_us: int
    """Creation time in microseconds, on a whole millisecond (what ``order_date`` shows)."""
    retailer_name: str
    lines: list[FTLine]
    delivery: tuple[float, float]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        statuses = {line.status for line in self.lines}
        return statuses.pop() if len(statuses) == 1 else "MIXED"

    @property
    def order_date(self) -> str:
        return iso_utc_ms(self.created_us / 1_000_000)

    def overview(self) -> dict[str, Any]:
        """``OrderOverviewResponse`` (L670-698)."""
        return {
            "order_date": self.order_date,
            "order_number": self.order_number,
            "retailer_name": self.retailer_name,
            "status": self.status,
        }

    def line(self, line_id: str) -> FTLine:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise KeyError(f"order {self.order_number} has no line {line_id!r}")

    def lines_json(self) -> list[dict[str, Any]]:
        return [line.to_json(self.retailer_name, self.delivery) for line in self.lines]

    def to_json(self) -> dict[str, Any]:
        """``Order`` (L348-392)."""
        return {
            "messages": list(self.messages),
            "order_date": self.order_date,
            "order_lines": self.lines_json(),
            "order_number": self.order_number,
            "retailer": {"name": self.retailer_name, "vat_number": "NL000099998B57"},
            "status": self.status,
        }


class FashionTradeState:
    """Orders and the brand's API key. Thread-safe."""

    def __init__(
        self,
        catalog: SandboxCatalog,
        *,
        api_key: str = DEFAULT_API_KEY,
        rate_limit: int | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.clock = clock or SimClock()
        self.api_key = api_key
        self.key_revoked = False
        self.rate_limit = rate_limit
        self.counters = Counters()
        self.lock = threading.RLock()
        self.orders: dict[str, FTOrder] = {}
        self._numbers = itertools.count(1)
        # Product lines resolve by brand SKU or barcode; prepacks by code or barcode.
        self._products: dict[str, tuple[str, str]] = {}
        self._prepacks: dict[str, tuple[str, str]] = {}
        for variant in catalog.variants:
            entry = (variant.barcode, variant.sku)
            self._products[variant.sku] = self._products[variant.barcode] = entry
        for bundle in catalog.bundles:
            entry = (bundle.barcode, bundle.sku)
            self._products[bundle.sku] = self._products[bundle.barcode] = entry
        for prepack in catalog.prepacks:
            entry = (prepack.barcode, prepack.code)
            self._prepacks[prepack.code] = self._prepacks[prepack.barcode] = entry

    def _line(self, line_id: str, spec: LineSpec) -> FTLine:
        if isinstance(spec, dict):
            barcode, quantity = spec.get("barcode"), spec.get("quantity")
            kind = spec.get("type", "PRODUCT")
            if not isinstance(barcode, str) or not isinstance(quantity, int):
                raise ValueError("a raw line needs a string 'barcode' and an integer 'quantity'")
            if kind not in {"PRODUCT", "PREPACK"}:
                raise ValueError(f"line type must be PRODUCT or PREPACK, not {kind!r}")
            line = FTLine(line_id, kind, barcode, quantity, f"Article {barcode}")
        else:
            key, quantity = spec
            if key in self._prepacks:
                barcode, code = self._prepacks[key]
                line = FTLine(line_id, "PREPACK", barcode, quantity, f"Prepack {code}")
                line.product_id = code
            elif key in self._products:
                barcode, sku = self._products[key]
                line = FTLine(line_id, "PRODUCT", barcode, quantity, f"Product {sku}")
                line.product_id, line.size = sku, "M"
            else:
                raise KeyError(f"unknown SKU, barcode or prepack {key!r}")
        if line.quantity <= 0:
            raise ValueError("a line quantity must be > 0")
        return line

    def place_order(
        self,
        lines: Sequence[LineSpec],
        *,
        retailer_name: str = "Sandbox Boutique",
        status: str = "SUBMITTED",
        delivery_in_days: tuple[int, int] = (14, 28),
    ) -> FTOrder:
        """A retailer places an order; every line starts in ``status``."""
        if not lines:
            raise ValueError("an order needs at least one line")
        if status not in LINE_STATUSES:
            raise ValueError(f"unknown line status {status!r}")
        built = [self._line(str(n), spec) for n, spec in enumerate(lines, start=1)]
        for line in built:
            line.status = status
        with self.lock:
            now_us = int(self.clock.now() * 1_000_000)
            now_us -= now_us % 1000
            number = f"FT{next(self._numbers):08d}"
            start, end = delivery_in_days
            now = now_us / 1_000_000
            order = FTOrder(
                order_number=number,
                created_us=now_us,
                retailer_name=retailer_name,
                lines=built,
                delivery=(now + start * 86_400, now + end * 86_400),
            )
            self.orders[number] = order
            return order

    def order(self, order_number: str) -> FTOrder:
        with self.lock:
            found = self.orders.get(order_number)
            if found is None:
                raise KeyError(f"unknown order {order_number!r}")
            return found

    def set_line_status(self, order_number: str, line_id: str, status: str) -> FTOrder:
        if status not in LINE_STATUSES:
            raise ValueError(f"unknown line status {status!r}")
        with self.lock:
            order = self.order(order_number)
            order.line(line_id).status = status
            return order

    def set_order_status(self, order_number: str, status: str) -> FTOrder:
        """Move every line of an order to ``status``."""
        if status not in LINE_STATUSES:
            raise ValueError(f"unknown line status {status!r}")
        with self.lock:
            order = self.order(order_number)
            for line in order.lines:
                line.status = status
            return order

    # --- the API key -----------------------------------------------------------

    def key_ok(self, presented: str | None) -> bool:
        with self.lock:
            return presented == self.api_key and not self.key_revoked

    def revoke_tokens(self) -> int:
        """Revoke the static key: every request gets 401 until :meth:`restore_key`."""
        with self.lock:
            was_live = not self.key_revoked
            self.key_revoked = True
            return int(was_live)

    def restore_key(self, new_key: str | None = None) -> None:
        """Re-issue the key (optionally a new value) after a revocation."""
        with self.lock:
            if new_key is not None:
                self.api_key = new_key
            self.key_revoked = False

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "api": "fashiontrade",
                "now": iso_utc(self.clock.now()),
                "rateLimitPerMinute": self.rate_limit,
                "keyRevoked": self.key_revoked,
                "orders": {number: o.to_json() for number, o in sorted(self.orders.items())},
                "counters": self.counters.snapshot(),
            }
