"""The ASTRAL source against a scripted ASTRAL behind httpx.MockTransport.

The fake keeps one list of postings in feed order; its stock state is the
sum of those postings (void excluded), as ASTRAL defines state (seed 000
L13137-13141). Tests move stock by appending postings, insert late ones in
the past, and queue malformed answers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.config.sections import AstralSourceSection
from syncd.http.errors import InvalidResponse
from syncd.http.presets import ankorstore_client
from syncd.ledger.store import Ledger
from syncd.model import (
    Account,
    Catalog,
    CursorUpdate,
    StockStatus,
    TransactionDraft,
    TransactionKind,
    Variant,
)
from syncd.sources.astral import AstralStockSource
from syncd.sources.problems import MalformedPage

pytestmark = pytest.mark.anyio

BASE = "https://ankorstore.test"
WH = "wh-0001"
MULT = {"v-tee": 1, "v-mug": 3, "v-cap": 2}
SKU = {"v-tee": "TEE", "v-mug": "MUG", "v-cap": "CAP"}


@dataclass
class FakeAstral:
    postings: list[dict[str, Any]] = field(default_factory=list)
    queued: deque[httpx.Response] = field(default_factory=deque)
    reads: list[httpx.Request] = field(default_factory=list)
    on_state_page: Callable[[], None] | None = None
    seq: int = 0

    # --- moving stock ---------------------------------------------------------------

    def post(
        self, variant: str, status: str, batches: int, *, at: int | None = None, **extra: Any
    ) -> None:
        self.seq += 1
        resource = {
            "type": "posting",
            "id": f"p-{self.seq:04d}",
            "attributes": {
                "locationId": WH,
                "productVariantId": variant,
                "locationStatus": status,
                "quantity": batches,
                "movementType": "manual",
                "unitMultiplier": MULT.get(variant, 1),
                **extra,
            },
        }
        if at is None:
            self.postings.append(resource)
        else:
            self.postings.insert(at, resource)

    def move(
        self, variant: str, source: str, target: str, batches: int, *, at: int | None = None
    ) -> None:
        self.post(variant, source, -batches, at=at)
        self.post(variant, target, batches, at=None if at is None else at + 1)

    def truth(self) -> dict[tuple[str, str, str], int]:
        """(sku, status, lot) -> units, void excluded."""
        totals: dict[tuple[str, str, str], int] = {}
        for p in self.postings:
            a = p["attributes"]
            if a["locationStatus"] == "void" or a["productVariantId"] not in SKU:
                continue
            key = (SKU[a["productVariantId"]], a["locationStatus"], a.get("lotNumber", ""))
            totals[key] = totals.get(key, 0) + a["quantity"] * a["unitMultiplier"]
        return {k: v for k, v in totals.items() if v}

    # --- serving --------------------------------------------------------------------

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(
                200, json={"token_type": "Bearer", "expires_in": 3600, "access_token": "t"}
            )
        self.reads.append(request)
        if path == "/api/astral/v1/stock/postings":
            if self.queued:
                return self.queued.popleft()
            return self._postings(request.url.params)
        assert path == "/api/astral/v1/stock/state"
        if self.on_state_page is not None:
            self.on_state_page()
        return self._state(request.url.params)

    @staticmethod
    def cursor(resource: dict[str, Any]) -> str:
        return f"{resource['id']},1700000000"

    def _postings(self, params: httpx.QueryParams) -> httpx.Response:
        ordered = (
            list(reversed(self.postings))
            if params.get("sort", "").startswith("-")
            else self.postings
        )
        start = 0
        if "page[after]" in params:
            anchor = params["page[after]"].split(",")[0]
            start = next(i for i, p in enumerate(ordered) if p["id"] == anchor) + 1
        limit = int(params.get("page[limit]", 10))
        items = ordered[start : start + limit]
        more = start + limit < len(ordered)
        return httpx.Response(
            200,
            json={
                "data": items,
                "meta": {
                    "page": {
                        "from": self.cursor(items[0]) if items else None,
                        "to": self.cursor(items[-1]) if items else None,
                        "hasMore": more,
                        "perPage": limit,
                    }
                },
                "links": {"first": "x", "next": "y" if more else None, "prev": None},
                "jsonapi": {"version": "1.0"},
            },
        )

    def _state(self, params: httpx.QueryParams) -> httpx.Response:
        rows: dict[str, dict[tuple[str, str], int]] = {}
        for p in self.postings:
            a = p["attributes"]
            per = rows.setdefault(a["productVariantId"], {})
            key = (a["locationStatus"], a.get("lotNumber", ""))
            per[key] = per.get(key, 0) + a["quantity"]
        ids = sorted(rows)
        start = ids.index(params["page[after]"]) + 1 if "page[after]" in params else 0
        limit = int(params["page[limit]"])
        chosen = ids[start : start + limit]
        data = [
            {
                "type": "stock-state",
                "id": vid,
                "attributes": {
                    "quantities": [
                        {
                            "quantity": qty,
                            "locationId": WH,
                            "status": status,
                            "unitMultiplier": MULT.get(vid, 1),
                            **({"lot": {"number": lot}} if lot else {}),
                        }
                        for (status, lot), qty in sorted(rows[vid].items())
                        if status != "void"
                    ]
                },
            }
            for vid in chosen
        ]
        more = start + limit < len(ids)
        next_link = (
            f"{BASE}/api/astral/v1/stock/state?page%5Bafter%5D={chosen[-1]}&page%5Blimit%5D={limit}"
            if more
            else None
        )
        return httpx.Response(
            200,
            json={
                "data": data,
                "meta": {"page": {"from": None, "to": None, "hasMore": more, "perPage": limit}},
                "links": {"first": "x", "next": next_link, "prev": None},
            },
        )


def opening() -> FakeAstral:
    api = FakeAstral()
    api.move("v-tee", "void", "available", 10)
    api.move("v-mug", "void", "available", 4)
    api.move("v-cap", "void", "available", 5)
    return api


CATALOG = Catalog(
    variants={sku: Variant(sku=sku, astral_variant_id=vid) for vid, sku in SKU.items()}
)


def make_source(
    api: FakeAstral, clock: FakeClock, catalog: Catalog = CATALOG, **section: Any
) -> AstralStockSource:
    client = ankorstore_client(
        base_url=BASE,
        client_id="c",
        client_secret="s",
        clock=clock,
        transport=httpx.MockTransport(api.handler),
    )
    return AstralStockSource(
        client,
        catalog,
        AstralSourceSection.model_validate({"page_size": 2, **section}),
        clock=clock,
    )


def ledger_now(clock: FakeClock) -> datetime:
    return datetime.fromtimestamp(clock.wall(), UTC)


async def non_void(ledger: Ledger) -> dict[tuple[str, str, str], int]:
    return {
        (a.sku, a.status.value, a.lot): q
        for a, q in (await ledger.balances()).items()
        if a.status is not StockStatus.VOID
    }


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with await Ledger.open(tmp_path / "ledger.db") as opened:
        yield opened
        assert await opened.check_invariants() == []


async def test_bootstrap_reads_the_whole_state_between_two_looks_at_the_head(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    result = await make_source(api, clock).poll(ledger)
    kinds = [
        (r.url.path.rsplit("/", 1)[-1], r.url.params.get("sort"), r.url.params.get("page[limit]"))
        for r in api.reads
    ]
    assert kinds == [
        ("postings", "-transaction.createdAt", "1"),
        ("state", None, "2"),
        ("state", None, "2"),
        ("postings", "transaction.createdAt", "1"),
    ]
    state_params = api.reads[1].url.params
    assert state_params.get_list("filter[status][]") == [
        "available",
        "reserved",
        "damaged",
        "qualityControl",
        "blocked",
        "incoming",
    ]
    assert state_params.get_list("filter[locationTypes][]") == ["warehouse", "brand"]
    assert result.complete
    assert result.caught_up
    assert result.requests == 4
    assert await ledger.cursor("astral") == FakeAstral.cursor(api.postings[-1])
    # Units: batches x unitMultiplier (MUG 4 x 3, CAP 5 x 2).
    assert (
        await non_void(ledger)
        == api.truth()
        == {
            ("TEE", "available", ""): 10,
            ("MUG", "available", ""): 12,
            ("CAP", "available", ""): 10,
        }
    )


async def test_following_the_feed_matches_the_state_and_costs_one_request_when_idle(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock)
    await source.poll(ledger)
    api.move("v-mug", "available", "reserved", 1)
    api.move("v-tee", "void", "incoming", 6)
    api.move("v-tee", "incoming", "available", 2)
    api.move("v-cap", "available", "damaged", 1)
    result = await source.poll(ledger)
    assert result.recorded == 4
    assert result.caught_up
    assert await non_void(ledger) == api.truth()
    balances = await ledger.balances()
    # Incoming is its own status, never available; void is only the counter side.
    assert balances[Account(f"astral:{WH}", StockStatus.INCOMING, "TEE")] == 4
    assert balances[Account(f"astral:{WH}", StockStatus.AVAILABLE, "TEE")] == 12
    mug = await ledger.explain_rows("MUG", limit=4)
    reserved = next(r for r in mug if r.account.status is StockStatus.RESERVED)
    assert (reserved.quantity, reserved.batches, reserved.unit_multiplier) == (3, 1, 3)
    assert reserved.external_id is not None
    assert reserved.movement == "manual"
    before = len(api.reads)
    idle = await source.poll(ledger)
    assert len(api.reads) - before == 1 == idle.requests
    assert idle.recorded == 0


async def test_a_replayed_feed_changes_nothing(ledger: Ledger) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock)
    await source.poll(ledger)
    head = await ledger.cursor("astral")
    api.move("v-mug", "available", "reserved", 2)
    api.move("v-tee", "available", "blocked", 3)
    await source.poll(ledger)
    after = await non_void(ledger)
    # Move the cursor back (as after a restore) and read the same postings again.
    assert head is not None
    await ledger.record(
        TransactionDraft(
            kind=TransactionKind.CURSOR,
            source="astral",
            key="rewind",
            observed_at=ledger_now(clock),
            cursor=CursorUpdate("astral", head),
        )
    )
    for page_size in (2, 3):  # same pages, then pages cut elsewhere
        await ledger.record(
            TransactionDraft(
                kind=TransactionKind.CURSOR,
                source="astral",
                key=f"rewind-{page_size}",
                observed_at=ledger_now(clock),
                cursor=CursorUpdate("astral", head),
            )
        )
        replay = make_source(api, clock, page_size=page_size)
        await replay.poll(ledger)
        assert await non_void(ledger) == after
        assert await ledger.cursor("astral") == FakeAstral.cursor(api.postings[-1])


async def test_a_malformed_posting_is_skipped_and_the_rest_of_the_page_recorded(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock, page_size=10)
    await source.poll(ledger)
    api.move("v-mug", "available", "reserved", 1)
    api.post("v-tee", "available", -1, unitMultiplier=None)
    api.post("v-tee", "onHand", 1)
    api.post("v-ghost", "available", 7)
    api.post("v-ghost", "available", 1)
    with capture_logs() as logs:
        result = await source.poll(ledger)
    skipped = {(e["item"], e["reason"]) for e in logs if e["event"] == "source.item_skipped"}
    assert skipped == {
        ("p-0009", "unitMultiplier is missing or below 1"),
        ("p-0010", "unknown locationStatus 'onHand'"),
        ("v-ghost", "unknown productVariantId (no catalog variant has this astral_variant_id)"),
    }
    assert result.skipped == 3
    assert len(result.problems) == 3
    balances = await ledger.balances()
    assert balances[Account(f"astral:{WH}", StockStatus.RESERVED, "MUG")] == 3
    # The page's cursor advanced past the skipped items (the reconciliation books them).
    assert await ledger.cursor("astral") == FakeAstral.cursor(api.postings[-1])
    [state] = await ledger.feed_states()
    assert state.extra["skipped_last_poll"] == "3"


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            httpx.Response(200, text='{"data": [', headers={"content-type": "application/json"}),
            InvalidResponse,
        ),
        (httpx.Response(200, json={"errors": [{"status": 500}]}), MalformedPage),
        (
            httpx.Response(200, json={"data": [{"type": "posting", "id": "p-9"}], "meta": {}}),
            MalformedPage,
        ),
    ],
)
async def test_a_malformed_page_records_nothing_and_keeps_the_cursor(
    ledger: Ledger, response: httpx.Response, error: type[Exception]
) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock)
    await source.poll(ledger)
    cursor = await ledger.cursor("astral")
    api.move("v-tee", "available", "reserved", 1)
    api.queued.append(response)
    before = await ledger.last_txn_id()
    with pytest.raises(error):
        await source.poll(ledger)
    assert (await ledger.cursor("astral"), await ledger.last_txn_id()) == (cursor, before)
    [state] = await ledger.feed_states()
    assert state.last_error is not None
    await source.poll(ledger)
    assert await non_void(ledger) == api.truth()


async def test_a_page_that_does_not_move_the_cursor_is_refused(ledger: Ledger) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock)
    await source.poll(ledger)
    cursor = await ledger.cursor("astral")
    assert cursor is not None
    api.queued.append(
        httpx.Response(
            200,
            json={
                "data": [api.postings[-1]],
                "meta": {"page": {"from": cursor, "to": cursor, "hasMore": True}},
            },
        )
    )
    with pytest.raises(MalformedPage, match="did not move the cursor"):
        await source.poll(ledger)


async def test_postings_arriving_during_the_baseline_read_are_not_counted_twice(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    moves = iter([lambda: api.move("v-tee", "available", "reserved", 4)])

    def race() -> None:
        if (step := next(moves, None)) is not None:
            step()

    api.on_state_page = race
    result = await make_source(api, clock).poll(ledger)
    assert result.complete
    assert result.caught_up
    heads = [r for r in api.reads if r.url.params.get("sort") == "-transaction.createdAt"]
    assert len(heads) == 2  # the first attempt saw the feed move and was retried
    assert await non_void(ledger) == api.truth()


async def test_a_feed_that_never_stops_moving_still_gets_a_baseline_and_a_reconciliation(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    api.on_state_page = lambda: api.move("v-tee", "available", "reserved", 1)
    source = make_source(api, clock, page_size=10)
    first = await source.poll(ledger)
    assert not first.caught_up
    assert any("kept arriving" in p for p in first.problems)
    api.on_state_page = None
    await source.poll(ledger)  # follows, then reconciles at once
    assert await non_void(ledger) == api.truth()


async def test_a_late_transaction_is_caught_by_reconciliation_as_an_adjustment(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock, reconcile_interval=3600)
    await source.poll(ledger)
    # Committed late with an older createdAt: it sorts before the cursor.
    api.move("v-cap", "available", "void", 2, at=2)
    await source.poll(ledger)
    assert await non_void(ledger) != api.truth()
    clock.advance(3600)
    result = await source.poll(ledger)
    assert result.complete
    assert await non_void(ledger) == api.truth()
    [row, *_] = await ledger.explain_rows("CAP")
    assert row.movement == "snapshot"
    assert row.metadata["reason"] == "reconciliation"
    [state] = await ledger.feed_states()
    assert state.extra["last_reconcile_adjusted"] == "1"


async def test_reconciliation_leaves_out_variants_that_moved_during_the_state_read(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock, reconcile_interval=60)
    await source.poll(ledger)
    api.move("v-mug", "available", "void", 1, at=2)  # late: needs the reconciliation
    api.move("v-cap", "available", "void", 1, at=2)  # late too
    # CAP moves again while the state is read: its level is left out this time.
    moved = False

    def race() -> None:
        nonlocal moved
        if not moved:
            moved = True
            api.move("v-cap", "available", "reserved", 1)

    api.on_state_page = race
    clock.advance(60)
    await source.poll(ledger)
    truth = api.truth()
    got = await non_void(ledger)
    assert got[("MUG", "available", "")] == truth[("MUG", "available", "")]
    assert got[("CAP", "reserved", "")] == truth[("CAP", "reserved", "")]
    assert got[("CAP", "available", "")] == truth[("CAP", "available", "")] + 2  # still missed
    clock.advance(60)
    await source.poll(ledger)
    assert await non_void(ledger) == api.truth()


async def test_an_empty_reconciliation_read_books_nothing_and_waits_for_the_next_one(
    ledger: Ledger,
) -> None:
    api, clock = opening(), FakeClock()
    source = make_source(api, clock, reconcile_interval=600)
    await source.poll(ledger)
    balances = await ledger.balances()
    original = api._state
    api._state = lambda params: httpx.Response(  # type: ignore[method-assign]
        200, json={"data": [], "meta": {"page": {"hasMore": False}}, "links": {"next": None}}
    )
    clock.advance(600)
    result = await source.poll(ledger)
    assert any("listed no variant" in p for p in result.problems)
    assert await ledger.balances() == balances
    [state] = await ledger.feed_states()
    assert state.last_error is None  # the feed itself was followed fine
    assert state.extra["last_reconcile_result"].startswith("refused")
    before = len(api.reads)
    await source.poll(ledger)
    assert len(api.reads) - before == 1  # not retried on every poll
    api._state = original  # type: ignore[method-assign]
    clock.advance(600)
    await source.poll(ledger)
    [state] = await ledger.feed_states()
    assert state.extra["last_reconcile_result"] == "ok"


async def test_an_empty_state_read_records_nothing(ledger: Ledger) -> None:
    api, clock = FakeAstral(), FakeClock()
    result = await make_source(api, clock).poll(ledger)
    assert result.recorded == 0
    assert "listed no variant" in result.problems[0]
    assert await ledger.cursor("astral") is None
    [state] = await ledger.feed_states()
    assert state.last_success is None
    assert state.last_error is not None


async def test_an_empty_feed_and_empty_stock_still_bootstrap_and_then_read_from_the_start(
    ledger: Ledger,
) -> None:
    api, clock = FakeAstral(), FakeClock()
    catalog = Catalog(variants={})
    source = make_source(api, clock, catalog)
    await source.poll(ledger)
    assert await ledger.cursor("astral") == "start"
    api.move("v-tee", "void", "available", 1)
    await make_source(api, clock).poll(ledger)
    assert "page[after]" not in api.reads[-1].url.params
    assert await non_void(ledger) == api.truth()


async def test_the_source_describes_itself_for_staleness() -> None:
    source = make_source(FakeAstral(), FakeClock(), location_prefix="aks", stale_after=90)
    assert source.name == "astral"
    assert source.locations == ("aks:*",)
    assert source.stale_after == 90
