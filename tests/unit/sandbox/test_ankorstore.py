"""The Ankorstore simulator over real loopback sockets: auth, limits, stock writes, orders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncd.sandbox.ankorstore_orders import OrderError
from syncd.sandbox.ankorstore_state import SANDBOX_CLIENT_ID, AnkorstoreState
from syncd.sandbox.ankorstore_stock import SimListing
from syncd.sandbox.catalog import generate_catalog
from tests.unit.sandbox._ankorstore_sim import TOKEN_FORM, Board, Sim, board_server, plug


def _update(listing_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "op": "update",
        "data": {"type": "product-variants", "id": listing_id, "attributes": attributes},
    }


@pytest.fixture(scope="module")
def board() -> Iterator[Board]:
    with board_server() as running:
        yield running


@pytest.fixture
def make_sim(board: Board) -> Iterator[Callable[..., Sim]]:
    sims: list[Sim] = []

    def make(**options: Any) -> Sim:
        sims.append(plug(board, **options))
        return sims[-1]

    yield make
    for made in sims:
        made.client.close()


def _variant(sim: Sim, listing: SimListing) -> dict[str, Any]:
    response = sim.get(f"/api/v1/product-variants/{listing.id}")
    assert response.status_code == 200, response.text
    attributes: dict[str, Any] = response.json()["data"]["attributes"]
    return attributes


@pytest.fixture
def sim(make_sim: Callable[..., Sim]) -> Sim:
    return make_sim()


def _single(state: AnkorstoreState, *, pack: int | None = None) -> SimListing:
    """The first listing sold in packs of ``pack`` (any pack size when None)."""
    for listing in state.ordered_listings():
        if pack is None or listing.unit_multiplier == pack:
            return listing
    raise LookupError("no such listing in the generated catalog")


def _pack_sold(state: AnkorstoreState) -> SimListing:
    return next(x for x in state.ordered_listings() if x.unit_multiplier > 1)


# --- auth ---------------------------------------------------------------------------


def test_token_is_a_form_encoded_client_credentials_grant(sim: Sim) -> None:
    response = sim.client.post("/oauth/token", data=TOKEN_FORM)
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert response.headers["X-RateLimit-Limit"] == "60"
    me = sim.client.get(
        "/api/v1/me",
        headers={"Authorization": f"Bearer {body['access_token']}", "Accept": "application/json"},
    )
    assert me.status_code == 200
    assert me.json()["data"]["type"] == "user"


@pytest.mark.parametrize(
    ("form", "status", "code"),
    [
        ({**TOKEN_FORM, "client_secret": "wrong"}, 401, "invalid_client"),
        ({**TOKEN_FORM, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({k: v for k, v in TOKEN_FORM.items() if k != "client_id"}, 400, "invalid_request"),
    ],
)
def test_bad_token_requests_are_refused_with_a_jsonapi_error(
    sim: Sim, form: dict[str, str], status: int, code: str
) -> None:
    response = sim.client.post("/oauth/token", data=form)
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code
    assert "access_token" not in response.json()


def test_a_json_token_request_is_refused(sim: Sim) -> None:
    response = sim.client.post("/oauth/token", json=TOKEN_FORM)
    assert response.status_code == 415


def test_the_61st_token_request_in_an_hour_is_refused(sim: Sim) -> None:
    # The fixture already took one token: 59 more are allowed, then 429.
    for _ in range(59):
        assert sim.client.post("/oauth/token", data=TOKEN_FORM).status_code == 200
    refused = sim.client.post("/oauth/token", data=TOKEN_FORM)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # Wrong credentials count too: the limit is on requests, not on tokens issued.
    assert (
        sim.client.post("/oauth/token", data={**TOKEN_FORM, "client_secret": "x"}).status_code
        == 429
    )
    sim.state.clock.advance(3600)
    assert sim.client.post("/oauth/token", data=TOKEN_FORM).status_code == 200
    assert sim.state.counters.rate_limited == 2


def test_an_expired_token_gets_the_documented_401(sim: Sim) -> None:
    assert sim.get("/api/v1/product-variants").status_code == 200
    sim.state.clock.advance(3600)
    response = sim.get("/api/v1/product-variants")
    assert response.status_code == 401
    assert response.json()["errors"][0] == {
        "status": "401",
        "title": "Unauthorized",
        "detail": "Unauthorized",
    }
    sim.login()
    assert sim.get("/api/v1/product-variants").status_code == 200


def test_revoked_tokens_get_401_until_a_new_token_is_taken(sim: Sim) -> None:
    assert sim.state.revoke_tokens() == 1
    assert sim.get("/api/v1/product-variants").status_code == 401
    sim.login()
    assert sim.get("/api/v1/product-variants").status_code == 200


def test_the_revoke_tokens_fault_fires_once_then_stops(sim: Sim) -> None:
    sim.faults.arm("revoke_tokens", count=1, path_prefix="/api/v1/orders")
    assert sim.get("/api/v1/product-variants").status_code == 200
    assert sim.get("/api/v1/orders").status_code == 401
    assert sim.get("/api/v1/product-variants").status_code == 401
    sim.login()
    assert sim.get("/api/v1/orders").status_code == 200
    assert sim.faults.fired["revoke_tokens"] == 1


# --- media types -------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_a_jsonapi_endpoint_without_the_jsonapi_accept_gets_406(
    sim: Sim, accept: str | None
) -> None:
    request = sim.client.build_request(
        "GET", "/api/v1/product-variants", headers={"Authorization": f"Bearer {sim.token}"}
    )
    if accept is None:
        del request.headers["Accept"]
    else:
        request.headers["Accept"] = accept
    response = sim.client.send(request)
    assert response.status_code == 406
    assert response.json()["errors"][0]["status"] == "406"


def test_a_body_that_is_not_jsonapi_gets_415_and_changes_nothing(sim: Sim) -> None:
    listing = _single(sim.state)
    response = sim.send(
        "POST",
        "/api/v1/operations",
        {"atomic:operations": [_update(listing.id, stockQuantity=7)]},
        **{"Content-Type": "application/json"},
    )
    assert response.status_code == 415
    assert _variant(sim, listing)["stockQuantity"] == 20


# --- rate limits ---------------------------------------------------------------------------


def test_the_601st_request_in_a_minute_gets_429_with_the_documented_headers(sim: Sim) -> None:
    remaining = []
    for _ in range(600):
        response = sim.get("/api/v1/me")
        assert response.status_code == 200
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining[0] == 599
    assert remaining[-1] == 0
    assert remaining == sorted(remaining, reverse=True)
    refused = sim.get("/api/v1/product-variants")
    assert refused.status_code == 429
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.headers["X-RateLimit-Limit"] == "600"
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= 60
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(sim.state.clock.now())
    sim.state.clock.advance(60)
    assert sim.get("/api/v1/product-variants").status_code == 200
    assert sim.state.counters.rate_limited == 1
    assert sim.client.get("/_sandbox/state").json()["counters"]["rateLimited"] == 1


def test_astral_spends_the_same_budget_as_the_rest_of_the_api(sim: Sim) -> None:
    for _ in range(599):  # spent elsewhere on the host by the same client
        assert sim.state.rate.check(SANDBOX_CLIENT_ID).allowed
    assert sim.get("/api/v1/product-variants").status_code == 200
    refused = sim.get("/api/astral/v1/stock/postings")
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["status"] == 429


def test_the_hour_window_holds_even_when_each_minute_is_under_600() -> None:
    state = AnkorstoreState(generate_catalog(3, seed=1))
    accepted = 0
    for _ in range(41):
        for _ in range(600):
            if not state.rate.check(SANDBOX_CLIENT_ID).allowed:
                break
            accepted += 1
        state.clock.advance(60)
    assert accepted == 24_000


# --- variants and pagination -----------------------------------------------------------------


def test_variants_page_15_by_default_and_links_next_reaches_every_variant(sim: Sim) -> None:
    first = sim.get("/api/v1/product-variants")
    assert first.json()["meta"]["page"]["perPage"] == 15
    assert len(first.json()["data"]) == 15
    seen: list[str] = []
    url: str | None = str(first.request.url)
    pages = 0
    while url:
        body = sim.client.get(url, headers=sim.headers()).json()
        seen += [v["id"] for v in body["data"]]
        url = body["links"].get("next")
        pages += 1
        if url:
            assert body["meta"]["page"]["hasMore"] is True
    assert seen == [listing.id for listing in sim.state.ordered_listings()]
    assert pages == -(-len(seen) // 15)
    assert body["meta"]["page"]["hasMore"] is False


def test_page_limit_is_clamped_to_100_and_must_be_positive(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(n_variants=150)
    body = sim.get("/api/v1/product-variants", **{"page[limit]": 500}).json()
    assert body["meta"]["page"]["perPage"] == 100
    assert len(body["data"]) == 100
    assert sim.get("/api/v1/product-variants", **{"page[limit]": 0}).status_code == 400
    assert sim.get("/api/v1/product-variants", **{"page[after]": "nope"}).status_code == 400


def test_variants_filter_by_comma_separated_skus(sim: Sim) -> None:
    wanted = [listing.sku for listing in sim.state.ordered_listings()[3:5]]
    body = sim.get("/api/v1/product-variants", **{"filter[sku]": ",".join(wanted)}).json()
    assert sorted(v["attributes"]["sku"] for v in body["data"]) == sorted(wanted)


def test_page_before_returns_the_previous_page(sim: Sim) -> None:
    ids = [listing.id for listing in sim.state.ordered_listings()]
    body = sim.get("/api/v1/product-variants", **{"page[before]": ids[20], "page[limit]": 5}).json()
    assert [v["id"] for v in body["data"]] == ids[15:20]


def test_partial_page_fault_gives_a_short_page_that_still_leads_to_the_rest(sim: Sim) -> None:
    sim.faults.arm("partial_page", count=1, path_prefix="/api/v1/product-variants")
    body = sim.get("/api/v1/product-variants").json()
    assert 0 < len(body["data"]) < 15
    assert body["meta"]["page"]["hasMore"] is True
    seen = [v["id"] for v in body["data"]]
    url = body["links"].get("next")
    while url:
        body = sim.client.get(url, headers=sim.headers()).json()
        seen += [v["id"] for v in body["data"]]
        url = body["links"].get("next")
    assert seen == [listing.id for listing in sim.state.ordered_listings()]


def test_include_product_exposes_the_unit_multiplier(sim: Sim) -> None:
    listing = _single(sim.state)
    body = sim.get(f"/api/v1/product-variants/{listing.id}", include="product").json()
    assert body["included"][0]["attributes"]["unitMultiplier"] == listing.unit_multiplier
    assert sim.get("/api/v1/product-variants", include="nonsense").status_code == 400


# --- stock writes ---------------------------------------------------------------------------


def test_patch_stock_sets_the_total_and_available_follows_reservations(sim: Sim) -> None:
    listing = _single(sim.state)
    sim.state.place_order({listing.sku: 3})
    response = sim.send(
        "PATCH",
        f"/api/v1/product-variants/{listing.id}/stock",
        {
            "data": {
                "type": "product-variants",
                "id": listing.id,
                "attributes": {"stockQuantity": 50},
            }
        },
    )
    assert response.status_code == 200
    attributes = response.json()["data"]["attributes"]
    reserved = 3 * listing.unit_multiplier
    assert attributes["stockQuantity"] == 50
    assert attributes["reservedQuantity"] == reserved
    assert attributes["availableQuantity"] == 50 - reserved
    assert sim.state.counters.write_requests == 1


def test_always_in_stock_nulls_the_quantities_and_a_quantity_switches_it_off(sim: Sim) -> None:
    listing = _single(sim.state)
    assert sim.operations([_update(listing.id, isAlwaysInStock=True)]).status_code == 200
    attributes = _variant(sim, listing)
    assert attributes["isAlwaysInStock"] is True
    assert attributes["stockQuantity"] is None
    assert attributes["availableQuantity"] is None
    assert (
        sim.operations([_update(listing.id, stockQuantity=4, isAlwaysInStock=False)]).status_code
        == 200
    )
    attributes = _variant(sim, listing)
    assert (attributes["isAlwaysInStock"], attributes["stockQuantity"]) == (False, 4)


def test_a_quantity_with_always_in_stock_true_is_contradictory(sim: Sim) -> None:
    listing = _single(sim.state)
    response = sim.operations([_update(listing.id, stockQuantity=4, isAlwaysInStock=True)])
    assert response.status_code == 422
    assert (
        response.json()["errors"][0]["source"]["pointer"]
        == "/atomic:operations/0/data/attributes/isAlwaysInStock"
    )


def test_fifty_operations_are_applied_and_answered_in_order(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(n_variants=90)
    listings = sim.state.ordered_listings()[:50]
    assert len(listings) == 50
    response = sim.operations([_update(x.id, stockQuantity=i) for i, x in enumerate(listings)])
    assert response.status_code == 200
    results = response.json()["atomic:results"]
    assert [r["data"]["id"] for r in results] == [x.id for x in listings]
    assert [x.stock_quantity for x in listings] == list(range(50))
    assert sim.state.counters.updated_variants == 50


def test_fifty_one_operations_are_refused_whole(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(n_variants=90)
    listings = sim.state.ordered_listings()[:51]
    assert len(listings) == 51
    response = sim.operations([_update(x.id, stockQuantity=1) for x in listings])
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"]["pointer"] == "/atomic:operations"
    assert all(x.stock_quantity == 20 for x in listings)
    assert sim.operations([]).status_code == 422


def test_a_negative_quantity_is_refused_with_a_pointer_and_the_batch_is_atomic(sim: Sim) -> None:
    listings = sim.state.ordered_listings()[:5]
    operations = [_update(x.id, stockQuantity=9) for x in listings]
    operations[3] = _update(listings[3].id, stockQuantity=-1)
    response = sim.operations(operations)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["source"]["pointer"] for e in errors] == [
        "/atomic:operations/3/data/attributes/stockQuantity"
    ]
    assert all(x.stock_quantity == 20 for x in listings)
    assert sim.state.counters.write_requests == 0


def test_without_atomic_operations_the_valid_ones_apply_despite_the_422(
    make_sim: Callable[..., Sim],
) -> None:
    sim = make_sim(atomic_operations=False)
    listings = sim.state.ordered_listings()[:5]
    operations = [_update(x.id, stockQuantity=9) for x in listings]
    operations[1] = _update(listings[1].id, stockQuantity=2.5)
    response = sim.operations(operations)
    assert response.status_code == 422
    assert [x.stock_quantity for x in listings] == [9, 20, 9, 9, 9]


def test_unknown_variant_is_404_and_bad_op_or_type_is_422(sim: Sim) -> None:
    listing = _single(sim.state)
    unknown = sim.operations([_update("00000000-0000-4000-8000-000000000000", stockQuantity=1)])
    assert unknown.status_code == 404
    remove = sim.operations([{**_update(listing.id, stockQuantity=1), "op": "remove"}])
    assert remove.status_code == 422
    prose_type = {
        "op": "update",
        "data": {"type": "productVariants", "id": listing.id, "attributes": {"stockQuantity": 1}},
    }
    response = sim.operations([prose_type])
    assert response.status_code == 422
    assert response.json()["errors"][0]["source"]["pointer"] == "/atomic:operations/0/data/type"
    assert listing.stock_quantity == 20


def test_the_prose_type_is_accepted_when_aliases_are_allowed(make_sim: Callable[..., Sim]) -> None:
    sim = make_sim(accept_type_aliases=True)
    listing = _single(sim.state)
    operation = {
        "op": "update",
        "data": {"type": "productVariants", "id": listing.id, "attributes": {"stockQuantity": 1}},
    }
    assert sim.operations([operation]).status_code == 200
    assert listing.stock_quantity == 1


def test_the_invalid_operation_fault_refuses_one_batch_then_stops(sim: Sim) -> None:
    listings = sim.state.ordered_listings()[:4]
    sim.faults.arm("invalid_operation", count=1, index=2)
    operations = [_update(x.id, stockQuantity=5) for x in listings]
    refused = sim.operations(operations)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["source"]["pointer"] == (
        "/atomic:operations/2/data/attributes/stockQuantity"
    )
    assert all(x.stock_quantity == 20 for x in listings)
    assert sim.operations(operations).status_code == 200
    assert all(x.stock_quantity == 5 for x in listings)


# --- orders ------------------------------------------------------------------------------


def test_an_order_reserves_pieces_and_ships_or_cancels(sim: Sim) -> None:
    pack = _pack_sold(sim.state)
    sim.state.set_stock(pack.id, 10 * pack.unit_multiplier)
    shipped = sim.state.place_order({pack.sku: 2})
    cancelled = sim.state.place_order({pack.sku: 1})
    reserved = 3 * pack.unit_multiplier
    attributes = _variant(sim, pack)
    assert attributes["reservedQuantity"] == reserved
    assert attributes["availableQuantity"] == attributes["stockQuantity"] - reserved
    sim.state.ship_order(shipped.id)
    sim.state.cancel_order(cancelled.id)
    attributes = _variant(sim, pack)
    assert attributes["reservedQuantity"] == 0
    assert attributes["stockQuantity"] == 8 * pack.unit_multiplier
    assert attributes["availableQuantity"] == 8 * pack.unit_multiplier


def test_an_order_beyond_available_stock_is_refused_unless_forced(sim: Sim) -> None:
    listing = _single(sim.state, pack=1)
    with pytest.raises(OrderError):
        sim.state.place_order({listing.sku: 21})
    sim.state.place_order({listing.sku: 21}, force=True)
    assert _variant(sim, listing)["availableQuantity"] == 0


def test_orders_follow_the_documented_flow_only(sim: Sim) -> None:
    order = sim.state.place_order({_single(sim.state).sku: 1})
    with pytest.raises(OrderError):
        sim.state.advance_order(order.id, "received")
    sim.state.advance_order(order.id, "brand_confirmed")
    sim.state.advance_order(order.id, "shipping_labels_generated")
    sim.state.advance_order(order.id, "brand_confirmed")  # labels reset (L3494)
    assert sim.state.order(order.id).history == [
        "ankor_confirmed",
        "brand_confirmed",
        "shipping_labels_generated",
        "brand_confirmed",
    ]


def test_accepting_with_smaller_quantities_releases_the_difference(sim: Sim) -> None:
    listing = _single(sim.state, pack=1)
    order = sim.state.place_order({listing.sku: 5})
    sim.state.accept_order(order.id, {listing.sku: 2})
    assert listing.reserved_quantity == 2
    with pytest.raises(OrderError):
        sim.state.accept_order(order.id, {listing.sku: 1})


def test_orders_list_filters_by_status_and_includes_items_with_variants(sim: Sim) -> None:
    listing = _single(sim.state)
    kept = sim.state.place_order({listing.sku: 2})
    other = sim.state.place_order({listing.sku: 1})
    sim.state.advance_order(other.id, "brand_confirmed")
    body = sim.get(
        "/api/v1/orders",
        **{"filter[status]": "ankor_confirmed", "include": "orderItems.productVariant"},
    ).json()
    assert [o["id"] for o in body["data"]] == [kept.id]
    items = [r for r in body["included"] if r["type"] == "order-items"]
    variants = {r["id"]: r for r in body["included"] if r["type"] == "product-variants"}
    assert items[0]["attributes"]["quantity"] == 2
    assert items[0]["attributes"]["multipliedQuantity"] == 2 * listing.unit_multiplier
    variant_id = items[0]["relationships"]["productVariant"]["data"]["id"]
    assert variants[variant_id]["attributes"]["sku"] == listing.sku
    assert sim.get("/api/v1/orders", **{"filter[status]": "lost"}).status_code == 400


def test_orders_page_newest_first_to_the_end(sim: Sim) -> None:
    listing = _single(sim.state)
    sim.state.set_stock(listing.id, 1000)
    placed = [sim.state.place_order({listing.sku: 1}).id for _ in range(17)]
    first = sim.get("/api/v1/orders").json()
    assert first["meta"]["page"]["perPage"] == 15
    second = sim.client.get(first["links"]["next"], headers=sim.headers()).json()
    assert "next" not in second["links"]
    assert [o["id"] for o in first["data"] + second["data"]] == placed[::-1]


def test_a_single_order_has_its_shipping_overview(sim: Sim) -> None:
    order = sim.state.place_order({_single(sim.state).sku: 1})
    body = sim.get(f"/api/v1/orders/{order.id}").json()
    assert "shippingOverview" in body["data"]["attributes"]
    assert sim.get("/api/v1/orders/00000000-0000-4000-8000-000000000000").status_code == 404


# --- admin routes --------------------------------------------------------------------------


def test_admin_routes_drive_orders_and_stock_and_report_state(sim: Sim) -> None:
    listing = _single(sim.state, pack=1)
    admin = sim.client
    assert (
        admin.post(
            f"/_sandbox/variants/{listing.sku}/stock", json={"stockQuantity": 30}
        ).status_code
        == 200
    )
    placed = admin.post("/_sandbox/orders", json={"lines": {listing.sku: 4}})
    assert placed.status_code == 201
    order_id = placed.json()["order"]["id"]
    assert admin.post("/_sandbox/orders", json={"lines": {listing.sku: 99}}).status_code == 400
    snapshot = admin.get("/_sandbox/state").json()
    row = next(v for v in snapshot["variants"] if v["id"] == listing.id)
    assert (row["stockQuantity"], row["reservedQuantity"], row["availableQuantity"]) == (30, 4, 26)
    shipped = admin.post(f"/_sandbox/orders/{order_id}/status", json={"status": "shipped"})
    assert shipped.json()["order"]["attributes"]["status"] == "shipped"
    row = next(v for v in admin.get("/_sandbox/state").json()["variants"] if v["id"] == listing.id)
    assert (row["stockQuantity"], row["reservedQuantity"]) == (26, 0)
    assert admin.post("/_sandbox/clock/advance", json={"seconds": 3600}).status_code == 200
    assert sim.get("/api/v1/product-variants").status_code == 401
    counters = admin.get("/_sandbox/state").json()["counters"]
    assert counters["requests"]["GET /api/v1/product-variants"] == 1
    assert counters["unauthorized"] == 1


def test_non_ascii_credentials_are_just_wrong_credentials(sim: Sim) -> None:
    response = sim.client.post("/oauth/token", data={**TOKEN_FORM, "client_secret": "sécret"})
    assert response.status_code == 401
