"""syncd's Ankorstore and ASTRAL traffic against the published specs, flow by flow.

Every integration test's simulator traffic is already checked at teardown
(tests/conftest.py); this file makes sure each client flow is exercised and
checked even when the conformance tests run alone, and that the checker
really fails on traffic that breaks a spec.

The world records into its own :class:`TrafficLog`, so what is asserted here
is exactly this test's traffic.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.channels.updates import PlannedUpdate
from syncd.clock import SystemClock
from syncd.config import load_config
from syncd.engine.plan import batch_rows
from syncd.http.client import ApiClient, QueryValue
from syncd.http.jsonapi import paginate
from syncd.integrations import (
    build_channels,
    build_clients,
    build_order_sources,
    build_stock_sources,
)
from syncd.ledger.store import Ledger
from syncd.model import OutboxRow
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.limits import SimClock, SlidingWindows, Verdict, Window
from syncd.sandbox.traffic import Answer, Exchange, TrafficLog
from syncd.sandbox.world import SandboxWorld
from syncd.sources.base import Source
from tests.conformance.defects import KNOWN_DEFECTS
from tests.conformance.specs import specs_dir
from tests.conformance.traffic_check import Report, check

JSONAPI = "application/vnd.api+json"
ASTRAL = "/api/astral/v1/stock"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@dataclass
class Rig:
    world: SandboxWorld
    log: TrafficLog
    client: ApiClient
    astral: Source
    orders: Source
    channel: AnkorstoreChannel
    ledger: Ledger


@asynccontextmanager
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A recorded world, and the clients, sources and channel as the daemon builds them."""
    specs_dir()  # skip cleanly without the specs
    catalog = generate_catalog(60, seed=4, channel_share=1.0, bundle_share=0.0, prepacks=0)
    world = SandboxWorld.create(catalog=catalog)
    world.traffic = log = TrafficLog()
    async with world.running():
        config = load_config(world.write_config(tmp_path / "config"))
        clock = SystemClock()
        clients = build_clients(config, clock=clock)
        try:
            astral = next(
                s for s in build_stock_sources(config, clients, clock) if s.name == "astral"
            )
            orders = next(
                s
                for s in build_order_sources(config, clients, clock)
                if s.name == "ankorstore_orders"
            )
            channel = build_channels(config, clients, clock)["ankorstore"]
            assert isinstance(channel, AnkorstoreChannel)
            async with await Ledger.open(tmp_path / "ledger.db") as ledger:
                yield Rig(world, log, clients["ankorstore"], astral, orders, channel, ledger)
        finally:
            await clients.aclose()


def _batches(desired: dict[str, int]) -> list[tuple[PlannedUpdate, ...]]:
    now = datetime.now(UTC)
    rows = [
        OutboxRow("ankorstore", sku, quantity, None, 1, "pending", now)
        for sku, quantity in desired.items()
    ]
    return list(batch_rows(rows, 50))


async def _astral_flows(r: Rig) -> None:
    """Bootstrap (state + postings), a followed change, and the two reads syncd's
    source does not make today (locations, transactions) through its HTTP client."""
    await r.astral.poll(r.ledger)
    astral = r.world.ankorstore.astral
    variant = next(iter(astral.variants))
    astral.reserve(variant, 1) if astral.balance(variant) else astral.receive(variant, 2)
    await r.astral.poll(r.ledger)
    async for _ in paginate(r.client, f"{ASTRAL}/locations", params={"page[limit]": 10}):
        pass
    params: list[tuple[str, QueryValue]] = [
        ("page[limit]", 20),
        ("sort", "-createdAt"),
        ("include", "posting"),
    ]
    async for _ in paginate(r.client, f"{ASTRAL}/transactions", params=params):
        pass


async def _push_flows(r: Rig) -> None:
    """Open orders, variant listings (all, by id), a clean push, a 422 and a 429."""
    skus = sorted(r.world.catalog.published("ankorstore"))
    state = r.world.ankorstore
    state.place_order({skus[0]: 1})
    await r.orders.poll(r.ledger)
    await r.channel.read_live()
    await r.channel.read_live(skus[:3])
    [batch] = _batches({sku: 5 + i for i, sku in enumerate(skus[:20])})
    await r.channel.push(batch)
    r.world.faults["ankorstore"].arm("invalid_operation", index=2)
    [batch] = _batches({sku: 7 + i for i, sku in enumerate(skus[20:30])})
    refused = await r.channel.push(batch)
    assert refused.parked
    assert refused.acknowledged
    # The simulator's own limiter answers the next request with its 429
    # (Retry-After: 1); the client waits and its resend lands.
    state.rate = _FullOnce(state.rate.windows, r.world.clock)
    [batch] = _batches({skus[30]: 9})
    assert (await r.channel.push(batch)).acknowledged


class _FullOnce(SlidingWindows):
    """The simulator's rate windows, full for exactly one request."""

    def __init__(self, windows: list[Window], clock: SimClock) -> None:
        super().__init__(windows, clock)
        self.full = True

    def check(self, key: str = "") -> Verdict:
        if not self.full:
            return super().check(key)
        self.full = False
        self.rejected += 1
        now = self.clock.now()
        return Verdict(False, self.windows[0].limit, 0, 1, math.ceil(now) + 1)


@pytest.mark.integration
@pytest.mark.anyio
async def test_every_client_flow_conforms_and_was_checked(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        await _astral_flows(r)
        await _push_flows(r)
        report = check(r.log.drain())
    assert not report.violations, report.describe()
    assert {
        "list-state-astral",
        "list-postings-astral",
        "list-locations-astral",
        "list-transactions-astral",
        "list-internal-orders",
        "list-product-variants-with-stock",
        "post-api-v1-operations",
    } <= set(report.checked)
    assert report.statuses["post-api-v1-operations"] >= {200, 422, 429}
    assert report.out_of_scope["ankorstore-oauth-token"] >= 1
    # syncd sends page[limit] on the variant listing, which the spec forgot.
    assert report.allowed["variant-list-pagination-undeclared"] >= 1


# --- the checker catches what breaks the spec -------------------------------------------


def _exchange(
    method: str,
    path: str,
    *,
    query: str = "",
    body: Any = None,
    content_type: str = JSONAPI,
    status: int = 200,
    answer: Any = None,
    api: str = "ankorstore",
    injected: bool = False,
) -> Exchange:
    headers = [("accept", JSONAPI), ("authorization", "Bearer t")]
    raw = b""
    if body is not None:
        raw = body if isinstance(body, bytes) else httpx.Request("POST", "/", json=body).content
        headers.append(("content-type", content_type))
    reply = Answer(
        status=status,
        headers=(("content-type", JSONAPI),),
        body=httpx.Response(status, json=answer).content if answer is not None else b"",
    )
    return Exchange(
        api=api,
        method=method,
        path=path,
        query=query,
        headers=tuple(headers),
        body=raw,
        answer=None if injected else reply,
        delivered=reply,
        dropped=False,
    )


def _update(variant_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "op": "update",
        "data": {"type": "product-variants", "id": variant_id, "attributes": attributes},
    }


OK_RESULTS = {
    "atomic:results": [{"data": {"type": "product-variants", "id": UNKNOWN_ID, "attributes": {}}}]
}


def _only(exchanges: Sequence[Exchange]) -> Report:
    specs_dir()
    return check(exchanges)


def test_a_conforming_push_passes() -> None:
    good = _exchange(
        "POST",
        "/api/v1/operations",
        body={"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=3)]},
        answer=OK_RESULTS,
    )
    report = _only([good])
    assert report.violations == []
    assert report.checked["post-api-v1-operations"] == 1


def _request_only(method: str, path: str, **options: Any) -> Exchange:
    """An exchange whose answer came from an injected fault: only the request counts."""
    return _exchange(method, path, status=503, answer={}, injected=True, **options)


PUSH = "/api/v1/operations"


@pytest.mark.parametrize(
    ("exchange", "expected"),
    [
        pytest.param(
            _request_only(
                "POST",
                PUSH,
                body={"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=3)]},
                content_type="application/json",
            ),
            "request: RequestBodyValidationError: Content for the following mimetype not "
            "found: application/json",
            id="wrong media type",
        ),
        pytest.param(
            _request_only(
                "POST", PUSH, body={"atomic:operations": [{"data": _update(UNKNOWN_ID)["data"]}]}
            ),
            "'op' is a required property",
            id="missing required field",
        ),
        pytest.param(
            _request_only(
                "POST", PUSH, body={"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=-1)]}
            ),
            "'stockQuantity': -1}} is not valid",
            id="negative stock",
        ),
        pytest.param(
            _request_only("GET", f"{ASTRAL}/postings", query="filter%5Bstatus%5D%5B%5D=available"),
            "request: query parameter 'filter[status][]' is not declared",
            id="undeclared filter",
        ),
        pytest.param(
            _request_only(
                "GET", f"/api/v1/product-variants/{UNKNOWN_ID}", query="page%5Blimit%5D=5"
            ),
            "request: query parameter 'page[limit]' is not declared",
            id="page parameter where the allow-list does not reach",
        ),
        pytest.param(
            _exchange("GET", "/api/v1/stock", status=404, answer={"errors": []}),
            "this ankorstore route is in no spec and not on the OUT_OF_SCOPE list",
            id="route in no spec",
        ),
        pytest.param(
            _exchange(
                "POST",
                PUSH,
                body={"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=3)]},
                answer={"atomic:results": [{"data": {"id": UNKNOWN_ID}}]},
            ),
            "response: InvalidData: atomic:results/0/data: 'type' is a required property",
            id="answer missing a required field",
        ),
        pytest.param(
            _exchange(
                "GET",
                f"{ASTRAL}/state",
                status=429,
                answer={"errors": [{"status": 429}]},
            ),
            "response: 429 without Retry-After",
            id="429 without Retry-After",
        ),
    ],
)
def test_the_checker_reports_what_breaks_the_spec(exchange: Exchange, expected: str) -> None:
    violations = _only([exchange]).violations
    assert any(expected in str(v) for v in violations), "\n".join(map(str, violations))


def test_an_injected_fault_answer_is_not_blamed_but_its_request_is_checked() -> None:
    garbage = {"not": "a JSON:API document"}
    sound = _exchange(
        "POST",
        "/api/v1/operations",
        body={"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=3)]},
        status=503,
        answer=garbage,
        injected=True,
    )
    broken = _exchange(
        "POST",
        "/api/v1/operations",
        body={"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=-3)]},
        status=503,
        answer=garbage,
        injected=True,
    )
    assert _only([sound]).violations == []
    report = _only([broken])
    assert [v.what.split(":")[0] for v in report.violations] == ["request"]
    assert report.injected == 1


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_non_conforming_request_over_the_wire_is_caught() -> None:
    """End to end: recorder, simulator and checker, with a plain-JSON bulk write."""
    specs_dir()
    world = SandboxWorld.create(variants=10, seed=2)
    world.traffic = log = TrafficLog()
    state = world.ankorstore
    variant_id = state.ordered_listings()[0].id
    async with world.running(), httpx.AsyncClient(base_url=world.urls["ankorstore"]) as client:
        form = {
            "grant_type": "client_credentials",
            "client_id": state.client_id,
            "client_secret": state.client_secret,
            "scope": "*",
        }
        token = (await client.post("/oauth/token", data=form)).json()["access_token"]
        response = await client.post(
            "/api/v1/operations",
            json={"atomic:operations": [_update(variant_id, stockQuantity=4)]},
            headers={"Authorization": f"Bearer {token}", "Accept": JSONAPI},
        )
    assert response.status_code == 415  # the simulator refuses it as Ankorstore would
    report = check(log.drain())
    [violation] = report.violations
    assert (violation.method, violation.status) == ("POST", 415)
    assert violation.what.startswith("request:"), violation
    assert report.statuses == {"post-api-v1-operations": {415}}  # its 415 itself conforms


def test_a_request_marked_invalid_on_purpose_has_only_its_answer_checked() -> None:
    body = {"atomic:operations": [_update(UNKNOWN_ID, stockQuantity=-1)]}
    broken = _exchange("POST", "/api/v1/operations", body=body, answer=OK_RESULTS)
    marked = dataclasses.replace(broken, headers=(*broken.headers, ("x-test-invalid", "1")))
    assert _only([broken]).violations
    assert _only([marked]).violations == []
    untyped = httpx.Response(200, json={"atomic:results": [{"data": {"id": UNKNOWN_ID}}]})
    bad_answer = Answer(200, marked.delivered.headers, untyped.content)
    assert _only([dataclasses.replace(marked, answer=bad_answer)]).violations


def _fabric_update(body: dict[str, Any]) -> Exchange:
    exchange = _exchange(
        "POST",
        "/v3/inventories/actions/find-and-update",
        body=body,
        content_type="application/json",
        api="fabric",
        status=500,
        answer={},
        injected=True,  # only the request is of interest here
    )
    tenant = (("x-fabric-tenant-id", "tenant"), ("x-fabric-channel-id", "12"))
    return dataclasses.replace(exchange, headers=(*exchange.headers, *tenant))


def test_fabric_v3_traffic_is_checked_with_the_counters_defect_fixed() -> None:
    # fabric's own example sends integer counters; the raw spec says objects (SOURCES.md).
    good = _fabric_update({"sku": "SKU-1", "locationNumber": 7, "counters": {"onHand": 5}})
    report = _only([good])
    assert report.violations == []
    assert report.checked == {"updateInventory": 1}
    missing_sku = _fabric_update({"locationNumber": 7, "counters": {"onHand": 5}})
    assert any("sku" in v.what for v in _only([missing_sku]).violations)


def test_the_marketplace_routes_syncd_uses_are_out_of_scope_by_name() -> None:
    write = _exchange(
        "PATCH", "/v1/brands/510/inventory/777001/", body={"inventory": 3}, api="fabric"
    )
    listing = _exchange("GET", "/v1/brands/510/inventory/", api="fabric")
    unknown = _exchange("GET", "/v2/inventory", api="fabric")
    report = _only([write, listing, unknown])
    assert report.out_of_scope == {"fabric-supplier-write": 1, "fabric-marketplace": 1}
    assert [v.path for v in report.violations] == ["/v2/inventory"]


def test_every_known_defect_is_sourced_and_narrow() -> None:
    for defect in KNOWN_DEFECTS:
        assert defect.source, defect.name
        if defect.finding is None:
            assert defect.handled_by, f"{defect.name}: neither a finding rule nor a handler"
        else:
            # A rule names the operations and the side it applies to: never all of them.
            assert defect.operations, defect.name
            assert defect.part in {"request", "response"}, defect.name
    assert len({d.name for d in KNOWN_DEFECTS}) == len(KNOWN_DEFECTS)
