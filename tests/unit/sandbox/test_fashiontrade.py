"""The FashionTrade order-integration simulator, exercised over real loopback sockets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from syncd.sandbox import fashiontrade
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.fashiontrade_state import DEFAULT_API_KEY, FashionTradeState
from syncd.sandbox.faults import FaultPlan
from tests.unit.sandbox._switchboard import Switchboard, running_switchboard

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


@pytest.fixture(scope="module")
def catalog() -> SandboxCatalog:
    return generate_catalog(20, seed=9)


@pytest.fixture(scope="module")
def board() -> Iterator[tuple[Switchboard, str]]:
    yield from running_switchboard()


class Sim:
    def __init__(self, state: FashionTradeState, plan: FaultPlan, client: httpx.Client) -> None:
        self.state = state
        self.plan = plan
        self.client = client

    def orders(self, **params: str | int) -> httpx.Response:
        return self.client.get("/orders", params=params, headers=AUTH)

    def follow(self, **params: str | int) -> list[list[str]]:
        """Order numbers page by page, passing ``next`` back until it is absent."""
        pages = []
        response = self.orders(**params)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append([item["order_number"] for item in body["items"]])
            if "next" not in body:
                return pages
            response = self.orders(next=body["next"])


def _serve(board: tuple[Switchboard, str], state: FashionTradeState) -> Iterator[Sim]:
    switch, url = board
    plan = FaultPlan("fashiontrade")
    switch.app = fashiontrade.create_app(state, plan)
    with httpx.Client(base_url=url, timeout=60) as client:
        yield Sim(state, plan, client)


@pytest.fixture
def sim(board: tuple[Switchboard, str], catalog: SandboxCatalog) -> Iterator[Sim]:
    yield from _serve(board, FashionTradeState(catalog))


def _place(sim: Sim, count: int, catalog_skus: list[str]) -> list[str]:
    return [
        sim.state.place_order([(catalog_skus[i % len(catalog_skus)], 1 + i % 3)]).order_number
        for i in range(count)
    ]


@pytest.fixture
def skus(catalog: SandboxCatalog) -> list[str]:
    return [v.sku for v in catalog.variants]


# --- auth ---------------------------------------------------------------------


def test_the_static_key_is_required(sim: Sim) -> None:
    missing = sim.client.get("/orders")
    assert missing.status_code == 401
    assert missing.json() == "Request lacks valid authentication."
    wrong = sim.client.get("/orders", headers={"Authorization": "Bearer other"})
    assert wrong.status_code == 401
    assert sim.orders().status_code == 200


def test_a_revoked_key_stays_revoked_until_restored(sim: Sim) -> None:
    sim.plan.arm("revoke_tokens", count=1)
    assert sim.orders().status_code == 401
    assert sim.orders().status_code == 401
    assert sim.plan.fired["revoke_tokens"] == 1
    sim.client.post("/_sandbox/key/restore", json={"api_key": "rotated"}).raise_for_status()
    assert sim.orders().status_code == 401
    rotated = sim.client.get("/orders", headers={"Authorization": "Bearer rotated"})
    assert rotated.status_code == 200


# --- paging -----------------------------------------------------------------------


def test_default_limit_is_1000_and_next_reaches_the_rest(sim: Sim, skus: list[str]) -> None:
    numbers = _place(sim, 1003, skus)
    pages = sim.follow()
    assert [len(page) for page in pages] == [1000, 3]
    assert [n for page in pages for n in page] == numbers
    assert sim.orders().json()["total"] == 1003
    capped = sim.orders(limit=5000).json()
    assert len(capped["items"]) == 1000
    assert "next" in capped


def test_small_pages_follow_next_and_keep_the_filters(sim: Sim, skus: list[str]) -> None:
    numbers = _place(sim, 10, skus)
    for number in numbers[::2]:
        sim.state.set_order_status(number, "CONFIRMED")
    pages = sim.follow(limit=2, status="CONFIRMED")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [n for page in pages for n in page] == numbers[::2]
    assert sim.orders(limit=0).status_code == 400
    assert sim.orders(next="not-a-cursor").status_code == 400


def test_partial_page_then_next_loses_nothing(sim: Sim, skus: list[str]) -> None:
    numbers = _place(sim, 6, skus)
    sim.plan.arm("partial_page", count=1)
    pages = sim.follow(limit=4)
    assert [len(page) for page in pages] == [2, 4]
    assert [n for page in pages for n in page] == numbers


def test_created_bounds_are_exclusive_and_accept_iso_or_epoch_ms(sim: Sim, skus: list[str]) -> None:
    first = _place(sim, 1, skus)[0]
    sim.state.clock.advance(60)
    second = _place(sim, 1, skus)[0]
    sim.state.clock.advance(60)
    third = _place(sim, 1, skus)[0]
    dates = {o["order_number"]: o["order_date"] for o in sim.orders().json()["items"]}

    after_first = sim.orders(created_after=dates[first]).json()["items"]
    assert [o["order_number"] for o in after_first] == [second, third]
    millis = int(datetime.fromisoformat(dates[third].replace("Z", "+00:00")).timestamp() * 1000)
    before_third = sim.orders(created_before=str(millis)).json()["items"]
    assert [o["order_number"] for o in before_third] == [first, second]
    assert sim.orders(created_after="last tuesday").status_code == 400


# --- orders, lines, statuses -----------------------------------------------------------


def test_product_and_prepack_lines(sim: Sim, catalog: SandboxCatalog) -> None:
    variant, prepack = catalog.variants[0], catalog.prepacks[0]
    order = sim.state.place_order([(variant.sku, 4), (prepack.code, 2)])
    body = sim.client.get(f"/orders/{order.order_number}", headers=AUTH).json()
    product_line, prepack_line = body["order_lines"]
    assert (product_line["type"], product_line["barcode"], product_line["quantity"]) == (
        "PRODUCT",
        variant.barcode,
        4,
    )
    assert (prepack_line["type"], prepack_line["barcode"], prepack_line["quantity"]) == (
        "PREPACK",
        prepack.barcode,
        2,
    )
    assert prepack_line["product_id"] == prepack.code
    assert body["status"] == "SUBMITTED"
    lines = sim.client.get(f"/orders/{order.order_number}/lines", headers=AUTH).json()
    assert lines["items"] == body["order_lines"]


def test_unmapped_barcodes_are_kept(sim: Sim) -> None:
    order = sim.state.place_order([{"barcode": "0000000000000", "quantity": 1}])
    line = sim.client.get(f"/orders/{order.order_number}/lines/1", headers=AUTH).json()
    assert line["barcode"] == "0000000000000"


def test_line_status_put_moves_the_order_status(sim: Sim, skus: list[str]) -> None:
    order = sim.state.place_order([(skus[0], 1), (skus[1], 2)])
    url = f"/orders/{order.order_number}/lines/1/status"
    put = sim.client.put(url, json={"order_line_status": "SHIPPED"}, headers=AUTH)
    assert put.status_code == 200
    overview: dict[str, Any] = sim.orders().json()["items"][0]
    assert overview["status"] == "MIXED"
    assert [n for page in sim.follow(status="MIXED") for n in page] == [order.order_number]
    bad = sim.client.put(url, json={"order_line_status": "CANCELLED"}, headers=AUTH)
    assert bad.status_code == 400
    missing = sim.client.put(
        "/orders/NOPE/lines/1/status", json={"order_line_status": "SHIPPED"}, headers=AUTH
    )
    assert missing.status_code == 404
    assert missing.json() == "Order not found."
    assert sim.state.counters.snapshot()["writes"] == {
        "PUT /orders/{orderNumber}/lines/{lineId}/status": 1
    }


def test_rate_limit_is_off_by_default_and_configurable(
    board: tuple[Switchboard, str], catalog: SandboxCatalog
) -> None:
    for limited in _serve(board, FashionTradeState(catalog, rate_limit=2)):
        assert limited.orders().status_code == 200
        assert limited.orders().status_code == 200
        throttled = limited.orders()
        assert throttled.status_code == 429
        assert int(throttled.headers["Retry-After"]) >= 1


def test_admin_routes_place_and_move_orders(sim: Sim, catalog: SandboxCatalog) -> None:
    placed = sim.client.post(
        "/_sandbox/orders",
        json={"lines": [[catalog.variants[0].sku, 2], [catalog.prepacks[0].barcode, 1]]},
    ).json()
    number = placed["order_number"]
    moved = sim.client.post(f"/_sandbox/orders/{number}/status", json={"status": "CONFIRMED"})
    assert moved.json()["status"] == "CONFIRMED"
    line = sim.client.post(
        f"/_sandbox/orders/{number}/lines/2/status", json={"status": "REJECTED"}
    ).json()
    assert line["status"] == "MIXED"
    assert sim.client.get("/_sandbox/state").json()["orders"][number]["status"] == "MIXED"
    unknown = sim.client.post("/_sandbox/orders", json={"lines": [["NOPE", 1]]})
    assert unknown.status_code == 400
