"""The Active Ants ShopApi simulator, exercised over real loopback sockets."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from syncd.sandbox import activeants
from syncd.sandbox.activeants_state import (
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    TOKEN_LIFETIME,
    ActiveAntsState,
)
from syncd.sandbox.catalog import SandboxCatalog, generate_catalog
from syncd.sandbox.faults import FaultPlan
from tests.unit.sandbox._switchboard import Switchboard, running_switchboard


@pytest.fixture(scope="module")
def catalog() -> SandboxCatalog:
    return generate_catalog(40, seed=11, lot_share=0.5)


class Sim:
    def __init__(self, state: ActiveAntsState, plan: FaultPlan, client: httpx.Client) -> None:
        self.state = state
        self.plan = plan
        self.client = client

    def token(self) -> str:
        response = self.client.post(
            "/token",
            data={
                "grant_type": "password",
                "username": DEFAULT_USERNAME,
                "password": DEFAULT_PASSWORD,
            },
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def get(self, path: str, token: str, **params: str) -> httpx.Response:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def board() -> Iterator[tuple[Switchboard, str]]:
    yield from running_switchboard()


def _serve(board: tuple[Switchboard, str], state: ActiveAntsState) -> Iterator[Sim]:
    switch, url = board
    plan = FaultPlan("activeants")
    switch.app = activeants.create_app(state, plan)
    with httpx.Client(base_url=url, timeout=60) as client:
        yield Sim(state, plan, client)


@pytest.fixture
def sim(board: tuple[Switchboard, str], catalog: SandboxCatalog) -> Iterator[Sim]:
    yield from _serve(board, ActiveAntsState(catalog))


@pytest.fixture
def limited(board: tuple[Switchboard, str], catalog: SandboxCatalog) -> Iterator[Sim]:
    yield from _serve(board, ActiveAntsState(catalog, rate_limit=3))


def _sku_with_stock(state: ActiveAntsState, minimum: int = 3, *, skip: int = 0) -> str:
    stocked = [sku for sku, p in sorted(state.products.items()) if p.available >= minimum]
    return stocked[skip]


# --- token ---------------------------------------------------------------------


def test_token_is_form_encoded_password_grant_with_rfc1123_dates(sim: Sim) -> None:
    form = {"grant_type": "password", "username": DEFAULT_USERNAME, "password": DEFAULT_PASSWORD}
    as_json = sim.client.post("/token", json=form)
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "unsupported_grant_type"

    wrong = sim.client.post("/token", data=form | {"password": "nope"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    body = sim.client.post("/token", data=form).json()
    assert body["token_type"] == "bearer"
    assert body["userName"] == DEFAULT_USERNAME
    assert body["expires_in"] == TOKEN_LIFETIME
    issued, expires = parsedate_to_datetime(body["issued"]), parsedate_to_datetime(body["expires"])
    assert (expires - issued).total_seconds() == pytest.approx(TOKEN_LIFETIME, abs=1)
    assert body[".expires"] == body["expires"]


def test_status_needs_no_token(sim: Sim) -> None:
    response = sim.client.get("/status/get")
    assert response.status_code == 200
    assert response.json() == {"messageCode": "OK", "message": "Status is OK.", "result": None}


def test_token_expires_on_the_simulator_clock(sim: Sim) -> None:
    token = sim.token()
    sim.state.clock.advance(TOKEN_LIFETIME - 5)
    assert sim.get("/v2/stock/bulk", token).status_code == 200
    sim.state.clock.advance(10)
    expired = sim.get("/v2/stock/bulk", token)
    assert expired.status_code == 401
    assert expired.json()["messageCode"] == "NOK"
    assert sim.get("/v2/stock/bulk", sim.token()).status_code == 200


def test_revocation_invalidates_every_token_until_a_new_one_is_fetched(sim: Sim) -> None:
    first, second = sim.token(), sim.token()
    revoked = sim.client.post("/_sandbox/tokens/revoke")
    assert revoked.json() == {"revoked": 2}
    assert sim.get("/v2/stock/bulk", first).status_code == 401
    assert sim.get("/v2/stock/bulk", second).status_code == 401
    assert sim.get("/v2/stock/bulk", sim.token()).status_code == 200


def test_revoke_tokens_fault_fires_once_then_stops(sim: Sim) -> None:
    old = sim.token()
    sim.plan.arm("revoke_tokens", count=1)
    assert sim.get("/v2/stock/bulk", old).status_code == 401
    fresh = sim.token()
    assert sim.get("/v2/stock/bulk", fresh).status_code == 200
    assert sim.get("/v2/stock/bulk", fresh).status_code == 200
    assert sim.get("/v2/stock/bulk", old).status_code == 401
    assert sim.plan.fired["revoke_tokens"] == 1


# --- rate limit ------------------------------------------------------------------


def test_requests_past_the_configured_limit_get_429_with_retry_after(limited: Sim) -> None:
    token = limited.token()
    assert limited.get("/v2/stock/bulk", token).status_code == 200
    assert limited.get("/v2/stock/bulk", token).status_code == 200
    throttled = limited.get("/v2/stock/bulk", token)
    assert throttled.status_code == 429
    assert throttled.json()["messageCode"] == "NOK"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    limited.state.clock.advance(61)
    assert limited.get("/v2/stock/bulk", token).status_code == 200
    counters = limited.client.get("/_sandbox/state").json()["counters"]
    assert counters["throttled"] == {"GET /v2/stock/bulk": 1}
    assert counters["requests"]["GET /v2/stock/bulk"] == 4


# --- stock -----------------------------------------------------------------------


def _bulk(sim: Sim, token: str, **params: str) -> dict[str, Any]:
    response = sim.get("/v2/stock/bulk", token, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["messageCode"] == "OK"
    result: dict[str, Any] = body["result"]
    return result


def test_full_then_incremental_from_to_reproduces_the_state(sim: Sim) -> None:
    token = sim.token()
    full = _bulk(sim, token, all_products="true")
    view = {p["sku"]: p for p in full[activeants.BULK_PRODUCTS_KEY]}
    assert len(view) == len(sim.state.products)
    cursor = full[activeants.BULK_PERIOD_KEY]["to"]

    stocked = _sku_with_stock(sim.state)
    skus = [sku for sku in sorted(sim.state.products) if sku != stocked]
    sim.state.set_stock(skus[0], 17)
    sim.state.move_stock(skus[1], 4)
    sim.state.add_order("ANK-1", {stocked: 2}, channel="ankorstore")
    sim.state.ship_order("ANK-1")
    # `to` is "now" truncated to the millisecond and excludes itself; a loopback
    # round trip takes well under a millisecond, so without moving the clock the
    # changes could fall in the cut's own millisecond (the next window's).
    sim.state.clock.advance(0.002)

    changes = _bulk(sim, token, **{"from": cursor})
    assert changes[activeants.BULK_PERIOD_KEY]["from"] == cursor
    changed = {p["sku"] for p in changes[activeants.BULK_PRODUCTS_KEY]}
    assert changed == {skus[0], skus[1], stocked}
    view.update({p["sku"]: p for p in changes[activeants.BULK_PRODUCTS_KEY]})

    fresh = _bulk(sim, token, all_products="true")
    assert view == {p["sku"]: p for p in fresh[activeants.BULK_PRODUCTS_KEY]}
    assert view[skus[0]]["availableStock"] == 17

    quiet = _bulk(sim, token, **{"from": changes[activeants.BULK_PERIOD_KEY]["to"]})
    assert quiet[activeants.BULK_PRODUCTS_KEY] == []


def test_from_with_an_unencoded_plus_is_rejected(sim: Sim) -> None:
    token = sim.token()
    cursor = _bulk(sim, token, all_products="true")[activeants.BULK_PERIOD_KEY]["to"]
    assert "+" in cursor
    raw = sim.client.get(
        f"/v2/stock/bulk?from={cursor}", headers={"Authorization": f"Bearer {token}"}
    )
    assert raw.status_code == 400
    assert raw.json()["messageCode"] == "NOK"


def test_without_parameters_the_window_is_the_last_day(sim: Sim) -> None:
    token = sim.token()
    # Seeded mutations are two days old: outside the default window.
    assert _bulk(sim, token)[activeants.BULK_PRODUCTS_KEY] == []
    sku = sorted(sim.state.products)[0]
    sim.state.move_stock(sku, 1)
    # `to` is "now" truncated to the millisecond and excludes itself, so a change
    # made in the current millisecond belongs to the next window, not this one.
    sim.state.clock.advance(0.002)
    assert [p["sku"] for p in _bulk(sim, token)[activeants.BULK_PRODUCTS_KEY]] == [sku]


def test_quantity_fields_obey_the_documented_identities(sim: Sim) -> None:
    token = sim.token()
    stocked = _sku_with_stock(sim.state, 5)
    sim.state.add_order("ANK-9", {stocked: 3})
    sim.state.set_levels(stocked, expected=12, excluded=1, unavailable=1)
    for sku, product in sorted(sim.state.products.items()):
        body = sim.get(f"/v2/stock/get/{sku}", token).json()
        assert body["messageCode"] == "OK"
        r = body["result"]
        free = r["physicalStock"] - r["orderedStock"] - r["unavailableStock"]
        assert r["freeStock"] == free
        assert r["availableStock"] == free - product.excluded
        assert r["economicStock"] == free + r["expectedStock"]
        if r[activeants.LOTS_KEY]:
            assert sum(lot["quantity"] for lot in r[activeants.LOTS_KEY]) == r["physicalStock"]
    held = sim.get(f"/v2/stock/get/{stocked}", token).json()["result"]
    assert held["orderedStock"] == 3


def test_unknown_sku_is_a_nok_envelope(sim: Sim) -> None:
    token = sim.token()
    body = sim.get("/v2/stock/get/NOPE", token).json()
    assert body["messageCode"] == "NOK"
    assert "NOPE" in body["message"]
    bad = sim.get("/v2/stock/bulk", token, all_products="maybe")
    assert bad.status_code == 400
    assert bad.json()["messageCode"] == "NOK"
    unauthorized = sim.client.get("/v2/stock/bulk")
    assert unauthorized.status_code == 401
    assert unauthorized.json()["messageCode"] == "NOK"


def test_needs_to_be_synched_queue_returns_changes_once(sim: Sim) -> None:
    token = sim.token()
    everything = sim.get("/stock/bulk/true", token).json()["result"]
    assert len(everything) == len(sim.state.products)
    assert sim.get("/stock/bulk/false", token).json()["result"] == []
    sku = sorted(sim.state.products)[3]
    sim.state.move_stock(sku, 2)
    assert [p["sku"] for p in sim.get("/stock/bulk/false", token).json()["result"]] == [sku]
    assert sim.get("/stock/bulk/false", token).json()["result"] == []


# --- orders ----------------------------------------------------------------------


def _order_body(reference: str, sku: str, quantity: int) -> dict[str, Any]:
    return {
        "externalOrderNumber": reference,
        "paymentMethodId": 1,
        "deliveryAddressLastName": "Jansen",
        "deliveryAddressPostalCode": "1012AB",
        "deliveryAddressHouseNumber": 1,
        "deliveryAddressStreet": "Damrak",
        "deliveryAddressCountryIso": "NL",
        "languageId": 1,
        "orderTypeId": 1,
        "orderItems": [{"sku": sku, "quantity": quantity, "price": 9.95}],
    }


def test_held_orders_leave_free_stock_and_shipping_leaves_physical(sim: Sim) -> None:
    token = sim.token()
    headers = {"Authorization": f"Bearer {token}"}
    sku = _sku_with_stock(sim.state)
    before = sim.get(f"/v2/stock/get/{sku}", token).json()["result"]

    added = sim.client.post("/order/add", json=_order_body("ANK-42", sku, 2), headers=headers)
    assert added.json()["messageCode"] == "OK"
    assert isinstance(added.json()["result"], int)
    held = sim.get(f"/v2/stock/get/{sku}", token).json()["result"]
    assert held["availableStock"] == before["availableStock"] - 2
    assert held["physicalStock"] == before["physicalStock"]

    duplicate = sim.client.post("/order/add", json=_order_body("ANK-42", sku, 1), headers=headers)
    assert duplicate.status_code == 400
    assert duplicate.json()["messageCode"] == "NOK"

    found = sim.get("/v3/orders", token, **{"filter[externalOrderNumber][in]": "ANK-42,ANK-43"})
    assert [o["attributes"]["externalOrderNumber"] for o in found.json()["data"]] == ["ANK-42"]

    sim.client.post("/_sandbox/orders/ANK-42/ship").raise_for_status()
    shipped = sim.get(f"/v2/stock/get/{sku}", token).json()["result"]
    assert shipped["physicalStock"] == before["physicalStock"] - 2
    assert shipped["availableStock"] == before["availableStock"] - 2


def test_order_add_rejects_a_form_body_and_unknown_skus(sim: Sim) -> None:
    headers = {"Authorization": f"Bearer {sim.token()}"}
    form = sim.client.post("/order/add", data={"externalOrderNumber": "X"}, headers=headers)
    assert form.status_code == 400
    assert form.json()["messageCode"] == "NOK"
    unknown = sim.client.post("/order/add", json=_order_body("X", "NOPE", 1), headers=headers)
    assert unknown.json()["messageCode"] == "NOK"
    assert sim.state.orders == {}


def test_v3_orders_follow_next_even_through_a_partial_page(sim: Sim) -> None:
    sku = _sku_with_stock(sim.state, 1)
    for index in range(5):
        sim.state.add_order(f"REF-{index}", {sku: 1})
    token = sim.token()
    sim.plan.arm("partial_page", count=1)
    url: str | None = "/v3/orders?page[size]=2"
    pages: list[list[str]] = []
    while url:
        body = sim.client.get(url, headers={"Authorization": f"Bearer {token}"}).json()
        pages.append([o["attributes"]["externalOrderNumber"] for o in body["data"]])
        url = body["links"].get("next")
    assert pages[0] == ["REF-0"]  # half of the first page, yet a next link
    assert pages[1:] == [["REF-2", "REF-3"], ["REF-4"]]


# --- faults and admin --------------------------------------------------------------


def test_generic_status_fault_fires_then_stops(sim: Sim) -> None:
    token = sim.token()
    sim.client.post("/_sandbox/faults", json={"kind": "status", "status": 503, "count": 1})
    assert sim.get("/v2/stock/bulk", token).status_code == 503
    assert sim.get("/v2/stock/bulk", token).status_code == 200


def test_admin_routes_mutate_and_show_the_state(sim: Sim) -> None:
    sku = sorted(sim.state.products)[0]
    brand_sku = sim.state.products[sku].brand_sku
    set_response = sim.client.post("/_sandbox/stock/set", json={"sku": brand_sku, "available": 9})
    assert set_response.json()["availableStock"] == 9
    bad = sim.client.post("/_sandbox/stock/set", json={"sku": "NOPE", "available": 9})
    assert bad.status_code == 400
    state = sim.client.get("/_sandbox/state").json()
    assert state["products"][sku]["availableStock"] == 9
    assert state["counters"]["requests"] == {}
