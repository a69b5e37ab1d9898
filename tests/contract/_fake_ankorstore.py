"""Ankorstore's main API in memory: orders, product variants and bulk stock operations.

Followed from seed 000 (and the same choices the sandbox makes where the seed is silent):

- cursor pagination with ``page[limit]`` and ``page[after]`` (the last id of a
  page), ``meta.page`` ``{from, to, hasMore, perPage}``, and ``links`` whose
  ``next`` is absent on the last page: "If a link does not exist then you
  cannot paginate any further in that direction" (L49-107); no default page
  size is documented, the sandbox's 15 is used (``syncd.sandbox.ankorstore``);
- ``GET /api/v1/orders`` takes one ``filter[status]`` value (L4814-4819); an
  order carries ``status`` and ``reference`` (L4852-4868) and its
  ``orderItems``; ``include=orderItems.productVariant`` (L3258) puts the items
  (``quantity`` in packs and ``multipliedQuantity`` in pieces) and their
  variants in ``included``;
- ``GET /api/v1/product-variants`` "Returns all product variants with their
  stock" (L1270-1300), ``filter[sku]=A,B`` (L1277-1281) and ``filter[id][]``
  (spec); a variant shows ``stockQuantity`` = available + reserved,
  ``reservedQuantity`` and ``availableQuantity`` (L1180-1190, L1806-1811), and
  ``include=product`` brings the product's ``unitMultiplier`` (L795-798);
- ``POST /api/v1/operations`` takes 1 to 50 ``update`` operations (L636-669,
  L12856-12870) and answers ``{"atomic:results": [{"data": {...}}]}``, one per
  operation (L12890-12918); a refused operation is named by its pointer
  ``/atomic:operations/<i>/...`` and, like the sandbox's default, the batch is
  then applied not at all (atomic);
- ``POST /oauth/token``, client credentials (L145-175); an expired or revoked
  token answers 401 "Unauthenticated" (L172).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from syncd.clock import Clock
from syncd.sandbox.catalog import SandboxCatalog
from tests.contract._fake_base import FakeApi, json_body

ORDERS = "/api/v1/orders"
VARIANTS = "/api/v1/product-variants"
OPERATIONS = "/api/v1/operations"
JSONAPI = {"content-type": "application/vnd.api+json"}


@dataclass(slots=True)
class Variant:
    id: str
    sku: str
    product_id: str
    unit_multiplier: int
    stock: int
    reserved: int = 0

    def resource(self) -> dict[str, Any]:
        return {
            "type": "product-variants",
            "id": self.id,
            "attributes": {
                "sku": self.sku,
                "stockQuantity": self.stock,
                "reservedQuantity": self.reserved,
                "availableQuantity": max(0, self.stock - self.reserved),
                "isAlwaysInStock": False,
            },
            "relationships": {"product": {"data": {"type": "products", "id": self.product_id}}},
        }


@dataclass(slots=True)
class Order:
    id: str
    reference: int
    status: str
    items: list[tuple[str, str, int]]
    """(order item id, variant id, packs)."""


class FakeAnkorstore(FakeApi):
    token_path = "/oauth/token"

    def __init__(self, catalog: SandboxCatalog, clock: Clock) -> None:
        super().__init__(clock)
        self.variants: dict[str, Variant] = {}
        for index, v in enumerate(catalog.variants):
            if "ankorstore" in v.channels:
                self.variants[v.ankorstore_variant_id] = Variant(
                    v.ankorstore_variant_id,
                    v.ankorstore_sku,
                    f"00000000-0000-4000-9000-{index:012d}",
                    v.pack_size,
                    v.activeants_stock,
                )
        self.orders: list[Order] = []
        self.refuse: set[str] = set()
        """Variant ids whose next update operation is refused (once)."""
        self.operation_requests: list[int] = []
        """Operations per accepted ``POST /api/v1/operations``."""

    # --- remote moves -----------------------------------------------------------------

    def place_order(self, lines: dict[str, int], status: str = "ankor_confirmed") -> Order:
        number = len(self.orders) + 1
        order = Order(
            f"00000000-0000-4000-a000-{number:012d}",
            10_000 + number,
            status,
            [
                (f"00000000-0000-4000-b000-{number:06d}{i:06d}", vid, packs)
                for i, (vid, packs) in enumerate(lines.items())
            ],
        )
        self.orders.append(order)
        return order

    def pieces(self, order: Order) -> dict[str, int]:
        """Variant id -> pieces (packs x unitMultiplier)."""
        found: dict[str, int] = {}
        for _, vid, packs in order.items:
            found[vid] = found.get(vid, 0) + packs * self.variants[vid].unit_multiplier
        return found

    # --- serving ------------------------------------------------------------------------

    def serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == ORDERS and request.method == "GET":
            return self._orders(request)
        if path == VARIANTS and request.method == "GET":
            return self._variants(request)
        if path == OPERATIONS and request.method == "POST":
            return self._operations(request)
        return _errors(404, "Not found")

    def _paged(
        self, request: httpx.Request, ids: list[str], data: list[Any], included: list[Any]
    ) -> httpx.Response:
        params = request.url.params
        limit = int(params.get("page[limit]", "15"))
        start = ids.index(params["page[after]"]) + 1 if "page[after]" in params else 0
        chosen = range(start, min(start + limit, len(ids)))
        more = start + limit < len(ids)
        links = {"first": str(request.url.copy_remove_param("page[after]"))}
        if more and chosen:
            links["next"] = str(
                request.url.copy_set_param("page[after]", ids[chosen[-1]]).copy_set_param(
                    "page[limit]", str(limit)
                )
            )
        body: dict[str, Any] = {
            "data": [data[i] for i in chosen],
            "meta": {
                "page": {
                    "from": ids[chosen[0]] if chosen else None,
                    "to": ids[chosen[-1]] if chosen else None,
                    "hasMore": more,
                    "perPage": limit,
                }
            },
            "links": links,
        }
        kept = [included[i] for i in chosen]
        if any(kept):
            body["included"] = list({(r["type"], r["id"]): r for g in kept for r in g}.values())
        return httpx.Response(200, json=body, headers=JSONAPI)

    def _orders(self, request: httpx.Request) -> httpx.Response:
        status = request.url.params.get("filter[status]")
        found = [o for o in self.orders if status is None or o.status == status]
        include = request.url.params.get("include", "")
        data = [
            {
                "type": "orders",
                "id": o.id,
                "attributes": {"status": o.status, "reference": o.reference},
                "relationships": {
                    "orderItems": {
                        "data": [{"type": "order-items", "id": i} for i, _, _ in o.items]
                    }
                },
            }
            for o in found
        ]
        included: list[list[Any]] = []
        for o in found:
            group: list[Any] = []
            if "orderItems" in include:
                for item_id, vid, packs in o.items:
                    group.append(
                        {
                            "type": "order-items",
                            "id": item_id,
                            "attributes": {
                                "quantity": packs,
                                "multipliedQuantity": packs * self.variants[vid].unit_multiplier,
                            },
                            "relationships": {
                                "productVariant": {"data": {"type": "product-variants", "id": vid}}
                            },
                        }
                    )
                    if "orderItems.productVariant" in include:
                        group.append(self.variants[vid].resource())
            included.append(group)
        return self._paged(request, [o.id for o in found], data, included)

    def _variants(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        ids = set(params.get_list("filter[id][]"))
        skus = set(params.get("filter[sku]", "").split(",")) - {""}
        found = [
            v
            for _, v in sorted(self.variants.items())
            if (not ids or v.id in ids) and (not skus or v.sku in skus)
        ]
        with_product = params.get("include") == "product"
        included = [
            [
                {
                    "type": "products",
                    "id": v.product_id,
                    "attributes": {"unitMultiplier": v.unit_multiplier},
                }
            ]
            if with_product
            else []
            for v in found
        ]
        return self._paged(request, [v.id for v in found], [v.resource() for v in found], included)

    def _operations(self, request: httpx.Request) -> httpx.Response:
        operations = json_body(request).get("atomic:operations")
        if not isinstance(operations, list) or not 1 <= len(operations) <= 50:
            return _errors(422, "The atomic:operations must contain between 1 and 50 items.")
        errors: list[dict[str, Any]] = []
        changes: list[tuple[str, int]] = []
        for index, op in enumerate(operations):
            data = op.get("data", {})
            vid, stock = data.get("id"), data.get("attributes", {}).get("stockQuantity")
            pointer = f"/atomic:operations/{index}/data"
            if vid not in self.variants:
                errors.append(_error(404, "Not found", f"{pointer}/id"))
            elif not isinstance(stock, int) or stock < 0 or vid in self.refuse:
                self.refuse.discard(vid)
                errors.append(
                    _error(
                        422, "The stockQuantity is invalid.", f"{pointer}/attributes/stockQuantity"
                    )
                )
            else:
                changes.append((vid, stock))
        if errors:
            status = 422 if any(e["status"] == "422" for e in errors) else 404
            return httpx.Response(status, json={"errors": errors}, headers=JSONAPI)
        for vid, stock in changes:
            self.variants[vid].stock = stock
        self.operation_requests.append(len(changes))
        results = [
            {"data": {"type": "product-variants", "id": vid, "attributes": {}}}
            for vid, _ in changes
        ]
        return httpx.Response(200, json={"atomic:results": results}, headers=JSONAPI)


def _error(status: int, detail: str, pointer: str) -> dict[str, Any]:
    return {"status": str(status), "detail": detail, "source": {"pointer": pointer}}


def _errors(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"status": str(status), "detail": detail}]})
