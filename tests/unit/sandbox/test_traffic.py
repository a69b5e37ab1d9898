"""The simulators' traffic recorder: what was sent, what the simulator answered, what arrived."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from syncd.sandbox.ankorstore import create_app
from syncd.sandbox.ankorstore_state import AnkorstoreState
from syncd.sandbox.catalog import generate_catalog
from syncd.sandbox.faults import DroppedConnection, FaultMiddleware, FaultPlan
from syncd.sandbox.traffic import TrafficLog, record
from syncd.sandbox.world import SandboxWorld
from tests.unit.sandbox._ankorstore_sim import JSONAPI, TOKEN_FORM

pytestmark = pytest.mark.anyio

BODY = b'{"atomic:operations": []}'


@pytest.fixture
def faults() -> FaultPlan:
    return FaultPlan("ankorstore")


@pytest.fixture
def log() -> TrafficLog:
    return TrafficLog()


@pytest.fixture
async def client(faults: FaultPlan, log: TrafficLog) -> AsyncIterator[httpx.AsyncClient]:
    app = record(
        create_app(AnkorstoreState(generate_catalog(5, seed=1)), faults), "ankorstore", log
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        yield http


async def test_a_request_refused_before_its_body_is_read_is_recorded_whole(
    client: httpx.AsyncClient, log: TrafficLog
) -> None:
    response = await client.post(
        "/api/v1/operations?x=1",
        content=BODY,
        headers={"Content-Type": JSONAPI, "Accept": JSONAPI},
    )
    assert response.status_code == 401  # no token: refused before the body is read
    [exchange] = log.drain()
    assert (exchange.api, exchange.method, exchange.path, exchange.query) == (
        "ankorstore",
        "POST",
        "/api/v1/operations",
        "x=1",
    )
    assert exchange.body == BODY
    assert ("content-type", JSONAPI) in exchange.headers
    assert exchange.answer is not None
    assert exchange.answer.status == 401
    assert exchange.answer == exchange.delivered
    assert not exchange.fault_injected
    assert len(log) == 0


async def test_an_injected_status_is_no_answer_of_the_simulator(
    client: httpx.AsyncClient, log: TrafficLog, faults: FaultPlan
) -> None:
    faults.arm("status", status=503)
    assert (await client.post("/oauth/token", data=TOKEN_FORM)).status_code == 503
    [exchange] = log.drain()
    assert exchange.answer is None
    assert exchange.delivered.status == 503
    assert exchange.fault_injected


async def test_malformed_json_keeps_what_the_simulator_meant_to_answer(
    client: httpx.AsyncClient, log: TrafficLog, faults: FaultPlan
) -> None:
    faults.arm("malformed_json")
    response = await client.post("/oauth/token", data=TOKEN_FORM)
    [exchange] = log.drain()
    assert exchange.answer is not None
    assert "access_token" in json.loads(exchange.answer.body)
    assert exchange.delivered.body == response.content != exchange.answer.body
    assert exchange.fault_injected


async def test_a_dropped_connection_is_recorded_as_dropped(
    client: httpx.AsyncClient, log: TrafficLog, faults: FaultPlan
) -> None:
    faults.arm("lose_response")
    with pytest.raises(DroppedConnection):
        await client.post("/oauth/token", data=TOKEN_FORM)
    [exchange] = log.drain()
    assert exchange.dropped
    assert exchange.answer is not None
    assert exchange.answer.status == 200  # the token was issued; the client never saw it


async def test_admin_routes_are_not_recorded(client: httpx.AsyncClient, log: TrafficLog) -> None:
    assert (await client.get("/_sandbox/faults")).status_code == 200
    assert log.drain() == []


async def test_a_world_records_only_when_given_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SandboxWorld, "default_traffic", None)  # the test session may set it
    world = SandboxWorld.create(variants=5, seed=1)
    assert all(isinstance(app, FaultMiddleware) for app in world.apps().values())  # unwrapped
    world.traffic = log = TrafficLog()
    for app in world.apps().values():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            await http.get("/anything")
    assert sorted(e.api for e in log.drain()) == sorted(world.apps())
