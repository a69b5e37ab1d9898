"""The fabric Marketplace simulator, exercised over real loopback sockets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from syncd.sandbox import fabric
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.fabric_state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    TOKEN_LIFETIME,
    FabricState,
)
from syncd.sandbox.faults import FaultPlan
from tests.unit.sandbox._switchboard import Switchboard, running_switchboard

CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": DEFAULT_CLIENT_ID,
    "client_secret": DEFAULT_CLIENT_SECRET,
}


@pytest.fixture(scope="module")
def catalog() -> SandboxCatalog:
    return generate_catalog(60, seed=5)


@pytest.fixture(scope="module")
def board() -> Iterator[tuple[Switchboard, str]]:
    yield from running_switchboard()


class Sim:
    def __init__(self, state: FabricState, plan: FaultPlan, client: httpx.Client) -> None:
        self.state = state
        self.plan = plan
        self.client = client
        self._token: str | None = None
        self.retailer = f"/v1/retailers/{state.retailer_id}"
        self.brand = f"/v1/brands/{state.brand_id}"

    def token(self) -> str:
        response = self.client.post("/v1/", data=CREDENTIALS)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def auth(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token()
        return {"Authorization": f"Bearer {self._token}"}

    def get(self, url: str, **params: str | int) -> httpx.Response:
        return self.client.get(url, params=params, headers=self.auth())

    def follow(self, url: str, **params: str | int) -> list[list[dict[str, Any]]]:
        """Every page of a list, following the absolute ``next`` URL."""
        pages = []
        response = self.get(url, **params)
        while True:
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append(body["results"])
            if body["next"] is None:
                return pages
            assert body["next"].startswith(str(self.client.base_url).rstrip("/") + "/v1/")
            response = self.client.get(body["next"], headers=self.auth())

    def item_id(self, brand_identifier: str) -> int:
        body = self.get(f"{self.brand}/inventory/", identifier=brand_identifier).json()
        assert body["count"] == 1
        inventory_id: int = body["results"][0]["id"]
        return inventory_id


def _serve(board: tuple[Switchboard, str], state: FabricState) -> Iterator[Sim]:
    switch, url = board
    plan = FaultPlan("fabric")
    switch.app = fabric.create_app(state, plan)
    with httpx.Client(base_url=url, timeout=60) as client:
        yield Sim(state, plan, client)


@pytest.fixture
def sim(board: tuple[Switchboard, str], catalog: SandboxCatalog) -> Iterator[Sim]:
    yield from _serve(board, FabricState(catalog, page_size=7))


@pytest.fixture
def limited(board: tuple[Switchboard, str], catalog: SandboxCatalog) -> Iterator[Sim]:
    yield from _serve(board, FabricState(catalog, rate_limit=3))


def _first_item(sim: Sim, minimum: int = 0) -> Any:
    return next(
        item
        for _, item in sorted(sim.state.items.items())
        if item.inventory >= minimum and item.identifier == item.brand_identifier
    )


# --- token ---------------------------------------------------------------------


def test_client_credentials_token_is_form_only_and_lasts_ten_hours(sim: Sim) -> None:
    as_json = sim.client.post("/v1/", json=CREDENTIALS)
    assert as_json.status_code == 400
    wrong = sim.client.post("/v1/", data=CREDENTIALS | {"client_secret": "nope"})
    assert wrong.status_code == 401
    body = sim.client.post("/v1/", data=CREDENTIALS).json()
    assert body["expires_in"] == TOKEN_LIFETIME == 36_000
    assert body["token_type"] == "Bearer"

    headers = {"Authorization": f"Bearer {body['access_token']}"}
    inventory = f"{sim.retailer}/inventory/"
    sim.state.clock.advance(TOKEN_LIFETIME - 60)
    assert sim.client.get(inventory, headers=headers).status_code == 200
    sim.state.clock.advance(120)
    expired = sim.client.get(inventory, headers=headers)
    assert expired.status_code == 401
    assert "detail" in expired.json()


def test_missing_token_is_401(sim: Sim) -> None:
    response = sim.client.get(f"{sim.retailer}/inventory/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_revoke_tokens_fault_invalidates_current_tokens_once(sim: Sim) -> None:
    old = sim.auth()
    sim.plan.arm("revoke_tokens", count=1)
    assert sim.client.get(f"{sim.retailer}/inventory/", headers=old).status_code == 401
    assert sim.client.get(f"{sim.retailer}/inventory/", headers=old).status_code == 401
    fresh = {"Authorization": f"Bearer {sim.token()}"}
    assert sim.client.get(f"{sim.retailer}/inventory/", headers=fresh).status_code == 200
    assert sim.client.get(f"{sim.retailer}/inventory/", headers=fresh).status_code == 200


def test_past_the_limit_429_carries_retry_after(limited: Sim) -> None:
    inventory = f"{limited.retailer}/inventory/"
    assert limited.get(inventory).status_code == 200  # the token request counts too
    assert limited.get(inventory).status_code == 200
    throttled = limited.get(inventory)
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert "throttled" in throttled.json()["detail"]
    limited.state.clock.advance(60)
    assert limited.get(inventory).status_code == 200


# --- inventory reads ---------------------------------------------------------------


def test_inventory_pages_follow_absolute_next_to_the_end(sim: Sim) -> None:
    pages = sim.follow(f"{sim.retailer}/inventory/")
    assert [len(page) for page in pages[:-1]] == [7] * (len(pages) - 1)
    variant_ids = [row["variant"]["id"] for page in pages for row in page]
    assert len(variant_ids) == len(set(variant_ids)) == len(sim.state.items)
    assert sim.get(f"{sim.retailer}/inventory/", page=len(pages) + 1).status_code == 404


def test_partial_page_is_short_while_next_says_there_is_more(sim: Sim) -> None:
    sim.plan.arm("partial_page", count=1)
    body = sim.get(f"{sim.retailer}/inventory/").json()
    assert len(body["results"]) == 3
    assert body["next"] is not None
    assert len(sim.get(f"{sim.retailer}/inventory/").json()["results"]) == 7


def test_trailing_slash_is_required(sim: Sim) -> None:
    moved = sim.client.get(
        f"{sim.retailer}/inventory", params={"updated_at_gte": 5}, headers=sim.auth()
    )
    assert moved.status_code == 301
    assert moved.headers["location"].endswith(f"{sim.retailer}/inventory/?updated_at_gte=5")
    item = _first_item(sim)
    submitted_at = item.brand_inventory_updated_at
    write = sim.client.patch(
        f"{sim.brand}/inventory/{item.inventory_id}", json={"inventory": 3}, headers=sim.auth()
    )
    assert write.status_code == 404
    assert item.brand_inventory_updated_at == submitted_at
    assert sim.state.counters.snapshot()["writes"] == {}
    assert sim.client.post("/v1", data=CREDENTIALS).status_code == 404


def test_updated_at_filters_take_epoch_seconds(sim: Sim) -> None:
    since = int(sim.state.clock.now())
    assert sim.get(f"{sim.retailer}/inventory/", updated_at_gte=since).json()["count"] == 0
    item = _first_item(sim)
    sim.state.submit_inventory(item.brand_sku, 11)
    body = sim.get(
        f"{sim.retailer}/inventory/", updated_at_gte=since, order_by="-inventory_updated_at"
    ).json()
    assert [row["variant"]["id"] for row in body["results"]] == [item.variant_id]
    bad = sim.get(f"{sim.retailer}/inventory/", updated_at_gte="yesterday")
    assert bad.status_code == 400
    assert "updated_at_gte" in bad.json()


# --- supplier writes ---------------------------------------------------------------


def test_supplier_write_is_what_the_retailer_reads(sim: Sim) -> None:
    item = _first_item(sim)
    inventory_id = sim.item_id(item.brand_identifier)
    assert inventory_id == item.inventory_id != item.variant_id
    written = sim.client.patch(
        f"{sim.brand}/inventory/{inventory_id}/", json={"inventory": 42}, headers=sim.auth()
    )
    assert written.status_code == 200
    assert written.json()["inventory"] == 42
    seen = sim.get(f"{sim.retailer}/inventory/{item.variant_id}/").json()
    assert seen["inventory"] == 42
    assert seen["variant"]["brand_identifier"] == item.brand_identifier
    assert sim.state.counters.snapshot()["writes"] == {
        "PATCH /v1/brands/{brand_id}/inventory/{inventory_id}/": 1
    }


def test_supplier_write_clamps_negatives_and_rejects_garbage(sim: Sim) -> None:
    item = _first_item(sim)
    url = f"{sim.brand}/inventory/{item.inventory_id}/"
    clamped = sim.client.patch(url, json={"inventory": -4}, headers=sim.auth())
    assert clamped.json()["inventory"] == 0
    assert sim.state.clamped_writes == 1
    for bad in ({"inventory": "lots"}, {"inventory": True}, {"stock": 5}):
        assert sim.client.patch(url, json=bad, headers=sim.auth()).status_code == 400
    form = sim.client.patch(url, data={"inventory": "5"}, headers=sim.auth())
    assert form.status_code == 415
    assert sim.state.inventory(item.inventory_id) == 0
    other_brand = sim.client.patch(
        f"/v1/brands/1/inventory/{item.inventory_id}/", json={"inventory": 5}, headers=sim.auth()
    )
    assert other_brand.status_code == 404


# --- orders --------------------------------------------------------------------------


def test_orders_reduce_managed_inventory_and_report_open_quantities(sim: Sim) -> None:
    item = _first_item(sim, minimum=4)
    before = item.inventory
    created = sim.client.post(
        f"{sim.retailer}/orders/",
        json={
            "purchase_order_number": "PO-1",
            "order_lines": [{"quantity": 3, "price": "35.00", "variant": {"id": item.variant_id}}],
        },
        headers=sim.auth(),
    )
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    assert sim.get(f"{sim.retailer}/inventory/{item.variant_id}/").json()["inventory"] == before - 3

    line = created.json()["order_lines"][0]
    sim.state.ship_lines(order_id, {line["id"]: 1})
    shown = sim.get(f"{sim.retailer}/orders/{order_id}/").json()
    assert shown["order_lines"][0]["quantity_open"] == 2
    assert shown["order_lines"][0]["quantity_shipped"] == 1
    assert shown["status"] == "open"
    assert len(shown["shipments"]) == 1

    sim.state.cancel_lines(order_id)
    closed = sim.get(f"{sim.brand}/orders/{order_id}/").json()
    assert closed["order_lines"][0]["quantity_open"] == 0
    assert closed["order_lines"][0]["quantity_canceled"] == 2
    assert closed["status"] == "closed"
    # Cancelling gives nothing back: the brand's next absolute write does.
    assert sim.state.inventory(item.inventory_id) == before - 3

    open_orders = sim.get(f"{sim.retailer}/orders/", status="open").json()
    assert open_orders["count"] == 0


def test_an_order_beyond_inventory_is_refused_whole(sim: Sim) -> None:
    short = _first_item(sim)
    plenty = next(i for _, i in sorted(sim.state.items.items()) if i.inventory >= 2)
    response = sim.client.post(
        f"{sim.retailer}/orders/",
        json={
            "purchase_order_number": "PO-2",
            "order_lines": [
                {"quantity": 1, "price": "1.00", "variant": {"id": plenty.variant_id}},
                {
                    "quantity": short.inventory + 1,
                    "price": "1.00",
                    "variant": {"id": short.variant_id},
                },
            ],
        },
        headers=sim.auth(),
    )
    assert response.status_code == 400
    assert sim.state.orders == {}
    assert sim.state.rejected_orders == 1
    assert sim.get(f"{sim.retailer}/orders/").json()["count"] == 0


def test_order_list_filters_by_update_time(sim: Sim) -> None:
    item = _first_item(sim, minimum=2)
    first = sim.state.place_order({item.brand_sku: 1})
    sim.state.clock.advance(10)
    since = int(sim.state.clock.now())
    second = sim.state.place_order({item.brand_identifier: 1})
    body = sim.get(f"{sim.retailer}/orders/", updated_at_gte=since).json()
    assert [o["id"] for o in body["results"]] == [second.order_id]
    everything = sim.get(f"{sim.retailer}/orders/", order_by="-id").json()
    assert [o["id"] for o in everything["results"]] == [second.order_id, first.order_id]


# --- admin -----------------------------------------------------------------------------


def test_admin_routes_place_ship_and_read(sim: Sim) -> None:
    item = _first_item(sim, minimum=2)
    placed = sim.client.post("/_sandbox/orders", json={"lines": {item.brand_sku: 2}}).json()
    assert sim.client.get(f"/_sandbox/inventory/{item.brand_sku}").json()["inventory"] == (
        item.inventory
    )
    shipped = sim.client.post(f"/_sandbox/orders/{placed['id']}/ship").json()
    assert shipped["status"] == "closed"
    state = sim.client.get("/_sandbox/state").json()
    assert state["orders"][str(placed["id"])]["order_lines"][0]["quantity_shipped"] == 2
    assert state["items"][item.brand_sku]["id"] == item.inventory_id
    refused = sim.client.post("/_sandbox/orders", json={"lines": {item.brand_sku: 10_000}})
    assert refused.status_code == 400
