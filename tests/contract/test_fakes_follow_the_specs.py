"""The in-memory fakes answer what the published specs say, as the sandbox does.

Every exchange an integration test has with the sandbox is validated against
the published OpenAPI documents (tests/conformance). The contract's fakes
stand in for the same APIs, so their answers are held to the same documents:
a fake that drifted from them would make the fake half of the contract prove
nothing. Only Ankorstore (its main API and ASTRAL) has published specs; the
fabric Marketplace, Active Ants and FashionTrade routes are out of their
scope (:data:`tests.conformance.traffic_check.OUT_OF_SCOPE`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.sandbox.traffic import Answer
from syncd.sandbox.traffic import Exchange as Recorded
from tests.conformance.traffic_check import check, specs_present
from tests.contract._channels import ANKORSTORE, channel_rig, update
from tests.contract._sources import ANKORSTORE_ORDERS, ASTRAL, source_rig
from tests.contract._switchboard import Switchboards
from tests.contract._wire import Exchange

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not specs_present(), reason="the published specs are not present"),
]


def recorded(exchange: Exchange) -> Recorded:
    """A fake's exchange as the sandbox's traffic log records one."""
    request, response = exchange.request, exchange.response
    answer = Answer(
        status=response.status_code,
        headers=tuple((k.lower(), v) for k, v in response.headers.items()),
        body=response.content,
    )
    return Recorded(
        api="ankorstore",
        method=request.method,
        path=request.url.raw_path.decode("ascii").split("?", 1)[0],
        query=request.url.query.decode("ascii"),
        headers=tuple((k.lower(), v) for k, v in request.headers.items()),
        body=exchange.body,
        answer=answer,
        delivered=answer,
        dropped=False,
    )


async def test_the_ankorstore_fake_answers_as_the_published_specs_say(
    tmp_path: Path, boards: Switchboards
) -> None:
    exchanges: list[Exchange] = []
    for case in (ASTRAL, ANKORSTORE_ORDERS):
        async with source_rig(case, "fake", tmp_path / case.feed, boards) as rig:
            rig.remote.populate()
            await rig.poll_to_end()
            rig.remote.change()
            await rig.poll_to_end()
            exchanges += rig.wire.exchanges
    async with channel_rig(ANKORSTORE, "fake", tmp_path / "channel", boards) as rig:
        skus = rig.skus[:60]
        await rig.push([update(sku, rig.value(sku, 2)) for sku in skus])
        await rig.channel.read_live(skus[:3])
        await rig.channel.read_live()
        exchanges += rig.wire.exchanges
    report = check(recorded(e) for e in exchanges)
    assert report.violations == [], report.describe()
    # Every kind of answer the contract relies on was validated, not skipped.
    assert {"POST /api/v1/operations", "GET /api/v1/orders"} <= {
        f"{e.method} {e.path}" for e in exchanges
    }
    assert len(report.checked) >= 4, report.checked
