"""Active Ants ShopApi ``GET v2/stock/bulk`` in memory (seed 001 L2852-2952).

The answers follow the seed line by line:

- "When true returns product stock information for all products" (L2864-2868);
  with ``all_products=false`` only "products with stock mutation date equal or
  greater than" ``from`` (L2874-2878);
- ``to`` is "The date time that is greater than the stock mutation time of the
  products. This date time should be used as from value in the successive
  request" (L2890-2893): here the millisecond after the newest mutation served;
- the envelope ``{messageCode: "OK", message, result}`` (L154-168, sample
  L2944-2950), the unnamed period and product objects named ``period`` and
  ``products`` as the sandbox names them (L2884, L2895), and per product
  ``sku``, ``name``, ``stock``, ``thts``, ``freeStock``, ``economicStock``,
  ``availableStock``, ``physicalStock`` (L2897-2941);
- ``POST /token`` is the password grant (L22-97); a revoked token answers 401
  and "a new token must be requested" (L28).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from syncd.clock import Clock
from syncd.sandbox.catalog import SandboxCatalog
from tests.contract._fake_base import FakeApi

BULK_PATH = "/v2/stock/bulk"


@dataclass(slots=True)
class _Product:
    available: int
    mutated_ms: int


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


class FakeShopApi(FakeApi):
    token_path = "/token"

    def __init__(self, catalog: SandboxCatalog, clock: Clock) -> None:
        super().__init__(clock)
        self.now_ms = 1_767_000_000_000
        self.products = {
            v.activeants_sku: _Product(v.activeants_stock, self.now_ms)
            for v in catalog.variants
            if v.at_activeants
        }
        self.now_ms += 1

    def unauthorized(self) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "messageCode": "NOK",
                "message": "Authorization has been denied for this request.",
            },
        )

    def set(self, aa_sku: str, available: int) -> None:
        self.products[aa_sku] = _Product(available, self.now_ms)
        self.now_ms += 1

    def serve(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != BULK_PATH:
            return httpx.Response(404, json={"messageCode": "NOK", "message": "Not found."})
        params = request.url.params
        to_ms = self.now_ms
        self.now_ms += 1
        if params.get("all_products") == "true":
            chosen = dict(self.products)
            from_text = params.get("from")
        else:
            from_text = params["from"]
            from_ms = int(datetime.fromisoformat(from_text).timestamp() * 1000)
            chosen = {sku: p for sku, p in self.products.items() if from_ms <= p.mutated_ms < to_ms}
        products = [
            {
                # Each figure differs, as they do at a real warehouse: free stock
                # counts units on excluded locations, economic stock adds expected
                # units, physical stock adds ordered ones (L2897-2941, L2743).
                "sku": sku,
                "name": sku,
                "stock": p.available + 1,
                "thts": [],
                "freeStock": p.available + 1,
                "economicStock": p.available + 10,
                "availableStock": p.available,
                "physicalStock": p.available + 2,
            }
            for sku, p in sorted(chosen.items())
        ]
        return httpx.Response(
            200,
            json={
                "messageCode": "OK",
                "message": f"Found {len(products)} products suitable for stock synchronization.",
                "result": {
                    "period": {"from": from_text, "to": _iso(to_ms)},
                    "products": products,
                },
            },
        )
