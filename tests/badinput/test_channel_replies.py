"""What the channels answer to a write, when the answer is broken, hostile or lying.

The real channel classes push through the real engine into a real ledger
(outbox, push log) over ``httpx.MockTransport``. A write counts as
acknowledged only on evidence the value landed; everything else stays
pending with its reason (failed: resent next round) or is parked with it,
so nothing is lost. No request ever carries a negative or absurd quantity.

Cases marked ``xfail(strict=True)`` are defects found by this corpus in
syncd/channels/*, which this corpus may not change: they are reported, and
the marker turns into a failure the day they are fixed, so it is removed then.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.channels.ankorstore import AnkorstoreChannel
from syncd.channels.base import Channel
from syncd.channels.fabric import FabricChannel
from syncd.clock import FakeClock
from syncd.config.sections import AnkorstoreChannelSection, FabricChannelSection
from syncd.engine import Engine, FeedInfo
from syncd.http.presets import ankorstore_client, fabric_client
from syncd.ledger.store import Ledger
from syncd.model import Catalog, ChannelRule, SnapshotDraft, StockStatus, Variant, now_utc
from syncd.safety import SafetyPolicy
from syncd.sources.jsonvalues import MAX_UNITS
from tests.badinput._support import (
    NO_RETRY,
    Json,
    Script,
    enormous,
    html_page,
    open_ledger,
    raw_json,
    token,
)

pytestmark = pytest.mark.anyio

CATALOG = Catalog(
    variants={
        "TEE-S": Variant("TEE-S", ankorstore_variant_id="ak-tee-s", fabric_sku="FB-TEE-S"),
        "TEE-M": Variant("TEE-M", ankorstore_variant_id="ak-tee-m", fabric_sku="FB-TEE-M"),
    }
)
STOCK = {"TEE-S": 5, "TEE-M": 7}
PERMISSIVE = SafetyPolicy(
    max_zero_share=1.0, max_change_share=1.0, confirm_increase_after_zero=False
)
"""Two variants published for the first time would otherwise be held for confirmation."""


Reply = httpx.Response | Callable[[], httpx.Response]
"""A reply, or a factory for one that is too big to build at import (``enormous``)."""


def _built(reply: Any) -> httpx.Response:
    return reply if isinstance(reply, httpx.Response) else reply()


@dataclass
class Outcome:
    acknowledged: dict[str, int]
    """SKU -> the value the channel confirmed."""
    pending: dict[str, str]
    """SKU -> why it is still pending (a failed push) -- resent next round."""
    parked: dict[str, str]


async def push_once(ledger: Ledger, name: str, channel: Channel) -> Outcome:
    """Record the stock, let the engine compute and push one round, read the outbox."""
    await ledger.record_snapshot(
        SnapshotDraft(
            source="activeants",
            key="stock",
            observed_at=now_utc(),
            location="activeants",
            levels={(StockStatus.AVAILABLE, sku, ""): q for sku, q in STOCK.items()},
        )
    )
    await ledger.mark_feed("activeants", success_at=now_utc())
    engine = Engine(
        ledger,
        CATALOG,
        [ChannelRule(name, ("activeants",), pack_rounding=False)],
        {name: channel},
        policies={name: PERMISSIVE},
        feeds=[FeedInfo("activeants", ("activeants",), 900.0)],
    )
    await engine.recompute(full=True)
    await engine.push_channel(name, max_rounds=1)
    rows = await ledger.outbox_rows(name)
    outcome = Outcome({}, {}, {})
    for row in rows:
        assert row.desired == STOCK[row.sku]  # the wanted value is kept whatever happened
        if row.status == "parked":
            outcome.parked[row.sku] = row.reason or ""
        elif row.acknowledged == row.desired:
            outcome.acknowledged[row.sku] = row.acknowledged
        else:
            outcome.pending[row.sku] = row.reason or ""
    pending = {row.sku for row in await ledger.pending(name)}
    assert pending == set(outcome.pending)
    return outcome


def assert_nothing_landed(outcome: Outcome) -> None:
    assert outcome.acknowledged == {}
    assert set(outcome.pending) | set(outcome.parked) == set(STOCK)
    assert all(outcome.pending.values())
    assert all(outcome.parked.values())


# === Ankorstore: POST /api/v1/operations ==================================================

OPERATIONS = "/api/v1/operations"
VARIANTS = "/api/v1/product-variants"


@dataclass
class AkApi:
    reserved: dict[str, Any] = field(default_factory=lambda: {"ak-tee-s": 1, "ak-tee-m": 0})
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Every stockQuantity update syncd sent: {variant id: quantity}, one dict per request."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return token()
        if request.url.path == VARIANTS:
            wanted = request.url.params.get_list("filter[id][]") or list(self.reserved)
            return httpx.Response(200, json={"data": [self.variant(i) for i in wanted]})
        return self.accept(request)

    def variant(self, ident: str) -> Json:
        return {
            "type": "product-variants",
            "id": ident,
            "attributes": {
                "sku": ident.upper(),
                "stockQuantity": 10,
                "reservedQuantity": self.reserved.get(ident, 0),
                "availableQuantity": 10,
                "isAlwaysInStock": False,
            },
        }

    def record(self, request: httpx.Request) -> list[str]:
        body = json.loads(request.content)
        operations = body["atomic:operations"]
        self.sent.append(
            {op["data"]["id"]: op["data"]["attributes"]["stockQuantity"] for op in operations}
        )
        return [op["data"]["id"] for op in operations]

    def accept(self, request: httpx.Request) -> httpx.Response:
        ids = self.record(request)
        results = [{"data": {"type": "product-variants", "id": i, "attributes": {}}} for i in ids]
        return httpx.Response(200, json={"atomic:results": results})

    def answering(self, response: httpx.Response) -> Any:
        """A handler for the operations path that records the request, then answers ``response``."""

        def answer(request: httpx.Request) -> httpx.Response:
            self.record(request)
            return response

        return answer


@dataclass
class AkRig:
    api: AkApi
    script: Script
    channel: AnkorstoreChannel


def ak_rig() -> AkRig:
    api, clock = AkApi(), FakeClock()
    script = Script(api.handler)
    client = ankorstore_client(
        base_url="https://ankorstore.test",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=script.transport(),
        retry=NO_RETRY,
    )
    section = AnkorstoreChannelSection(locations=["activeants"])
    return AkRig(api, script, AnkorstoreChannel(client, CATALOG, section, clock=clock))


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with open_ledger(tmp_path) as opened:
        yield opened


def assert_sane_writes(sent: list[dict[str, Any]]) -> None:
    for request in sent:
        for quantity in request.values():
            assert isinstance(quantity, int), request
            assert 0 <= quantity <= MAX_UNITS, request


async def test_ankorstore_a_good_answer_acknowledges_what_was_sent(ledger: Ledger) -> None:
    r = ak_rig()
    outcome = await push_once(ledger, "ankorstore", r.channel)
    assert outcome.acknowledged == STOCK
    # The value allocation computed goes out as stockQuantity, as it is.
    assert r.api.sent == [{"ak-tee-s": 5, "ak-tee-m": 7}]


UNPROVEN_200: dict[str, httpx.Response] = {
    "html_page": html_page(200),
    "plain_text": httpx.Response(200, content=b"OK"),
    "truncated_json": raw_json('{"atomic:results": [{"data": {"type": "product-v'),
    "no_results": raw_json('{"meta": {}}'),
    "fewer_results_than_operations": raw_json('{"atomic:results": []}'),
}


@pytest.mark.parametrize("case", sorted(UNPROVEN_200))
async def test_ankorstore_a_200_that_proves_nothing_is_not_an_acknowledgement(
    ledger: Ledger, case: str
) -> None:
    r = ak_rig()
    r.script.always[OPERATIONS] = r.api.answering(UNPROVEN_200[case])
    outcome = await push_once(ledger, "ankorstore", r.channel)
    assert_nothing_landed(outcome)
    assert outcome.parked == {}  # failed, not parked: the batch is resent
    assert all("does not confirm" in reason for reason in outcome.pending.values())


FAILED_WRITES: dict[str, Reply] = {
    "enormous_200": enormous,
    "html_502": html_page(502),
    "json_500": httpx.Response(500, json={"errors": [{"status": "500", "detail": "boom"}]}),
    "rate_limited_for_a_year": httpx.Response(429, headers={"Retry-After": "31536000"}),
    "rate_limited_nan": httpx.Response(429, headers={"Retry-After": "NaN"}),
    "unauthorized": httpx.Response(401, json={"errors": [{"status": "401"}]}),
}


@pytest.mark.parametrize("case", sorted(FAILED_WRITES))
async def test_ankorstore_a_failed_write_stays_pending_with_its_reason(
    ledger: Ledger, case: str
) -> None:
    r = ak_rig()
    r.script.always[OPERATIONS] = r.api.answering(_built(FAILED_WRITES[case]))
    outcome = await push_once(ledger, "ankorstore", r.channel)
    assert_nothing_landed(outcome)
    assert outcome.parked == {}
    assert_sane_writes(r.api.sent)


REFUSALS: dict[str, httpx.Response] = {
    "pointer_beyond_the_batch": httpx.Response(
        422,
        json={"errors": [{"detail": "bad", "source": {"pointer": f"/atomic:operations/{10**30}"}}]},
    ),
    "pointer_negative": httpx.Response(
        422, json={"errors": [{"detail": "bad", "source": {"pointer": "/atomic:operations/-1"}}]}
    ),
    "errors_not_a_list": httpx.Response(422, json={"errors": "everything is wrong"}),
    "html_422": html_page(422),
    "errors_are_nulls": httpx.Response(422, json={"errors": [None, None]}),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_ankorstore_a_garbled_refusal_never_acknowledges_and_never_crashes(
    ledger: Ledger, case: str
) -> None:
    r = ak_rig()
    r.script.always[OPERATIONS] = r.api.answering(REFUSALS[case])
    outcome = await push_once(ledger, "ankorstore", r.channel)
    assert_nothing_landed(outcome)
    # Split down to single operations, each refused on its own: then parked with the reason.
    assert set(outcome.parked) == set(STOCK)
    assert all("Ankorstore refused" in reason for reason in outcome.parked.values())
    assert_sane_writes(r.api.sent)


BAD_VARIANT_READS: dict[str, Reply] = {
    "html_200": html_page(200),
    "truncated": raw_json('{"data": [{"type": "product-variants", "id": "ak-te'),
    "enormous": enormous,
    "data_null": raw_json('{"data": null}'),
}


@pytest.mark.parametrize("case", sorted(BAD_VARIANT_READS))
async def test_ankorstore_no_write_to_a_variant_that_cannot_be_read(
    ledger: Ledger, case: str
) -> None:
    """A variant never read may be flagged always-in-stock: it is not written blind."""
    r = ak_rig()
    r.script.always[VARIANTS] = _built(BAD_VARIANT_READS[case])
    outcome = await push_once(ledger, "ankorstore", r.channel)
    assert_nothing_landed(outcome)
    assert r.api.sent == []
    assert all("could not read the Ankorstore variant" in r for r in outcome.pending.values())


@pytest.mark.parametrize("reserved", ["25", None, -5, 2.5, 10**30], ids=repr)
async def test_ankorstore_a_hostile_reserved_quantity_changes_nothing_that_is_sent(
    ledger: Ledger, reserved: Any
) -> None:
    """stockQuantity comes from the ledger: Ankorstore's reservedQuantity never enters it."""
    r = ak_rig()
    r.api.reserved["ak-tee-s"] = reserved
    outcome = await push_once(ledger, "ankorstore", r.channel)
    assert_sane_writes(r.api.sent)
    assert outcome.acknowledged == STOCK
    assert r.api.sent == [{"ak-tee-s": 5, "ak-tee-m": 7}]


# === fabric: PATCH /v1/brands/{brand}/inventory/{id}/, then read back ======================

INVENTORY = "/v1/brands/510/inventory/"


@dataclass
class FbApi:
    items: list[Any] = field(
        default_factory=lambda: [
            {"id": 11, "variant": {"id": 1, "brand_identifier": "FB-TEE-S"}, "inventory": 0},
            {"id": 12, "variant": {"id": 2, "brand_identifier": "FB-TEE-M"}, "inventory": 0},
        ]
    )
    written: dict[int, Any] = field(default_factory=dict)

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/auth/token/":
            return token()
        if path == INVENTORY:
            return httpx.Response(
                200, json={"count": len(self.items), "next": None, "results": self.items}
            )
        ident = int(path.removeprefix(INVENTORY).strip("/"))
        item = next(i for i in self.items if isinstance(i, dict) and i.get("id") == ident)
        if request.method == "PATCH":
            self.written[ident] = json.loads(request.content)["inventory"]
            item["inventory"] = self.written[ident]
        return httpx.Response(200, json=item)


@dataclass
class FbRig:
    api: FbApi
    script: Script
    channel: FabricChannel


def fb_rig() -> FbRig:
    api, clock = FbApi(), FakeClock()
    script = Script(api.handler)
    client = fabric_client(
        base_url="https://fabric.test",
        token_url="https://fabric.test/auth/token/",
        client_id="id",
        client_secret="secret",
        clock=clock,
        transport=script.transport(),
        retry=NO_RETRY,
    )
    section = FabricChannelSection(locations=["activeants"])
    channel = FabricChannel(client, CATALOG, section, brand_id="510", retailer_id=None, clock=clock)
    return FbRig(api, script, channel)


async def test_fabric_a_confirmed_write_is_acknowledged(ledger: Ledger) -> None:
    r = fb_rig()
    outcome = await push_once(ledger, "fabric", r.channel)
    assert outcome.acknowledged == STOCK
    assert r.api.written == {11: 5, 12: 7}


def _item(inventory: Any) -> httpx.Response:
    item = {"id": 11, "variant": {"id": 1, "brand_identifier": "FB-TEE-S"}, "inventory": inventory}
    return raw_json(json.dumps(item).replace('"__NaN__"', "NaN"))


BAD_READBACKS: dict[str, Reply] = {
    "html_200": html_page(200),
    "truncated": raw_json('{"id": 11, "inventory": 5'),
    "enormous": enormous,
    "inventory_null": _item(None),
    "inventory_text": _item("five"),
    "inventory_nan": _item("__NaN__"),
    "inventory_10e30": _item(10**30),
    "inventory_negative": _item(-5),
    "not_an_object": raw_json("[5]"),
}


@pytest.mark.parametrize("case", sorted(BAD_READBACKS))
async def test_fabric_a_write_whose_read_back_proves_nothing_stays_pending(
    ledger: Ledger, case: str
) -> None:
    r = fb_rig()
    bad = _built(BAD_READBACKS[case])

    def item_path(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return bad
        return r.api.handler(request)

    def listing(request: httpx.Request) -> httpx.Response:
        if "updated_at_gte" in request.url.params:
            # The confirming list of changed items leaves 11 out: it is read on its own.
            shown = [i for i in r.api.items if i.get("id") != 11]
            return httpx.Response(200, json={"count": len(shown), "next": None, "results": shown})
        return r.api.handler(request)

    r.script.always[f"{INVENTORY}11/"] = item_path
    r.script.always[INVENTORY] = listing
    outcome = await push_once(ledger, "fabric", r.channel)
    assert outcome.acknowledged == {"TEE-M": 7}
    assert set(outcome.pending) == {"TEE-S"}
    assert outcome.pending["TEE-S"]


BAD_CONFIRMING_LISTS: dict[str, Reply] = {
    "html_200": html_page(200),
    "truncated": raw_json('{"count": 2, "next": null, "results": [{"id": 11'),
    "enormous": enormous,
    "results_null": httpx.Response(200, json={"count": 2, "next": None, "results": None}),
    "not_an_object": raw_json("[5]"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIRMING_LISTS))
async def test_fabric_writes_whose_confirming_list_proves_nothing_stay_pending(
    ledger: Ledger, case: str
) -> None:
    r = fb_rig()
    bad = _built(BAD_CONFIRMING_LISTS[case])

    def listing(request: httpx.Request) -> httpx.Response:
        return bad if "updated_at_gte" in request.url.params else r.api.handler(request)

    r.script.always[INVENTORY] = listing
    outcome = await push_once(ledger, "fabric", r.channel)
    assert r.api.written == {11: 5, 12: 7}  # written, but fabric never showed them
    assert outcome.acknowledged == {}
    assert set(outcome.pending) == {"TEE-S", "TEE-M"}
    assert all("not confirmed" in reason for reason in outcome.pending.values())


BAD_LISTS: dict[str, Any] = {
    "next_is_itself": lambda request: httpx.Response(
        200, json={"count": 2, "next": str(request.url), "results": []}
    ),
    "results_null": httpx.Response(200, json={"count": 2, "next": None, "results": None}),
    "html_200": html_page(200),
    "enormous": enormous,
}


@pytest.mark.parametrize("case", sorted(BAD_LISTS))
async def test_fabric_no_write_without_a_readable_inventory_list(ledger: Ledger, case: str) -> None:
    r = fb_rig()
    listed = BAD_LISTS[case]
    r.script.always[INVENTORY] = listed if case == "next_is_itself" else _built(listed)
    outcome = await push_once(ledger, "fabric", r.channel)
    assert_nothing_landed(outcome)
    assert r.api.written == {}
    assert outcome.parked == {}


async def test_fabric_garbage_entries_in_the_list_never_get_a_write(ledger: Ledger) -> None:
    r = fb_rig()
    r.api.items = [
        None,
        "FB-TEE-S",
        {"id": "eleven", "variant": {"brand_identifier": "FB-TEE-S"}},
        {"id": 12, "variant": None},
        {"id": 13, "variant": {"brand_identifier": ""}},
    ]
    outcome = await push_once(ledger, "fabric", r.channel)
    assert r.api.written == {}
    assert set(outcome.parked) == set(STOCK)
    assert all("lists no inventory item" in reason for reason in outcome.parked.values())


async def test_fabric_two_items_claiming_one_sku_are_not_written_blindly(ledger: Ledger) -> None:
    r = fb_rig()
    r.api.items.append(
        {"id": 99, "variant": {"id": 9, "brand_identifier": "FB-TEE-S"}, "inventory": 0}
    )
    outcome = await push_once(ledger, "fabric", r.channel)
    assert "TEE-S" not in outcome.acknowledged
    assert 11 not in r.api.written
    assert 99 not in r.api.written
    assert "ambiguous" in outcome.parked["TEE-S"]
    assert "11, 99" in outcome.parked["TEE-S"]
    assert outcome.acknowledged == {"TEE-M": 7}  # the other SKU is not held back
