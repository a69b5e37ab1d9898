"""In-memory APIs behind httpx.MockTransport for the order-source unit tests.

Each fake serves exactly the documents a test hands it, so a test can build
shapes no simulator produces (a missing reference, an item absent from
``included``, a negative quantity) and check what syncd records from them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from syncd.clock import Clock, FakeClock
from syncd.config.sections import OrderSourceSection
from syncd.http.client import ApiClient
from syncd.http.presets import (
    activeants_client,
    ankorstore_client,
    fabric_client,
    fashiontrade_client,
)
from syncd.http.retry import RetryPolicy
from syncd.ledger.store import Ledger
from syncd.model import Catalog, Prepack, Variant

Json = dict[str, Any]
Handler = Callable[[httpx.Request], httpx.Response | None]
NO_RETRY = RetryPolicy(max_attempts=1, max_rate_limited=1)

SECTION = OrderSourceSection(fulfilled_from="activeants")


@asynccontextmanager
async def open_ledger(tmp_path: Path, clock: Clock | None = None) -> AsyncIterator[Ledger]:
    async with await Ledger.open(tmp_path / "ledger.db", clock=clock) as ledger:
        yield ledger


async def open_lines(ledger: Ledger) -> dict[tuple[str, str], int]:
    """(order_ref, sku) -> open units, for every channel."""
    return {(r.order_ref, r.sku): r.quantity for r in await ledger.open_reservations()}


def catalog() -> Catalog:
    """Three variants (one sold on Ankorstore in packs of 6) and one prepack."""
    variants = {
        "TEE-S": Variant(
            "TEE-S",
            ankorstore_variant_id="ak-tee-s",
            ankorstore_sku="AK-TEE-S",
            fabric_sku="FB-TEE-S",
            barcode="8700000000011",
        ),
        "TEE-M": Variant(
            "TEE-M",
            ankorstore_variant_id="ak-tee-m",
            ankorstore_sku="AK-TEE-M",
            fabric_sku="FB-TEE-M",
            barcode="8700000000028",
        ),
        "WINE": Variant(
            "WINE",
            ankorstore_variant_id="ak-wine",
            ankorstore_sku="AK-WINE",
            fabric_sku="FB-WINE",
            barcode="8700000000035",
            pack_size=6,
        ),
    }
    prepacks = {"8799999999990": Prepack("8799999999990", {"TEE-S": 2, "TEE-M": 1})}
    return Catalog(variants=variants, prepacks=prepacks)


def token_response() -> httpx.Response:
    return httpx.Response(
        200, json={"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
    )


@dataclass
class Recorder:
    """Every request a fake saw, and an optional interceptor run before the fake answers."""

    requests: list[httpx.Request] = field(default_factory=list)
    intercept: Handler | None = None

    def on(self, request: httpx.Request) -> httpx.Response | None:
        self.requests.append(request)
        return self.intercept(request) if self.intercept else None

    def paths(self, prefix: str = "") -> list[str]:
        return [r.url.path for r in self.requests if r.url.path.startswith(prefix)]


# --- Ankorstore ----------------------------------------------------------------------


def ak_order(
    reference: int | None,
    items: Sequence[str] | None,
    *,
    status: str = "ankor_confirmed",
    ident: str | None = None,
) -> Json:
    attributes: Json = {"status": status}
    if reference is not None:
        attributes["reference"] = reference
    resource: Json = {
        "type": "orders",
        "id": ident or f"order-{reference}",
        "attributes": attributes,
    }
    if items is not None:
        resource["relationships"] = {
            "orderItems": {"data": [{"type": "order-items", "id": i} for i in items]}
        }
    return resource


def ak_item(
    ident: str,
    variant_id: str | None,
    *,
    quantity: Any = 1,
    multiplied: Any = None,
    item_type: str = "order-items",
    variant_type: str = "product-variants",
) -> Json:
    attributes: Json = {"quantity": quantity}
    if multiplied is not None:
        attributes["multipliedQuantity"] = multiplied
    resource: Json = {"type": item_type, "id": ident, "attributes": attributes}
    if variant_id is not None:
        resource["relationships"] = {
            "productVariant": {"data": {"type": variant_type, "id": variant_id}}
        }
    return resource


def ak_variant(ident: str, sku: str) -> Json:
    return {"type": "product-variants", "id": ident, "attributes": {"sku": sku}}


@dataclass
class FakeAnkorstore(Recorder):
    """``GET /api/v1/orders``: pre-built pages per ``filter[status]``, cursor ``page[after]=<n>``."""

    pages: dict[str, list[tuple[list[Json], list[Json]]]] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return token_response()
        answer = self.on(request)
        if answer is not None:
            return answer
        status = request.url.params.get("filter[status]", "")
        pages = self.pages.get(status, [([], [])])
        number = int(request.url.params.get("page[after]", "0"))
        data, included = pages[number]
        more = number + 1 < len(pages)
        links: Json = {"first": str(request.url)}
        if more:
            links["next"] = str(request.url.copy_set_param("page[after]", str(number + 1)))
        body = {
            "data": data,
            "included": included,
            "meta": {"page": {"hasMore": more, "perPage": 2}},
            "links": links,
        }
        return httpx.Response(200, json=body)


def ankorstore(fake: FakeAnkorstore, clock: FakeClock) -> ApiClient:
    return ankorstore_client(
        base_url="https://ak.test",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=httpx.MockTransport(fake.handler),
        retry=NO_RETRY,
    )


# --- fabric ----------------------------------------------------------------------------


def fb_line(ident: int, brand_identifier: str | None, **quantities: Any) -> Json:
    line: Json = {"id": ident, "status": quantities.pop("status", "open")}
    line.update(quantities)
    if brand_identifier is not None:
        line["variant"] = {"id": ident + 5000, "brand_identifier": brand_identifier, "upc": ""}
    return line


@dataclass
class FakeFabric(Recorder):
    """``GET /v1/brands/510/orders/``: pre-built pages, ``?page=N``, DRF envelope."""

    pages: list[list[Json]] = field(default_factory=list)
    counts: list[int] | None = None

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token/":
            return token_response()
        answer = self.on(request)
        if answer is not None:
            return answer
        number = int(request.url.params.get("page", "1"))
        pages = self.pages or [[]]
        total = sum(len(p) for p in pages)
        count = self.counts[number - 1] if self.counts else total
        following = (
            str(request.url.copy_set_param("page", str(number + 1)))
            if number < len(pages)
            else None
        )
        body = {"count": count, "next": following, "previous": None, "results": pages[number - 1]}
        return httpx.Response(200, json=body)


def fabric(fake: FakeFabric, clock: FakeClock) -> ApiClient:
    return fabric_client(
        base_url="https://fb.test",
        token_url="https://fb.test/auth/token/",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=httpx.MockTransport(fake.handler),
        retry=NO_RETRY,
    )


# --- FashionTrade ----------------------------------------------------------------------


def ft_line(line_id: str, barcode: str, quantity: Any, **extra: Any) -> Json:
    line: Json = {
        "line_id": line_id,
        "barcode": barcode,
        "quantity": quantity,
        "type": extra.pop("type", "PRODUCT"),
        "status": extra.pop("status", "SUBMITTED"),
    }
    line.update(extra)
    return line


@dataclass
class FakeFashionTrade(Recorder):
    """``GET /orders`` (one page of overviews) and ``GET /orders/{number}``."""

    orders: dict[str, Json] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    """Overview status per order number (the listing)."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        answer = self.on(request)
        if answer is not None:
            return answer
        path = request.url.path
        if path == "/orders":
            wanted = request.url.params.get("status")
            items = [
                {"order_number": n, "order_date": "2026-01-01T00:00:00.000Z", "status": s}
                for n, s in self.statuses.items()
                if wanted is None or s == wanted
            ]
            return httpx.Response(200, json={"items": items, "total": len(items)})
        number = path.removeprefix("/orders/")
        if number not in self.orders:
            return httpx.Response(404, content=json.dumps("Order not found."))
        return httpx.Response(200, json=self.orders[number])


def fashiontrade(fake: FakeFashionTrade, clock: FakeClock) -> ApiClient:
    return fashiontrade_client(
        base_url="https://ft.test",
        api_key="key",
        clock=clock,
        transport=httpx.MockTransport(fake.handler),
        retry=NO_RETRY,
    )


# --- Active Ants (handover) --------------------------------------------------------------


@dataclass
class FakeActiveAnts(Recorder):
    """``GET /v3/orders?filter[externalOrderNumber][in]=...``: the refs in ``held``."""

    held: set[str] = field(default_factory=set)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return token_response()
        answer = self.on(request)
        if answer is not None:
            return answer
        wanted = request.url.params.get("filter[externalOrderNumber][in]", "").split(",")
        data = [
            {"id": n, "type": "orders", "attributes": {"externalOrderNumber": ref}}
            for n, ref in enumerate(sorted(set(wanted) & self.held))
        ]
        return httpx.Response(200, json={"data": data, "links": {}})

    def asked(self) -> list[list[str]]:
        return [
            r.url.params["filter[externalOrderNumber][in]"].split(",")
            for r in self.requests
            if r.url.path == "/v3/orders"
        ]


def activeants(fake: FakeActiveAnts, clock: FakeClock) -> ApiClient:
    return activeants_client(
        base_url="https://aa.test",
        username="user",
        password="pass",
        clock=clock,
        transport=httpx.MockTransport(fake.handler),
        retry=NO_RETRY,
    )


def failing(status: int, path_prefix: str) -> Handler:
    """An interceptor answering ``status`` to every request under ``path_prefix``."""

    def intercept(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.startswith(path_prefix):
            return httpx.Response(status, json={"errors": [{"status": str(status)}]})
        return None

    return intercept
