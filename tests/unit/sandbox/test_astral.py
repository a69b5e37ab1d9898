"""The ASTRAL simulator: double-entry postings, cursors, state, bundles, late transactions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncd.sandbox.astral_ledger import InsufficientStock
from syncd.sandbox.astral_state import AstralState
from tests.unit.sandbox._ankorstore_sim import Board, Sim, board_server, plug

POSTINGS = "/api/astral/v1/stock/postings"
STATE = "/api/astral/v1/stock/state"
TRANSACTIONS = "/api/astral/v1/stock/transactions"
Key = tuple[str, str, str, str, str]
"""(variant, location, status, lot number, expiry date)."""


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


@pytest.fixture
def sim(make_sim: Callable[..., Sim]) -> Sim:
    return make_sim()


def _with_lots(astral: AstralState) -> str:
    return next(v.id for v in astral.variants.values() if len(v.lots) > 1)


def _batched(astral: AstralState) -> str:
    return next(v.id for v in astral.variants.values() if v.unit_multiplier > 1 and not v.lots)


def _move_stock(astral: AstralState) -> None:
    """A day of warehouse life: replenishment, orders, damage, counts, a late booking."""
    lotted, batched = _with_lots(astral), _batched(astral)
    plain = next(v.id for v in astral.variants.values() if v.id not in (lotted, batched))
    astral.expect(batched, 6)
    astral.receive(batched, 5)  # one batch short: 1 stays incoming
    astral.reserve(lotted, 3, related_id="order-1")
    astral.ship(lotted, 2, related_id="order-1")
    astral.release(lotted, 1, related_id="order-1")
    astral.damage(plain, 1)
    astral.adjust(plain, 4)
    astral.snapshot(plain, 10)
    astral.adjust(batched, 2, created_at=astral.clock.now() - 12 * 3600)


def _read_all(sim: Sim, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page from the first to the one without ``links.next``."""
    first = sim.get(path, **params)
    assert first.status_code == 200, first.text
    pages = [first.json()]
    while pages[-1]["links"]["next"]:
        pages.append(sim.follow(pages[-1]["links"]["next"]))
    return pages


def _units(postings: list[dict[str, Any]]) -> dict[Key, int]:
    out: dict[Key, int] = defaultdict(int)
    for posting in postings:
        a = posting["attributes"]
        if a["locationStatus"] == "void":
            continue
        key = (
            a["productVariantId"],
            a["locationId"],
            a["locationStatus"],
            a.get("lotNumber", ""),
            a.get("expiryDate", ""),
        )
        out[key] += a["quantity"] * a["unitMultiplier"]
    return {k: v for k, v in out.items() if v}


def _state_units(resources: list[dict[str, Any]]) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for resource in resources:
        for row in resource["attributes"]["quantities"]:
            lot = row.get("lot") or {}
            key = (
                resource["id"],
                row["locationId"],
                row["status"],
                lot.get("number", ""),
                lot.get("expiryDate") or "",
            )
            if row["quantity"]:
                out[key] = row["quantity"] * row["unitMultiplier"]
    return out


# --- the ledger itself -------------------------------------------------------------------


def test_every_transaction_sums_to_zero_including_void(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    pages = _read_all(sim, TRANSACTIONS, include="posting", **{"page[limit]": 50})
    postings = {p["id"]: p for page in pages for p in page.get("included", [])}
    transactions = [t for page in pages for t in page["data"]]
    assert len(transactions) == sim.state.astral.summary()["transactions"]
    for txn in transactions:
        members = [postings[ref["id"]] for ref in txn["relationships"]["postings"]["data"]]
        assert sum(p["attributes"]["quantity"] for p in members) == 0


def test_replaying_the_feed_from_any_cursor_reproduces_the_state(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    pages = _read_all(sim, POSTINGS, include="lot,state", **{"page[limit]": 7})
    feed = [p for page in pages for p in page["data"]]
    state = _state_units(
        [r for page in _read_all(sim, STATE, **{"page[limit]": 100}) for r in page["data"]]
    )
    assert _units(feed) == state
    seen = 0
    for page in pages[:-1]:
        seen += len(page["data"])
        prefix = feed[:seen]
        cursor = page["meta"]["page"]["to"]
        tail = [
            p
            for later in _read_all(
                sim, POSTINGS, include="lot", **{"page[limit]": 7, "page[after]": cursor}
            )
            for p in later["data"]
        ]
        assert [p["id"] for p in prefix + tail] == [p["id"] for p in feed]
        merged: dict[Key, int] = defaultdict(int)
        for part in (_units(prefix), _units(tail)):
            for key, units in part.items():
                merged[key] += units
        assert {k: v for k, v in merged.items() if v} == state


def test_include_state_is_the_balance_before_the_page(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    pages = _read_all(sim, POSTINGS, include="lot,state", **{"page[limit]": 5})
    before: list[dict[str, Any]] = []
    for page in pages:
        opening = _state_units([r for r in page["included"] if r["type"] == "stock-state"])
        on_page = {p["attributes"]["productVariantId"] for p in page["data"]}
        expected = {k: v for k, v in _units(before).items() if k[0] in on_page}
        assert opening == expected
        before += page["data"]


def test_a_late_transaction_is_behind_the_cursor_but_in_the_state(sim: Sim) -> None:
    astral = sim.state.astral
    _move_stock(astral)
    pages = _read_all(sim, POSTINGS, **{"page[limit]": 50})
    cursor = pages[-1]["meta"]["page"]["to"]
    variant = _batched(astral)
    before = astral.balance(variant)
    late = astral.adjust(variant, 3, created_at=astral.clock.now() - 3600)
    tail = sim.get(POSTINGS, **{"page[after]": cursor}).json()
    assert tail["data"] == []
    assert tail["links"]["next"] is None
    assert tail["meta"]["page"] == {"from": None, "to": None, "hasMore": False, "perPage": 10}
    state = sim.get(
        STATE, **{"filter[productVariantIds][]": variant, "filter[status][]": "available"}
    ).json()
    assert sum(q["quantity"] for q in state["data"][0]["attributes"]["quantities"]) == before + 3
    replay = [
        p["id"] for page in _read_all(sim, POSTINGS, **{"page[limit]": 50}) for p in page["data"]
    ]
    assert {p.id for p in late.postings} <= set(replay)


def test_feed_pages_ten_by_default_in_created_at_order(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    pages = _read_all(sim, POSTINGS, include="transaction")
    assert all(len(page["data"]) == 10 for page in pages[:-1])
    assert pages[0]["meta"]["page"]["perPage"] == 10
    assert pages[-1]["meta"]["page"]["hasMore"] is False
    created = []
    for page in pages:
        when = {t["id"]: t["attributes"]["createdAt"] for t in page["included"]}
        created += [when[p["relationships"]["transaction"]["data"]["id"]] for p in page["data"]]
    assert created == sorted(created)
    assert len(created) == sim.state.astral.summary()["postings"]


def test_descending_feed_and_page_before_walk_back(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    ascending = [
        p["id"] for page in _read_all(sim, POSTINGS, **{"page[limit]": 100}) for p in page["data"]
    ]
    descending = [
        p["id"]
        for page in _read_all(sim, POSTINGS, sort="-transaction.createdAt")
        for p in page["data"]
    ]
    assert descending == ascending[::-1]
    cursor = sim.get(POSTINGS, **{"page[limit]": 100}).json()["data"][25]
    anchor = next(p for p in sim.state.astral.feed_postings()[0] if p.id == cursor["id"]).cursor
    back = sim.get(POSTINGS, **{"page[before]": anchor, "page[limit]": 5}).json()
    assert [p["id"] for p in back["data"]] == ascending[20:25]
    assert back["links"]["prev"] is not None


def test_lot_numbers_need_include_lot(sim: Sim) -> None:
    lotted = _with_lots(sim.state.astral)
    plain = sim.get(POSTINGS, **{"filter[productVariantIds][]": lotted}).json()["data"]
    with_lot = sim.get(POSTINGS, include="lot", **{"filter[productVariantIds][]": lotted}).json()[
        "data"
    ]
    assert all("lotNumber" not in p["attributes"] for p in plain)
    assert all("lotNumber" in p["attributes"] for p in with_lot)


def test_filters_narrow_the_feed(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    shipped = _read_all(sim, POSTINGS, **{"filter[movementType][in][]": "order_shipped"})
    movements = {p["attributes"]["movementType"] for page in shipped for p in page["data"]}
    assert movements == {"order_shipped"}
    voids = _read_all(sim, POSTINGS, **{"filter[locationStatus][]": "void", "page[limit]": 100})
    assert {p["attributes"]["locationStatus"] for page in voids for p in page["data"]} == {"void"}
    related = sim.get(TRANSACTIONS, **{"filter[relatedIds][]": "order-1"}).json()["data"]
    assert len(related) == 3


# --- movements ---------------------------------------------------------------------------


def test_a_reservation_cannot_take_more_than_available(sim: Sim) -> None:
    astral = sim.state.astral
    variant = _batched(astral)
    held = astral.balance(variant)
    postings = astral.summary()["postings"]
    with pytest.raises(InsufficientStock):
        astral.reserve(variant, held + 1)
    assert astral.summary()["postings"] == postings
    astral.reserve(variant, held)
    assert (astral.balance(variant), astral.balance(variant, "reserved")) == (0, held)


def test_reservations_take_the_earliest_expiry_first(sim: Sim) -> None:
    astral = sim.state.astral
    variant = _with_lots(astral)
    lots = sorted(astral.variants[variant].lots, key=lambda lot: lot[1])
    earliest = astral.balance(variant, lot=lots[0])
    txn = astral.reserve(variant, earliest + 1)
    taken = {p.lot: p.quantity for p in txn.postings if p.status == "reserved"}
    assert taken[lots[0]] == earliest
    assert sum(taken.values()) == earliest + 1
    assert lots[0] in taken


def test_receiving_moves_incoming_to_available_and_on_hand_excludes_incoming(sim: Sim) -> None:
    astral = sim.state.astral
    variant = _batched(astral)
    available = astral.balance(variant)
    astral.expect(variant, 4)
    astral.receive(variant, 3)
    astral.damage(variant, 1)
    rows = sim.get(STATE, **{"filter[productVariantIds][]": variant}).json()["data"][0][
        "attributes"
    ]["quantities"]
    by_status = {r["status"]: r["quantity"] for r in rows}
    assert by_status["incoming"] == 1
    assert by_status["available"] == available + 2
    assert by_status["damaged"] == 1
    on_hand = sim.get(
        STATE, **{"filter[productVariantIds][]": variant, "filter[status][]": "onHand"}
    ).json()
    assert [r["quantity"] for r in on_hand["data"][0]["attributes"]["quantities"]] == [
        available + 3
    ]


def test_state_at_ignores_later_transactions(sim: Sim) -> None:
    astral = sim.state.astral
    variant = _batched(astral)
    before = astral.balance(variant)
    sim.state.clock.advance(10)
    moment = int(astral.clock.now())
    sim.state.clock.advance(10)
    astral.adjust(variant, 5)
    params = {
        "filter[productVariantIds][]": variant,
        "filter[status][]": "available",
        "stateAt": moment,
    }
    rows = sim.get(STATE, **params).json()["data"][0]["attributes"]["quantities"]
    assert sum(r["quantity"] for r in rows) == before


def test_bundles_are_the_minimum_over_their_components(make_sim: Callable[..., Sim]) -> None:
    # Every single at ASTRAL in units of one: every catalog bundle exists there too.
    sim = make_sim(n_variants=30, seed=4, catalog_options={"astral_share": 1.0, "batch_share": 0.0})
    astral = sim.state.astral
    assert astral.bundles
    body = sim.get(STATE, **{"filter[productType]": "bundle", "page[limit]": 100}).json()
    assert {r["id"] for r in body["data"]} == set(astral.bundles)
    for resource in body["data"]:
        components = astral.bundles[resource["id"]]
        expected = min(astral.balance(c) // n for c, n in components.items())
        available = [q for q in resource["attributes"]["quantities"] if q["status"] == "available"]
        assert [q["quantity"] for q in available] == [expected]
        assert available[0]["productType"] == "bundle"
    bundle_id, components = next(iter(astral.bundles.items()))
    postings = _read_all(
        sim, POSTINGS, **{"filter[productVariantIds][]": bundle_id, "page[limit]": 100}
    )
    variants = {p["attributes"]["productVariantId"] for page in postings for p in page["data"]}
    assert variants == set(components)


# --- paging, faults and errors -----------------------------------------------------------


@pytest.mark.parametrize("path", [STATE, TRANSACTIONS, "/api/astral/v1/stock/locations"])
def test_every_astral_list_pages_ten_by_default_and_clamps_at_100(sim: Sim, path: str) -> None:
    _move_stock(sim.state.astral)
    assert sim.get(path).json()["meta"]["page"]["perPage"] == 10
    assert sim.get(path, **{"page[limit]": 1000}).json()["meta"]["page"]["perPage"] == 100


def test_the_partial_page_fault_is_short_says_has_more_and_loses_nothing(sim: Sim) -> None:
    _move_stock(sim.state.astral)
    expected = [
        p["id"] for page in _read_all(sim, POSTINGS, **{"page[limit]": 100}) for p in page["data"]
    ]
    sim.faults.arm("partial_page", count=1, path_prefix=POSTINGS)
    pages = _read_all(sim, POSTINGS)
    assert len(pages[0]["data"]) < 10
    assert pages[0]["meta"]["page"]["hasMore"] is True
    assert [p["id"] for page in pages for p in page["data"]] == expected
    assert sim.faults.fired["partial_page"] == 1
    assert all(len(page["data"]) == 10 for page in pages[1:-1])


@pytest.mark.parametrize(
    "params",
    [
        {"page[after]": "not-a-cursor"},
        {"page[after]": "00000000-0000-4000-8000-000000000000,1700000000"},
        {"include": "lots"},
        {"sort": "createdAt"},
        {"filter[locationStatus][]": "onHand"},
    ],
)
def test_bad_feed_queries_get_400_with_astral_errors(sim: Sim, params: dict[str, str]) -> None:
    response = sim.get(POSTINGS, **params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["status"] == 400


def test_astral_needs_the_ankorstore_token(sim: Sim) -> None:
    response = sim.client.get(POSTINGS, headers={"Accept": "application/vnd.api+json"})
    assert response.status_code == 401
    assert response.json()["errors"][0]["status"] == 401
    assert sim.get(POSTINGS).status_code == 200


def test_admin_movements_and_state(sim: Sim) -> None:
    astral = sim.state.astral
    variant = _batched(astral)
    sku = astral.variants[variant].sku
    before = astral.balance(variant)
    moved = sim.client.post(
        "/_sandbox/astral/movements", json={"kind": "receive", "variant": sku, "batches": 2}
    )
    assert moved.status_code == 201
    late = sim.client.post(
        "/_sandbox/astral/movements",
        json={"kind": "adjust", "variant": sku, "delta": -1, "backdate": 600},
    )
    assert late.status_code == 201
    assert astral.balance(variant) == before + 1
    refused = sim.client.post(
        "/_sandbox/astral/movements", json={"kind": "reserve", "variant": sku, "batches": 10_000}
    )
    assert refused.status_code == 400
    rows = sim.client.get("/_sandbox/astral/state").json()["balances"]
    row = next(r for r in rows if r["variantId"] == variant and r["status"] == "available")
    assert (
        row["units"]
        == row["batches"] * astral.variants[variant].unit_multiplier
        == (before + 1) * row["unitMultiplier"]
    )
