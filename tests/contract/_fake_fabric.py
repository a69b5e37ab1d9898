"""fabric Marketplace in memory: the brand's orders and its inventory items.

Followed from seed 003 and the supplier-side brief the sandbox also follows:

- Django REST Framework lists: ``{"count", "next", "previous", "results"}``
  with absolute ``next``/``previous`` URLs and page numbers (``?page=N``,
  L55-68, sample L4876-4880); the sandbox's page size is a server setting,
  here 5;
- an order carries ``id``, ``status`` and ``order_lines``; a line ``id``,
  ``quantity``, ``quantity_open``, ``quantity_shipped``,
  ``quantity_canceled``, ``status`` ("open" while units are open) and its
  ``variant`` with ``brand_identifier`` and ``upc`` (L4992-5181, L5140-5181);
  ``status=open`` lists the open orders;
- an inventory position shows ``variant``, ``inventory_policy``
  ``"managed"``, ``inventory`` and ``inventory_updated_at`` (L4876-4915); the
  supplier view adds the item ``id`` and takes ``PATCH .../inventory/{id}/``
  with ``{"inventory": n}``, answering the item (brief fabric-supplier-api
  1, 3); a value it cannot take is refused ``400 {field: [message]}`` (DRF);
- ``POST /auth/token/``: client credentials; a bad token answers
  ``401 {"detail": "Invalid token."}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from syncd.clock import Clock
from syncd.sandbox.catalog import SandboxCatalog
from tests.contract._fake_base import FakeApi, json_body
from tests.contract._rig import FAKE_BRAND

BRAND = f"/v1/brands/{FAKE_BRAND}"
ORDERS = f"{BRAND}/orders/"
INVENTORY = f"{BRAND}/inventory/"
PAGE_SIZE = 5


@dataclass(slots=True)
class Item:
    id: int
    variant_id: int
    brand_identifier: str
    upc: str
    inventory: int

    def variant(self) -> dict[str, Any]:
        return {
            "id": self.variant_id,
            "name": self.brand_identifier,
            "identifier": self.brand_identifier,
            "brand_identifier": self.brand_identifier,
            "upc": self.upc,
            "retailer_identifiers": [],
        }

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "variant": self.variant(),
            "inventory_policy": "managed",
            "inventory": self.inventory,
            "inventory_updated_at": None,
            "sellable": "Yes",
        }


@dataclass(slots=True)
class Line:
    id: int
    item: Item
    quantity: int
    quantity_canceled: int = 0

    @property
    def quantity_open(self) -> int:
        return self.quantity - self.quantity_canceled


@dataclass(slots=True)
class Order:
    id: int
    lines: list[Line]

    @property
    def status(self) -> str:
        return "open" if any(line.quantity_open for line in self.lines) else "canceled"

    def resource(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "order_lines": [
                {
                    "id": line.id,
                    "quantity": line.quantity,
                    "quantity_open": line.quantity_open,
                    "quantity_shipped": 0,
                    "quantity_canceled": line.quantity_canceled,
                    "status": "open" if line.quantity_open else "canceled",
                    "variant": line.item.variant(),
                }
                for line in self.lines
            ],
        }


class FakeFabric(FakeApi):
    token_path = "/auth/token/"

    def __init__(self, catalog: SandboxCatalog, clock: Clock) -> None:
        super().__init__(clock)
        self.items = {
            v.fabric_inventory_id: Item(
                v.fabric_inventory_id, 100_000 + n, v.fabric_sku, v.barcode, v.activeants_stock
            )
            for n, v in enumerate(catalog.variants)
            if "fabric" in v.channels
        }
        self.by_identifier = {item.brand_identifier: item for item in self.items.values()}
        self.orders: list[Order] = []
        self.refuse: set[int] = set()
        """Item ids whose next write is refused (once)."""
        self.writes: list[int] = []
        """Item ids written, in order."""

    def place_order(self, lines: dict[str, int]) -> Order:
        number = len(self.orders) + 1
        order = Order(
            80_000 + number,
            [
                Line(number * 100 + i, self.by_identifier[ident], quantity)
                for i, (ident, quantity) in enumerate(lines.items())
            ],
        )
        self.orders.append(order)
        return order

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(401, json={"detail": "Invalid token."})

    def serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == ORDERS and request.method == "GET":
            wanted = request.url.params.get("status")
            rows = [o.resource() for o in self.orders if wanted is None or o.status == wanted]
            return _page(request, rows)
        if path == INVENTORY and request.method == "GET":
            return _page(request, [i.resource() for _, i in sorted(self.items.items())])
        if path.startswith(INVENTORY):
            raw = path.removeprefix(INVENTORY).strip("/")
            item = self.items.get(int(raw)) if raw.isdigit() else None
            if item is None:
                return httpx.Response(404, json={"detail": "Not found."})
            if request.method == "GET":
                return httpx.Response(200, json=item.resource())
            if request.method == "PATCH":
                value = json_body(request).get("inventory")
                if not isinstance(value, int) or item.id in self.refuse:
                    self.refuse.discard(item.id)
                    return httpx.Response(
                        400, json={"inventory": ["Ensure this value is a valid quantity."]}
                    )
                # fabric stores a negative value as 0 (brief fabric-supplier-api 4).
                item.inventory = max(0, value)
                self.writes.append(item.id)
                return httpx.Response(200, json=item.resource())
        return httpx.Response(404, json={"detail": "Not found."})


def _page(request: httpx.Request, rows: list[dict[str, Any]]) -> httpx.Response:
    number = int(request.url.params.get("page", "1"))
    last = max(1, math.ceil(len(rows) / PAGE_SIZE))
    if not 1 <= number <= last:
        return httpx.Response(404, json={"detail": "Invalid page."})
    following = str(request.url.copy_set_param("page", str(number + 1))) if number < last else None
    previous = str(request.url.copy_set_param("page", str(number - 1))) if number > 1 else None
    body = {
        "count": len(rows),
        "next": following,
        "previous": previous,
        "results": rows[(number - 1) * PAGE_SIZE : number * PAGE_SIZE],
    }
    return httpx.Response(200, json=body)
