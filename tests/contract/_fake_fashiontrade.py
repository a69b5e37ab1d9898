"""FashionTrade's order integration service in memory (seed 002).

- ``GET /orders`` "Get all orders (paginated)": ``created_after``,
  ``created_before``, ``status``, ``limit`` (default 1000) and ``next``
  (L1346-1427); the answer is ``OrderOverviewResponseArrayWrapper``:
  ``items``, ``next`` (absent on the last page) and ``total`` (L690-715); an
  overview carries ``order_number``, ``order_date``, ``retailer_name`` and
  ``status``, one of SUBMITTED, ACKNOWLEDGED, CONFIRMED, SHIPPED, REJECTED,
  MIXED, PARTIALLY_SHIPPED (L670-698);
- ``GET /orders/{orderNumber}`` answers the ``Order`` with its
  ``order_lines`` (``line_id``, ``barcode``, ``quantity``, ``type``,
  ``status``; L348-486, L1429-1473), 404 "Order not found." otherwise;
- the API key is a bearer token (L1746); a request without a valid one
  answers 401 "Request lacks valid authentication." (L1413).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from syncd.clock import Clock
from tests.contract._fake_base import FakeApi

ORDERS = "/orders"
API_KEY = "contract-api-key"


@dataclass(slots=True)
class Line:
    line_id: str
    barcode: str
    quantity: int
    status: str = "SUBMITTED"


@dataclass(slots=True)
class Order:
    number: str
    created: float
    lines: list[Line]

    @property
    def status(self) -> str:
        statuses = {line.status for line in self.lines}
        return statuses.pop() if len(statuses) == 1 else "MIXED"

    def date(self) -> str:
        return datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def overview(self) -> dict[str, Any]:
        return {
            "order_number": self.number,
            "order_date": self.date(),
            "retailer_name": "Contract Boutique",
            "status": self.status,
        }

    def resource(self) -> dict[str, Any]:
        return {
            "order_number": self.number,
            "order_date": self.date(),
            "status": self.status,
            "retailer": {"name": "Contract Boutique"},
            "messages": [],
            "order_lines": [
                {
                    "line_id": line.line_id,
                    "barcode": line.barcode,
                    "quantity": line.quantity,
                    "type": "PRODUCT",
                    "status": line.status,
                }
                for line in self.lines
            ],
        }


class FakeFashionTrade(FakeApi):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.api_key = API_KEY
        self.orders: dict[str, Order] = {}

    def place_order(self, lines: dict[str, int]) -> Order:
        number = f"FT{len(self.orders) + 1:08d}"
        order = Order(
            number,
            self.clock.wall() - 3600 + len(self.orders),
            [Line(str(n), barcode, qty) for n, (barcode, qty) in enumerate(lines.items(), 1)],
        )
        self.orders[number] = order
        return order

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(401, json="Request lacks valid authentication.")

    def serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == ORDERS:
            return self._list(request.url.params)
        number = path.removeprefix(f"{ORDERS}/")
        order = self.orders.get(number)
        if order is None:
            return httpx.Response(404, json="Order not found.")
        return httpx.Response(200, json=order.resource())

    def _list(self, params: httpx.QueryParams) -> httpx.Response:
        after = params.get("created_after")
        bound = datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp() if after else None
        status = params.get("status")
        found = [
            o
            for o in sorted(self.orders.values(), key=lambda o: (o.created, o.number))
            if (bound is None or o.created > bound) and (status is None or o.status == status)
        ]
        limit = int(params.get("limit", "1000"))
        start = int(params.get("next", "0"))
        page = found[start : start + limit]
        body: dict[str, Any] = {"items": [o.overview() for o in page], "total": len(found)}
        if start + limit < len(found):
            body["next"] = str(start + limit)
        return httpx.Response(200, json=body)
