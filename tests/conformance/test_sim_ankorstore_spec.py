"""The Ankorstore/ASTRAL simulator against the published OpenAPI documents.

Every operation the simulator serves that a spec describes is exercised over a
real socket -- success and the documented error statuses -- and every
request/response pair is validated with openapi-core (``tests/conformance/specs.py``
lists the upstream defects handled and how). Requests that are invalid on
purpose (to provoke a 415 or 422) are marked with ``X-Test-Invalid`` and
only their answers are checked.

Not validated: ``/oauth/token`` and ``/api/v1/me`` (in no spec), and the
spec operations the simulator does not serve (variant prices, fulfillment
item declaration, ASTRAL ``PATCH stock/state``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conformance.specs import (
    Exchange,
    Recorder,
    SpecChecker,
    spec_checker,
    specs_dir,
)
from tests.unit.sandbox._ankorstore_sim import Board, Sim, board_server, plug

STOCK_SPEC = "ankorstore-stock-openapi.json"
ORDERS_SPEC = "ankorstore-openapi.json"
ORDER_PATHS = ("/api/v1/orders", "/api/v1/orders/{order}")
INVALID = {"X-Test-Invalid": "1"}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
SERVED_STOCK_OPERATIONS = {
    "list-product-variants-with-stock",
    "get-product-variant-with-stock",
    "update-product-variant-stock",
    "post-api-v1-operations",
    "list-state-astral",
    "list-locations-astral",
    "list-postings-astral",
    "list-transactions-astral",
}


def _invalid_on_purpose(exchange: Exchange) -> bool:
    return "x-test-invalid" in exchange.request.headers


@pytest.fixture(scope="module")
def board() -> Iterator[Board]:
    specs_dir()
    with board_server() as running:
        yield running


@pytest.fixture
def recorded(board: Board) -> Iterator[tuple[Sim, Recorder]]:
    recorder = Recorder()
    sim = plug(board, n_variants=60, event_hooks=recorder.sync_hooks())
    yield sim, recorder
    sim.client.close()


def _update(listing_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "op": "update",
        "data": {"type": "product-variants", "id": listing_id, "attributes": attributes},
    }


def _exercise_stock(sim: Sim) -> None:
    listings = sim.state.ordered_listings()
    first = listings[0]
    page = sim.get("/api/v1/product-variants").json()
    sim.follow(page["links"]["next"])
    sim.get("/api/v1/product-variants", **{"filter[sku]": f"{listings[1].sku},{listings[2].sku}"})
    sim.get("/api/v1/product-variants", include="product", **{"page[limit]": 3})
    sim.get(f"/api/v1/product-variants/{first.id}")
    sim.get(f"/api/v1/product-variants/{first.id}", include="product")
    sim.get(f"/api/v1/product-variants/{UNKNOWN_ID}")
    sim.client.get(
        f"/api/v1/product-variants/{first.id}", headers={**sim.headers(), "Accept": "text/html"}
    )
    path = f"/api/v1/product-variants/{first.id}/stock"
    sim.send(
        "PATCH",
        path,
        {"data": {"type": "product-variants", "id": first.id, "attributes": {"stockQuantity": 12}}},
    )
    sim.send(
        "PATCH",
        path,
        {
            "data": {
                "type": "product-variants",
                "id": first.id,
                "attributes": {"isAlwaysInStock": True},
            }
        },
    )
    sim.send(
        "PATCH",
        f"/api/v1/product-variants/{UNKNOWN_ID}/stock",
        {
            "data": {
                "type": "product-variants",
                "id": UNKNOWN_ID,
                "attributes": {"stockQuantity": 1},
            }
        },
    )
    sim.send(
        "PATCH",
        path,
        {"data": {"type": "product-variants", "id": first.id, "attributes": {"stockQuantity": 1}}},
        **{"Content-Type": "application/json"},
        **INVALID,
    )
    sim.operations([_update(x.id, stockQuantity=i) for i, x in enumerate(listings[:50])])
    sim.operations([_update(first.id, stockQuantity=3, inventoryPolicy="continue")])
    sim.operations([_update(UNKNOWN_ID, stockQuantity=1)])
    sim.send(
        "POST",
        "/api/v1/operations",
        {"atomic:operations": [_update(first.id, stockQuantity=-1)]},
        **INVALID,
    )
    sim.send(
        "POST",
        "/api/v1/operations",
        {"atomic:operations": [_update(x.id, stockQuantity=1) for x in listings[:51]]},
        **INVALID,
    )
    astral = sim.state.astral
    variant = next(iter(astral.variants))
    astral.reserve(variant, 1) if astral.balance(variant) else astral.receive(variant, 2)
    sim.get("/api/astral/v1/stock/state")
    sim.get(
        "/api/astral/v1/stock/state",
        **{
            "filter[productVariantIds][]": variant,
            "filter[status][]": ["available", "onHand"],
            "filter[locationTypes][]": "warehouse",
        },
    )
    sim.get("/api/astral/v1/stock/state", stateAt=int(sim.state.clock.now()))
    sim.get("/api/astral/v1/stock/locations", **{"filter[locationTypes][]": "brand"})
    feed = sim.get("/api/astral/v1/stock/postings", include="transaction,lot,state").json()
    sim.follow(feed["links"]["next"])
    sim.get(
        "/api/astral/v1/stock/postings",
        sort="-transaction.createdAt",
        **{"filter[movementType][notIn][]": "snapshot"},
    )
    sim.get("/api/astral/v1/stock/transactions", include="posting", sort="-createdAt")
    sim.get("/api/astral/v1/stock/postings", **{"page[after]": UNKNOWN_ID})
    sim.state.clock.advance(3600)  # the token expires: 401 on both APIs
    sim.get("/api/v1/product-variants")
    sim.get("/api/astral/v1/stock/transactions")


def test_every_served_stock_operation_conforms_to_the_spec(recorded: tuple[Sim, Recorder]) -> None:
    sim, recorder = recorded
    checker = spec_checker(STOCK_SPEC)
    _exercise_stock(sim)
    checker.assert_conforms(recorder.exchanges, invalid_on_purpose=_invalid_on_purpose)
    assert set(checker.checked) == SERVED_STOCK_OPERATIONS
    assert checker.checked["post-api-v1-operations"] == {200, 404, 422}
    assert checker.checked["update-product-variant-stock"] == {200, 404, 415}
    assert checker.checked["get-product-variant-with-stock"] == {200, 404, 406}
    assert checker.checked["list-product-variants-with-stock"] == {200, 401}
    assert checker.checked["list-postings-astral"] == {200, 400}
    assert checker.checked["list-transactions-astral"] == {200, 401}


def test_orders_conform_to_the_spec(recorded: tuple[Sim, Recorder]) -> None:
    sim, recorder = recorded
    checker = spec_checker(ORDERS_SPEC, ORDER_PATHS)
    listings = sim.state.ordered_listings()
    for index in range(18):
        order = sim.state.place_order({listings[index % 5].sku: 1}, force=True)
        if index % 3 == 0:
            sim.state.ship_order(order.id)
    page = sim.get("/api/v1/orders").json()
    sim.follow(page["links"]["next"])
    sim.get(
        "/api/v1/orders",
        **{"filter[status]": "ankor_confirmed"},
        include="orderItems.productVariant",
    )
    sim.get("/api/v1/orders", include="retailer", **{"page[limit]": 2})
    sim.get(f"/api/v1/orders/{order.id}", include="orderItems.productVariant.product")
    sim.get(f"/api/v1/orders/{order.id}", include="orderItems")
    sim.get(f"/api/v1/orders/{UNKNOWN_ID}")
    sim.client.get("/api/v1/orders", headers={**sim.headers(), "Accept": "*/*"})
    sim.client.get(
        "/api/v1/orders", params={"filter[status]": "lost"}, headers={**sim.headers(), **INVALID}
    )
    checker.assert_conforms(recorder.exchanges, invalid_on_purpose=_invalid_on_purpose)
    assert checker.checked == {
        "list-internal-orders": {200, 400, 406},
        "get-internal-order": {200, 404},
    }


def _exchange(
    method: str, url: str, status: int, body: Any, headers: dict[str, str] | None = None
) -> Exchange:
    request = httpx.Request(method, url, headers={"Accept": "application/vnd.api+json"})
    response = httpx.Response(
        status,
        json=body,
        headers={"Content-Type": "application/vnd.api+json", **(headers or {})},
        request=request,
    )
    return Exchange(request, response)


def test_the_checker_reports_answers_that_break_the_spec() -> None:
    checker: SpecChecker = spec_checker(STOCK_SPEC)
    url = f"http://127.0.0.1/api/v1/product-variants/{UNKNOWN_ID}"
    assert checker.problems(_exchange("GET", url, 200, {"data": {"type": "product-variants"}}))
    assert checker.problems(_exchange("GET", url, 200, {"data": []}))
    too_many = _exchange(
        "GET", url, 429, {"errors": [{"status": "429"}]}, {"X-RateLimit-Remaining": "0"}
    )
    assert any("Retry-After" in p for p in checker.problems(too_many))
    ok = _exchange("GET", url, 404, {"errors": [{"status": "404", "detail": "Not found"}]})
    assert checker.problems(ok) == []


def test_specs_absent_means_skip(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from tests.conformance import specs

    monkeypatch.setattr(specs, "SPECS_DIR", tmp_path / "absent")
    with pytest.raises(pytest.skip.Exception):
        specs.specs_dir()


@pytest.mark.anyio
async def test_the_async_recorder_validates_traffic_from_an_async_client() -> None:
    from syncd.sandbox.ankorstore import create_app
    from syncd.sandbox.ankorstore_state import AnkorstoreState
    from syncd.sandbox.catalog import generate_catalog
    from syncd.sandbox.faults import FaultPlan
    from syncd.sandbox.server import serve
    from tests.unit.sandbox._ankorstore_sim import JSONAPI, TOKEN_FORM

    checker = spec_checker(STOCK_SPEC)
    recorder = Recorder()
    state = AnkorstoreState(generate_catalog(20, seed=2))
    async with (
        serve(create_app(state, FaultPlan("ankorstore"))) as url,
        httpx.AsyncClient(base_url=url, verify=False, event_hooks=recorder.async_hooks()) as client,
    ):
        token = (await client.post("/oauth/token", data=TOKEN_FORM)).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Accept": JSONAPI}
        await client.get("/api/v1/product-variants", headers=headers)
        await client.get(
            "/api/astral/v1/stock/postings", headers=headers, params={"include": "state"}
        )
    checker.assert_conforms(recorder.exchanges)
    assert set(checker.checked) == {"list-product-variants-with-stock", "list-postings-astral"}
