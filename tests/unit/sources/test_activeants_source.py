"""The Active Ants source against a scripted ShopApi behind httpx.MockTransport."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.config.sections import ActiveAntsSourceSection
from syncd.http.errors import InvalidResponse
from syncd.http.presets import activeants_client
from syncd.ledger.store import Ledger
from syncd.model import Account, Catalog, StockStatus, Variant
from syncd.sources.activeants import ActiveAntsStockSource
from syncd.sources.problems import MalformedPage

pytestmark = pytest.mark.anyio

BASE = "https://shopapi.test"


@dataclass
class FakeShopApi:
    """``POST /token`` and ``GET /v2/stock/bulk``; stock per Active Ants SKU."""

    stock: dict[str, int]
    changed: set[str] = field(default_factory=set)
    queued: deque[httpx.Response] = field(default_factory=deque)
    reads: list[httpx.Request] = field(default_factory=list)
    ticks: int = 0

    def set(self, sku: str, available: int) -> None:
        self.stock[sku] = available
        self.changed.add(sku)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(
                200, json={"access_token": "t", "token_type": "bearer", "expires_in": 56499}
            )
        assert request.url.path == "/v2/stock/bulk"
        self.reads.append(request)
        if self.queued:
            return self.queued.popleft()
        self.ticks += 1
        full = request.url.params["all_products"] == "true"
        skus = sorted(self.stock) if full else sorted(self.changed)
        self.changed = set()
        products = [self.product(sku) for sku in skus]
        to = f"2025-01-01T10:00:{self.ticks:02d}.000+01:00"
        return httpx.Response(
            200,
            json={
                "messageCode": "OK",
                "message": f"Found {len(products)} products suitable for stock synchronization.",
                "result": {
                    "period": {"from": request.url.params.get("from"), "to": to},
                    "products": products,
                },
            },
        )

    def product(self, sku: str) -> dict[str, Any]:
        level = self.stock[sku]
        return {
            "sku": sku,
            "name": sku,
            "stock": level,
            "thts": [],
            "freeStock": level + 1,
            "economicStock": level + 10,
            "availableStock": level,
            "physicalStock": level + 2,
        }

    def last_params(self) -> httpx.QueryParams:
        return self.reads[-1].url.params


CATALOG = Catalog(
    variants={
        sku: Variant(sku=sku, activeants_sku=f"AA-{sku}") for sku in ("TEE-S", "TEE-M", "TEE-L")
    }
)


def make_source(api: FakeShopApi, clock: FakeClock, **section: Any) -> ActiveAntsStockSource:
    client = activeants_client(
        base_url=BASE,
        username="u",
        password="p",
        clock=clock,
        transport=httpx.MockTransport(api.handler),
    )
    return ActiveAntsStockSource(
        client, CATALOG, ActiveAntsSourceSection.model_validate(section), clock=clock
    )


def available(balances: dict[Account, int]) -> dict[str, int]:
    return {
        a.sku: q
        for a, q in balances.items()
        if a.location == "activeants" and a.status is StockStatus.AVAILABLE
    }


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with await Ledger.open(tmp_path / "ledger.db") as opened:
        yield opened
        assert await opened.check_invariants() == []


def fake() -> FakeShopApi:
    return FakeShopApi(stock={"AA-TEE-S": 5, "AA-TEE-M": 0, "AA-TEE-L": 12})


async def test_a_full_read_first_then_incremental_reads_from_the_last_to(ledger: Ledger) -> None:
    api, clock = fake(), FakeClock()
    source = make_source(api, clock)
    first = await source.poll(ledger)
    assert api.last_params()["all_products"] == "true"
    assert first.complete
    assert first.recorded == 1
    assert first.requests == 1
    assert available(await ledger.balances()) == {"TEE-S": 5, "TEE-L": 12}

    api.set("AA-TEE-M", 4)
    api.set("AA-TEE-S", 2)
    second = await source.poll(ledger)
    params = api.last_params()
    assert params["all_products"] == "false"
    assert params["from"] == first.cursor == "2025-01-01T10:00:01.000+01:00"
    # URL-encoded: a raw "+" would arrive as a space (seed 001 L2874, brief G7).
    assert "%2B01%3A00" in str(api.reads[-1].url)
    assert not second.complete
    assert second.recorded == 1
    assert available(await ledger.balances()) == {"TEE-S": 2, "TEE-M": 4, "TEE-L": 12}
    assert await ledger.cursor("activeants") == second.cursor


async def test_an_incremental_read_with_no_change_records_nothing_but_stays_fresh(
    ledger: Ledger,
) -> None:
    api, clock = fake(), FakeClock()
    source = make_source(api, clock)
    first = await source.poll(ledger)
    before = await ledger.last_txn_id()
    clock.advance(60)
    idle = await source.poll(ledger)
    assert idle.recorded == 0
    assert idle.requests == 1
    assert await ledger.last_txn_id() == before
    # The window simply grows: the next read starts at the same from.
    assert await ledger.cursor("activeants") == first.cursor
    api.set("AA-TEE-L", 1)
    await source.poll(ledger)
    assert api.last_params()["from"] == first.cursor
    [state] = await ledger.feed_states()
    assert state.last_success is not None
    assert state.last_success.timestamp() == pytest.approx(clock.wall())
    assert state.extra["checked_to"] == "2025-01-01T10:00:03.000+01:00"
    assert state.extra["mode"] == "incremental"


async def test_a_full_reconciliation_runs_on_schedule_and_books_drift_as_adjustments(
    ledger: Ledger,
) -> None:
    api, clock = fake(), FakeClock()
    source = make_source(api, clock, full_reconcile_interval=3600)
    await source.poll(ledger)
    # A change the incremental feed never reports (brief A3: what bumps the
    # mutation date is unknown): only a full read can see it.
    api.stock["AA-TEE-S"] = 1
    clock.advance(1800)
    await source.poll(ledger)
    assert api.last_params()["all_products"] == "false"
    assert available(await ledger.balances())["TEE-S"] == 5
    clock.advance(1800)
    result = await source.poll(ledger)
    assert api.last_params()["all_products"] == "true"
    assert result.complete
    assert available(await ledger.balances())["TEE-S"] == 1
    rows = await ledger.explain_rows("TEE-S")
    assert rows[0].movement == "snapshot"
    assert rows[0].metadata["read"] == "full"
    assert {(r.account.status, r.quantity) for r in rows[:2]} == {
        (StockStatus.AVAILABLE, -4),
        (StockStatus.VOID, 4),
    }


async def test_a_restarted_source_remembers_when_it_last_read_everything(ledger: Ledger) -> None:
    api, clock = fake(), FakeClock()
    await make_source(api, clock).poll(ledger)
    clock.advance(60)
    await make_source(api, clock).poll(ledger)
    assert [r.url.params["all_products"] for r in api.reads] == ["true", "false"]


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, text="<html>maintenance</html>"), InvalidResponse),
        (
            httpx.Response(
                200, json={"messageCode": "NOK", "message": "Try later", "result": None}
            ),
            MalformedPage,
        ),
        (
            httpx.Response(200, json={"messageCode": "OK", "result": {"products": []}}),
            MalformedPage,
        ),
    ],
)
async def test_a_malformed_page_records_nothing_and_keeps_the_cursor(
    ledger: Ledger, response: httpx.Response, error: type[Exception]
) -> None:
    api, clock = fake(), FakeClock()
    source = make_source(api, clock)
    first = await source.poll(ledger)
    api.set("AA-TEE-S", 0)
    api.queued.append(response)
    before = await ledger.last_txn_id()
    with pytest.raises(error):
        await source.poll(ledger)
    assert await ledger.last_txn_id() == before
    assert await ledger.cursor("activeants") == first.cursor
    [state] = await ledger.feed_states()
    assert state.last_error is not None
    # The next good read picks the change up from the same from.
    await source.poll(ledger)
    assert api.last_params()["from"] == first.cursor
    assert "TEE-S" not in available(await ledger.balances())  # zero


async def test_an_empty_full_read_never_zeroes_the_location(ledger: Ledger) -> None:
    api, clock = fake(), FakeClock()
    source = make_source(api, clock, full_reconcile_interval=3600)
    await source.poll(ledger)
    balances = await ledger.balances()
    saved = dict(api.stock)
    api.stock.clear()
    clock.advance(3600)
    result = await source.poll(ledger)
    assert api.last_params()["all_products"] == "true"
    assert result.recorded == 0
    assert "nothing recorded" in result.problems[0]
    assert await ledger.balances() == balances
    [state] = await ledger.feed_states()
    assert state.last_error is not None
    assert "nothing recorded" in state.last_error
    # The intensive full read is not hammered: incremental reads go on meanwhile.
    api.stock.update(saved)
    clock.advance(60)
    await source.poll(ledger)
    assert api.last_params()["all_products"] == "false"
    [state] = await ledger.feed_states()
    assert state.last_error is None
    clock.advance(900)
    assert (await source.poll(ledger)).complete


async def test_a_short_full_read_is_partial_and_keeps_the_others(ledger: Ledger) -> None:
    api, clock = fake(), FakeClock()
    source = make_source(api, clock, full_reconcile_interval=60)
    await source.poll(ledger)
    del api.stock["AA-TEE-L"]
    api.stock["AA-TEE-S"] = 3
    clock.advance(61)
    result = await source.poll(ledger)
    assert not result.complete
    assert any("covered 2 of 3" in p for p in result.problems)
    assert available(await ledger.balances()) == {"TEE-S": 3, "TEE-L": 12}


async def test_bad_items_are_skipped_reported_and_the_rest_recorded(ledger: Ledger) -> None:
    api, clock = fake(), FakeClock()
    api.stock["AA-UNKNOWN"] = 7
    source = make_source(api, clock)
    await source.poll(ledger)
    api.set("AA-TEE-S", -2)  # backorders: negative available (brief A8)
    api.set("AA-TEE-M", 6)
    with capture_logs() as logs:
        result = await source.poll(ledger)
    [below] = [e for e in logs if e["event"] == "source.stock_below_zero"]
    assert below["items"] == {"AA-TEE-S": -2}
    assert result.skipped == 0
    assert result.problems == [
        "1 item(s) below zero at the warehouse, recorded as 0: AA-TEE-S (-2)"
    ]
    # Never a negative sellable balance, and never the stale positive level
    # (that would oversell what the warehouse no longer has).
    # (`available` lists non-zero balances only.)
    assert available(await ledger.balances()) == {"TEE-M": 6, "TEE-L": 12}


async def test_the_configured_stock_field_is_what_becomes_available(ledger: Ledger) -> None:
    api, clock = fake(), FakeClock()
    await make_source(api, clock, stock_field="freeStock").poll(ledger)
    assert available(await ledger.balances()) == {"TEE-S": 6, "TEE-M": 1, "TEE-L": 13}


async def test_the_source_describes_itself_for_staleness() -> None:
    source = make_source(fake(), FakeClock(), location="aa-nl", stale_after=120, poll_interval=30)
    assert source.name == "activeants"
    assert source.locations == ("aa-nl",)
    assert (source.stale_after, source.poll_interval) == (120, 30)
