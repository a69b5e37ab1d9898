"""ASTRAL stock state and postings feed answers that are broken, hostile or lying.

The real `AstralStockSource` reads a scripted ASTRAL (``httpx.MockTransport``)
into a real ledger file. A bootstrap (head, state, check) gives the
baseline; then the bad answer, on the feed or on the state read:

* a page that cannot be read raises a typed error and changes nothing: not
  a posting, not the cursor (``meta.page.to`` is committed only with the
  page it ends), so the next good poll reads the same postings;
* a posting that cannot be used is skipped and reported while the rest of
  its page is recorded; the page's cursor moves on and the periodic state
  reconciliation books what the skipped posting changed (astral_book);
* a listing that never ends is stopped: a ``next`` link or cursor seen
  before raises, and a poll reads at most ``MAX_PAGES_PER_POLL`` pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.clock import FakeClock
from syncd.config.sections import AstralSourceSection
from syncd.http.errors import HttpError, PaginationError
from syncd.http.presets import ankorstore_client
from syncd.ledger.store import Ledger
from syncd.model import Catalog, Variant
from syncd.sources.astral import MAX_PAGES_PER_POLL, AstralStockSource
from syncd.sources.problems import MalformedPage
from tests.badinput._support import (
    NO_RETRY,
    Json,
    Script,
    feed_error,
    open_ledger,
    raw_json,
    skipped_events,
    token,
    view,
    whole_body_failures,
)

pytestmark = pytest.mark.anyio

FEED = "astral"
POSTINGS = "/api/astral/v1/stock/postings"
STATE = "/api/astral/v1/stock/state"
WH = "wh-1"
LOCATION = f"astral:{WH}"
MULTIPLIER = {"v-tee": 1, "v-mug": 3}
CATALOG = Catalog(
    variants={
        "TEE": Variant("TEE", astral_variant_id="v-tee"),
        "MUG": Variant("MUG", astral_variant_id="v-mug"),
    }
)


def posting(ident: str, variant: str, batches: Any, **attributes: Any) -> Json:
    return {
        "type": "postings",
        "id": ident,
        "attributes": {
            "locationId": WH,
            "productVariantId": variant,
            "locationStatus": "available",
            "quantity": batches,
            "movementType": "manual",
            "unitMultiplier": MULTIPLIER.get(variant, 1),
            **attributes,
        },
    }


T0 = 1_700_000_000
"""Feed cursors are ``uuid,timestamp`` (L13520); each posting here is one second later."""


@dataclass
class Astral:
    """The feed (postings in order, each with a cursor key) and a state summed from it."""

    feed: list[tuple[str, Any]] = field(default_factory=list)
    ignore_after: bool = False
    """A broken server: every page starts from the beginning of the feed."""

    def cursor(self, key: str) -> str:
        position = next(i for i, (k, _) in enumerate(self.feed) if k == key)
        return f"{key},{T0 + position}"

    def post(self, resource: Any, key: str | None = None) -> None:
        if key is None:
            key = resource["id"] if isinstance(resource, dict) else f"k{len(self.feed)}"
        self.feed.append((key, resource))

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return token()
        if request.url.path == STATE:
            return httpx.Response(200, json=self.state_document())
        return raw_json(self.postings_text(request.url.params))

    def postings_text(self, params: httpx.QueryParams) -> str:
        ordered = list(reversed(self.feed)) if params["sort"].startswith("-") else self.feed
        start = 0
        if "page[after]" in params and not self.ignore_after:
            anchor = params["page[after]"].split(",")[0]
            start = next(i for i, (key, _) in enumerate(ordered) if key == anchor) + 1
        limit = int(params["page[limit]"])
        items = ordered[start : start + limit]
        more = start + limit < len(ordered)
        document = {
            "data": [resource for _, resource in items],
            "meta": {
                "page": {
                    "from": self.cursor(items[0][0]) if items else None,
                    "to": self.cursor(items[-1][0]) if items else None,
                    "hasMore": more,
                }
            },
            "links": {"next": "more" if more else None},
        }
        # NaN/Infinity placeholders become bare tokens, as a broken server sends them.
        return json.dumps(document).replace('"__NaN__"', "NaN").replace('"__Inf__"', "Infinity")

    def state_document(self) -> Json:
        totals: dict[tuple[str, str], int] = {}
        for _, resource in self.feed:
            attributes = resource["attributes"]
            key = (attributes["productVariantId"], attributes["locationStatus"])
            totals[key] = totals.get(key, 0) + attributes["quantity"]
        variants = sorted({variant for variant, _ in totals})
        data = [
            {
                "type": "stock-state",
                "id": variant,
                "attributes": {
                    "quantities": [
                        {
                            "quantity": batches,
                            "locationId": WH,
                            "status": status,
                            "unitMultiplier": MULTIPLIER.get(variant, 1),
                        }
                        for (v, status), batches in sorted(totals.items())
                        if v == variant
                    ]
                },
            }
            for variant in variants
        ]
        return {"data": data, "meta": {"page": {"hasMore": False}}, "links": {"next": None}}


@dataclass
class Rig:
    api: Astral
    script: Script
    source: AstralStockSource
    clock: FakeClock

    def fresh_source(self, **kwargs: Any) -> AstralStockSource:
        return AstralStockSource(self.source._client, CATALOG, SECTION, clock=self.clock, **kwargs)


SECTION = AstralSourceSection(page_size=10)


def rig(**kwargs: Any) -> Rig:
    api, clock = Astral(), FakeClock()
    api.post(posting("p-1", "v-tee", 10))
    api.post(posting("p-2", "v-mug", 4))
    script = Script(api.handler)
    client = ankorstore_client(
        base_url="https://ankorstore.test",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=script.transport(),
        retry=NO_RETRY,
    )
    source = AstralStockSource(client, CATALOG, SECTION, clock=clock, **kwargs)
    return Rig(api, script, source, clock)


def units(balances: dict[Any, int]) -> dict[tuple[str, str], int]:
    return {
        (a.sku, a.status.value): q
        for a, q in balances.items()
        if a.location == LOCATION and a.status.value != "void"
    }


async def bootstrapped(ledger: Ledger, r: Rig) -> None:
    await r.source.poll(ledger)
    assert units(await ledger.balances()) == {("TEE", "available"): 10, ("MUG", "available"): 12}
    assert await ledger.cursor(FEED) == r.api.cursor("p-2")


# --- feed pages that cannot be read ---------------------------------------------------------


def _page_failures() -> dict[str, Any]:
    good = {"data": [posting("p-9", "v-tee", 1)], "meta": {"page": {"to": "p-9,1"}}}
    cases: dict[str, Any] = dict(whole_body_failures(good))
    broken: dict[str, Any] = {
        "data_is_null": {"data": None, "meta": {"page": {"to": "p-9,1"}}},
        "data_is_an_object": {"data": posting("p-9", "v-tee", 1), "meta": {}},
        "items_without_cursor": {"data": [posting("p-9", "v-tee", 1)], "meta": {"page": {}}},
        "cursor_is_a_number": {
            "data": [posting("p-9", "v-tee", 1)],
            "meta": {"page": {"to": 12345, "hasMore": False}},
        },
    }
    for name, document in broken.items():
        cases[name] = lambda document=document: raw_json(json.dumps(document))
    # The server ignores page[after] and serves the feed from its start again:
    # the page ends where syncd already is.
    cases["cursor_ignored"] = lambda: raw_json(
        json.dumps(
            {
                "data": [posting("p-1", "v-tee", 10), posting("p-2", "v-mug", 4)],
                "meta": {"page": {"to": f"p-2,{T0 + 1}", "hasMore": True}},
            }
        )
    )
    return cases


PAGE_FAILURES = _page_failures()


@pytest.mark.parametrize("case", sorted(PAGE_FAILURES))
async def test_an_unreadable_feed_page_changes_nothing_and_the_next_poll_reads_it(
    tmp_path: Path, case: str
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        r.api.post(posting("p-3", "v-tee", -4))  # what the bad page was carrying
        before = await view(ledger, [FEED])
        r.script.queue(POSTINGS, PAGE_FAILURES[case]())

        with pytest.raises((HttpError, MalformedPage)) as raised:
            await r.source.poll(ledger)

        assert await view(ledger, [FEED]) == before
        error = await feed_error(ledger, FEED)
        assert error is not None
        assert error.startswith(type(raised.value).__name__)
        r.clock.advance(30)
        await r.source.poll(ledger)
        assert units(await ledger.balances())[("TEE", "available")] == 6
        assert await feed_error(ledger, FEED) is None


# --- postings that cannot be used -------------------------------------------------------------

BAD_POSTINGS: dict[str, tuple[Any, str]] = {
    "quantity_is_text": (posting("b-1", "v-mug", "abc"), "not an integer"),
    "quantity_is_null": (posting("b-1", "v-mug", None), "not an integer"),
    "quantity_is_a_fraction": (posting("b-1", "v-mug", 1.5), "not an integer"),
    "quantity_nan_token": (posting("b-1", "v-mug", "__NaN__"), "not an integer"),
    "quantity_infinity_token": (posting("b-1", "v-mug", "__Inf__"), "not an integer"),
    "quantity_10e30": (posting("b-1", "v-mug", 10**30), "out of range"),
    "quantity_1e30_float": (posting("b-1", "v-mug", 1e30), "out of range"),
    "units_overflow": (posting("b-1", "v-mug", 10**12), "out of range"),
    "multiplier_zero": (posting("b-1", "v-mug", 1, unitMultiplier=0), "unitMultiplier"),
    "multiplier_negative": (posting("b-1", "v-mug", 1, unitMultiplier=-3), "unitMultiplier"),
    "multiplier_huge": (posting("b-1", "v-mug", 1, unitMultiplier=10**9), "unitMultiplier"),
    "multiplier_is_text": (posting("b-1", "v-mug", 1, unitMultiplier="x"), "unitMultiplier"),
    "status_unknown": (posting("b-1", "v-mug", 1, locationStatus="lost"), "locationStatus"),
    "status_on_hand": (posting("b-1", "v-mug", 1, locationStatus="onHand"), "locationStatus"),
    "status_missing": (posting("b-1", "v-mug", 1, locationStatus=None), "locationStatus"),
    "variant_missing": (posting("b-1", "v-mug", 1, productVariantId=None), "productVariantId"),
    "location_is_an_object": (posting("b-1", "v-mug", 1, locationId={"id": WH}), "locationId"),
    "movement_missing": (posting("b-1", "v-mug", 1, movementType=None), "movementType"),
    "attributes_null": ({"type": "postings", "id": "b-1", "attributes": None}, "no attributes"),
    "id_null": ({**posting("b-1", "v-mug", 1), "id": None}, "no id"),
    "posting_null": (None, "not an object"),
    "posting_is_a_list": ([posting("b-1", "v-mug", 1)], "not an object"),
    "unknown_variant": (posting("b-1", "v-ghost", 1), "unknown productVariantId"),
}


@pytest.mark.parametrize("case", sorted(BAD_POSTINGS))
async def test_a_bad_posting_is_skipped_and_reported_while_its_page_is_recorded(
    tmp_path: Path, case: str
) -> None:
    bad, reason = BAD_POSTINGS[case]
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        r.api.post(posting("p-3", "v-tee", -4))
        r.api.post(bad, key="b-1")
        r.api.post(posting("p-4", "v-mug", 1))

        with capture_logs() as logs:
            result = await r.source.poll(ledger)

        assert units(await ledger.balances()) == {
            ("TEE", "available"): 6,
            ("MUG", "available"): 15,
        }
        assert result.skipped == 1
        [(_, logged)] = skipped_events(logs, FEED)
        assert reason in logged
        assert any(reason in problem for problem in result.problems)
        # The page was recorded whole (its bad item reported), so its cursor moved.
        assert await ledger.cursor(FEED) == r.api.cursor("p-4")


async def test_a_posting_id_listed_twice_on_a_page_counts_once(tmp_path: Path) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        r.api.post(posting("p-3", "v-tee", -4), key="k3")
        r.api.post(posting("p-3", "v-tee", -4), key="k4")
        r.api.post(posting("p-5", "v-mug", 1))
        with capture_logs() as logs:
            result = await r.source.poll(ledger)
        assert units(await ledger.balances()) == {
            ("TEE", "available"): 6,
            ("MUG", "available"): 15,
        }
        assert skipped_events(logs, FEED) == [
            ("p-3", "posting id listed twice on one page; counted once")
        ]
        assert result.skipped == 1
        assert await ledger.cursor(FEED) == r.api.cursor("p-5")


async def test_a_posting_id_listed_twice_with_different_contents_never_raises_more(
    tmp_path: Path,
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        # The raising copy first: keeping the first would publish 4 units too many.
        r.api.post(posting("p-3", "v-tee", 4), key="k3")
        r.api.post(posting("p-3", "v-tee", -4), key="k4")
        with capture_logs() as logs:
            result = await r.source.poll(ledger)
        assert units(await ledger.balances())[("TEE", "available")] == 6
        assert skipped_events(logs, FEED) == [
            (
                "p-3",
                "posting id listed twice on one page with different contents; the copy that"
                " lowers sellable stock more is recorded",
            )
        ]
        assert result.skipped == 1


async def test_a_replayed_posting_id_with_other_content_is_left_out_not_a_stuck_feed(
    tmp_path: Path,
) -> None:
    """Postings are immutable (seed 000 L13131): the same UUID with another quantity is bad."""
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        r.api.post(posting("p-3", "v-tee", -4))
        await r.source.poll(ledger)
        r.api.post(posting("p-3", "v-tee", 99), key="k-replay")  # a corrupt replay
        r.api.post(posting("p-5", "v-mug", 2))
        with capture_logs() as logs:
            result = await r.source.poll(ledger)
        assert units(await ledger.balances()) == {
            ("TEE", "available"): 6,
            ("MUG", "available"): 18,
        }
        [(item, reason)] = skipped_events(logs, FEED)
        assert item == "p-3"
        assert "already recorded" in reason
        assert result.skipped == 1
        assert await ledger.cursor(FEED) == r.api.cursor("p-5")
        assert await feed_error(ledger, FEED) is None


# --- listings that never end ---------------------------------------------------------------


async def test_a_feed_that_always_has_more_is_read_a_bounded_number_of_pages(
    tmp_path: Path,
) -> None:
    """Every page says hasMore with a fresh cursor, serving the same recorded posting again."""
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        r.api.post(posting("p-3", "v-tee", 2))
        await r.source.poll(ledger)
        before = await ledger.balances()
        served = iter(range(10_000))

        def endless(_: httpx.Request) -> httpx.Response:
            n = next(served)
            page = {"to": f"loop-{n},{T0 + 1_000 + n}", "hasMore": True}
            return raw_json(
                json.dumps({"data": [posting("p-3", "v-tee", 2)], "meta": {"page": page}})
            )

        r.script.always[POSTINGS] = endless
        asked = r.script.count(POSTINGS)
        result = await r.source.poll(ledger)
        assert not result.caught_up
        assert r.script.count(POSTINGS) - asked == MAX_PAGES_PER_POLL
        assert await ledger.balances() == before  # replays change nothing


async def test_a_server_ignoring_the_cursor_is_refused_not_counted_twice(tmp_path: Path) -> None:
    """Postings before the baseline have no id in the ledger: served again, they would count twice."""
    r = rig()
    for n in range(3, 26):
        r.api.post(posting(f"p-{n}", "v-tee", 1))
    async with open_ledger(tmp_path) as ledger:
        await r.source.poll(ledger)
        assert units(await ledger.balances())[("TEE", "available")] == 33
        assert await ledger.cursor(FEED) == r.api.cursor("p-25")
        r.api.post(posting("p-26", "v-tee", -1))
        before = await view(ledger, [FEED])
        r.api.ignore_after = True

        with pytest.raises(MalformedPage, match="before it"):
            await r.source.poll(ledger)

        assert await view(ledger, [FEED]) == before
        r.api.ignore_after = False
        r.clock.advance(30)
        await r.source.poll(ledger)
        assert units(await ledger.balances())[("TEE", "available")] == 32


def _state_page(data: Any, **document: Any) -> httpx.Response:
    return raw_json(json.dumps({"data": data, **document}))


STATE_FAILURES: dict[str, Any] = {
    **{name: factory for name, factory in whole_body_failures({"data": []}).items()},
    "next_is_itself": lambda: _state_page(
        [], meta={"page": {"hasMore": True}}, links={"next": STATE + "?page%5Blimit%5D=10"}
    ),
    "has_more_without_next": lambda: _state_page([], meta={"page": {"hasMore": True}}),
}


@pytest.mark.parametrize("case", sorted(STATE_FAILURES))
async def test_a_state_read_that_fails_records_no_baseline_and_no_cursor(
    tmp_path: Path, case: str
) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        if case == "next_is_itself":
            # The link repeats the URL syncd asked for, so the paginator must notice.
            r.script.always[STATE] = lambda request: _state_page(
                [], meta={"page": {"hasMore": True}}, links={"next": str(request.url)}
            )
        else:
            r.script.queue(STATE, STATE_FAILURES[case]())
        with pytest.raises((HttpError, MalformedPage)) as raised:
            await r.source.poll(ledger)
        if case in ("next_is_itself", "has_more_without_next"):
            assert isinstance(raised.value, PaginationError)
        assert await ledger.balances() == {}
        assert await ledger.cursor(FEED) is None
        assert await ledger.last_txn_id() == 0
        assert await feed_error(ledger, FEED) is not None


def _state(variant: str, *rows: Any) -> Json:
    return {"type": "stock-state", "id": variant, "attributes": {"quantities": list(rows)}}


def _row(batches: Any, status: str = "available", **extra: Any) -> Json:
    return {"quantity": batches, "locationId": WH, "status": status, "unitMultiplier": 1, **extra}


BAD_STATE_ENTITIES: dict[str, tuple[Any, str]] = {
    "negative_quantity": (_state("v-mug", _row(-5)), "negative"),
    "quantity_10e30": (_state("v-mug", _row(10**30)), "out of range"),
    "quantity_text": (_state("v-mug", _row("many")), "not an integer"),
    "multiplier_zero": (_state("v-mug", _row(1, unitMultiplier=0)), "unitMultiplier"),
    "unknown_status": (_state("v-mug", _row(1, status="lost")), "unknown status"),
    "quantities_null": ({"type": "stock-state", "id": "v-mug", "attributes": None}, "quantities"),
    "row_is_a_string": (_state("v-mug", "12"), "not an object"),
    "entity_null": (None, "not an object"),
    "unknown_variant": (_state("v-ghost", _row(1)), "unknown productVariantId"),
}


@pytest.mark.parametrize("case", sorted(BAD_STATE_ENTITIES))
async def test_a_bad_state_entity_is_skipped_and_the_rest_is_the_baseline(
    tmp_path: Path, case: str
) -> None:
    bad, reason = BAD_STATE_ENTITIES[case]
    r = rig()
    r.script.queue(STATE, _state_page([_state("v-tee", _row(10)), bad], links={"next": None}))
    async with open_ledger(tmp_path) as ledger:
        with capture_logs() as logs:
            result = await r.source.poll(ledger)
        assert units(await ledger.balances()) == {("TEE", "available"): 10}
        assert any(reason in logged for _, logged in skipped_events(logs, FEED))
        assert result.skipped >= 1
        assert await ledger.cursor(FEED) == r.api.cursor("p-2")


async def test_a_state_listing_nothing_is_refused_never_a_mass_zeroing(tmp_path: Path) -> None:
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        before = await view(ledger, [FEED])
        r.clock.advance(SECTION.reconcile_interval + 1)
        r.script.queue(STATE, _state_page([], links={"next": None}))
        result = await r.source.poll(ledger)
        assert await view(ledger, [FEED]) == before
        assert any("listed no variant" in problem for problem in result.problems)


async def test_what_a_skipped_posting_changed_is_booked_by_the_next_reconciliation(
    tmp_path: Path,
) -> None:
    """The page's cursor moves past a skipped posting (holding it would re-read the same
    bad item forever); the periodic state read is what books its effect."""
    r = rig()
    async with open_ledger(tmp_path) as ledger:
        await bootstrapped(ledger, r)
        r.api.post(posting("b-1", "v-mug", "two"))  # really +2 batches, garbled
        result = await r.source.poll(ledger)
        assert result.skipped == 1
        assert units(await ledger.balances())[("MUG", "available")] == 12

        truth = [_state("v-tee", _row(10)), _state("v-mug", _row(6, unitMultiplier=3))]
        r.script.queue(STATE, _state_page(truth, links={"next": None}))
        r.clock.advance(SECTION.reconcile_interval + 1)
        await r.source.poll(ledger)
        assert units(await ledger.balances())[("MUG", "available")] == 18
