"""The Ankorstore channel against an in-memory Ankorstore behind httpx.MockTransport.

What a brand would notice: the number retailers see (``availableQuantity``)
is the number syncd computed, whole packs only, one refused variant never
blocks the others (that nothing negative is ever handed to a channel is the
planner's, tests/unit/engine/test_plan.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from syncd.channels.ankorstore import ALWAYS_IN_STOCK_REASON, AnkorstoreChannel
from syncd.channels.ankorstore_ops import (
    attributed_errors,
    unconfirmed_reason,
)
from syncd.channels.updates import Move, PlannedUpdate
from syncd.clock import FakeClock
from syncd.config.sections import AnkorstoreChannelSection
from syncd.http.presets import ankorstore_client
from syncd.http.retry import RetryPolicy
from syncd.model import Catalog, Variant

BASE = "https://ankorstore.test"


def vid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


@dataclass
class FakeVariant:
    id: str
    sku: str
    stock: int | None
    reserved: int = 0
    always: bool = False
    multiplier: int = 1

    @property
    def available(self) -> int | None:
        return None if self.always or self.stock is None else self.stock - self.reserved

    def resource(self) -> dict[str, object]:
        return {
            "type": "product-variants",
            "id": self.id,
            "attributes": {
                "sku": self.sku,
                "stockQuantity": None if self.always else self.stock,
                "reservedQuantity": self.reserved,
                "availableQuantity": self.available,
                "isAlwaysInStock": self.always,
            },
            "relationships": {"product": {"data": {"type": "products", "id": f"p-{self.id}"}}},
        }

    def product(self) -> dict[str, object]:
        return {
            "type": "products",
            "id": f"p-{self.id}",
            "attributes": {"unitMultiplier": self.multiplier},
        }


Interceptor = Callable[[httpx.Request], httpx.Response | None]


class FakeAnkorstore:
    """Variants, the list endpoint (cursor pages, filters, include=product) and bulk writes."""

    def __init__(self, *variants: FakeVariant) -> None:
        self.variants = {v.id: v for v in variants}
        self.requests: list[httpx.Request] = []
        self.atomic = True
        self.invalid: dict[str, str] = {}
        """Variant id -> pointer style ("indexed" or "plain") of a 422 it draws."""
        self.intercept: Interceptor | None = None

    # -- helpers for assertions
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST"]

    def gets(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET"]

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(
                200, json={"token_type": "Bearer", "expires_in": 3600, "access_token": "t"}
            )
        self.requests.append(request)
        if self.intercept is not None:
            answer = self.intercept(request)
            if answer is not None:
                return answer
        if request.method == "GET" and request.url.path == "/api/v1/product-variants":
            return self._list(request)
        if request.method == "POST" and request.url.path == "/api/v1/operations":
            return self._operations(request)
        return httpx.Response(404, json={"errors": [{"status": "404", "detail": "Not found"}]})

    def _list(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        found = list(self.variants.values())
        if "filter[id][]" in query:
            found = [v for v in found if v.id in query["filter[id][]"]]
        if "filter[sku]" in query:
            skus = set(query["filter[sku]"][0].split(","))
            found = [v for v in found if v.sku in skus]
        limit = int(query.get("page[limit]", ["15"])[0])
        start = 0
        if "page[after]" in query:
            start = [v.id for v in found].index(query["page[after]"][0]) + 1
        page = found[start : start + limit]
        body: dict[str, object] = {
            "data": [v.resource() for v in page],
            "meta": {"page": {"hasMore": start + limit < len(found), "perPage": limit}},
            "links": {},
        }
        if start + limit < len(found):
            params = [(k, v) for k, vs in query.items() for v in vs if k != "page[after]"]
            params.append(("page[after]", page[-1].id))
            body["links"] = {
                "next": str(httpx.URL(f"{BASE}/api/v1/product-variants", params=params))
            }
        if query.get("include") == ["product"]:
            body["included"] = [v.product() for v in page]
        return httpx.Response(200, json=body)

    def _operations(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/vnd.api+json"
        operations = json.loads(request.content)["atomic:operations"]
        assert 1 <= len(operations) <= 50
        errors = []
        for index, op in enumerate(operations):
            data = op["data"]
            if data["id"] not in self.variants:
                errors.append(
                    {
                        "status": "404",
                        "detail": "Not found",
                        "source": {"pointer": f"/atomic:operations/{index}/data/id"},
                    }
                )
            elif data["id"] in self.invalid:
                indexed = self.invalid[data["id"]] == "indexed"
                pointer = (
                    f"/atomic:operations/{index}/data/attributes/stockQuantity"
                    if indexed
                    else "data.attributes.field"
                )
                errors.append(
                    {
                        "status": "422",
                        "detail": "The field is invalid.",
                        "source": {"pointer": pointer},
                    }
                )
        if not errors or not self.atomic:
            for op in operations:
                variant = self.variants.get(op["data"]["id"])
                if variant is not None and op["data"]["id"] not in self.invalid:
                    assert op["op"] == "update"
                    assert op["data"]["type"] == "product-variants"
                    variant.stock = op["data"]["attributes"]["stockQuantity"]
                    variant.always = False
        if errors:
            status = 422 if any(e["status"] == "422" for e in errors) else 404
            return httpx.Response(status, json={"errors": errors})
        results = [
            {"data": {"type": "product-variants", "id": o["data"]["id"]}} for o in operations
        ]
        return httpx.Response(200, json={"atomic:results": results})


def make_channel(
    fake: FakeAnkorstore,
    catalog: Catalog,
    *,
    clock: FakeClock | None = None,
    retry: RetryPolicy | None = None,
    page_size: int = 100,
    **section: object,
) -> tuple[AnkorstoreChannel, FakeClock]:
    clock = clock or FakeClock()
    client = ankorstore_client(
        base_url=BASE,
        client_id="c",
        client_secret="s",
        clock=clock,
        transport=httpx.MockTransport(fake.handler),
        retry=retry,
    )
    config = AnkorstoreChannelSection.model_validate({"locations": ["activeants"], **section})
    return AnkorstoreChannel(client, catalog, config, clock=clock, page_size=page_size), clock


def catalog_of(*variants: FakeVariant, pack: int = 1, with_ids: bool = True) -> Catalog:
    return Catalog(
        variants={
            v.sku: Variant(
                sku=v.sku,
                ankorstore_variant_id=v.id if with_ids else None,
                ankorstore_sku=v.sku,
                pack_size=pack,
            )
            for v in variants
        }
    )


def update(sku: str, quantity: int, seq: int = 1) -> PlannedUpdate:
    return PlannedUpdate(sku=sku, quantity=quantity, seq=seq, previous=None, move=Move.UNKNOWN)


def sent_operations(fake: FakeAnkorstore) -> list[list[dict[str, Any]]]:
    return [json.loads(r.content)["atomic:operations"] for r in fake.posts()]


# --- pure rules ---------------------------------------------------------------


A, B = vid(1), vid(2)


@pytest.mark.parametrize(
    "answer",
    [
        {"atomic:results": [{"data": {"type": "product-variants", "id": A}}, {"data": {"id": B}}]},
        # The documented example: another type spelling, attributes of any shape.
        {
            "atomic:results": [
                {"data": {"type": "productVariant", "id": B, "attributes": {"foo": "bar"}}},
                {"data": {"type": "productVariant", "id": A.upper(), "attributes": {}}},
            ],
            "jsonapi": {"version": "1.0"},
        },
        # JSON:API Atomic allows an empty result object.
        {"atomic:results": [{}, {}]},
    ],
    ids=["sandbox", "documented_example_any_order", "empty_results"],
)
def test_a_documented_answer_confirms_the_batch(answer: dict[str, Any]) -> None:
    assert unconfirmed_reason(answer, [A, B]) is None


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("OK", "string"),
        ([], "array"),
        ({"meta": {}}, "no atomic:results"),
        ({"atomic:results": {"data": {"id": A}}}, "no atomic:results"),
        ({"atomic:results": [{"data": {"id": A}}]}, "1 atomic:results for 2"),
        ({"atomic:results": [{"data": {"id": A}}, None]}, "atomic:results/1"),
        ({"atomic:results": [{"data": {"id": A}}, {"data": "x"}]}, "not an object"),
        ({"atomic:results": [{"data": {"id": A}}, {"data": {"id": vid(9)}}]}, "did not send"),
    ],
)
def test_an_answer_that_does_not_account_for_every_operation_confirms_nothing(
    answer: object, why: str
) -> None:
    reason = unconfirmed_reason(answer, [A, B])
    assert reason is not None
    assert why in reason


def test_error_pointers_name_the_operation_in_either_notation() -> None:
    details = [
        "422 The stockQuantity is invalid. (/atomic:operations/3/data/attributes/stockQuantity)",
        "422 Bad (atomic:operations.1.data.id)",
        "422 The field is required. (data.attributes.field)",
        "404 Not found (/atomic:operations/9/data/id)",  # beyond this batch: ignored
    ]
    found = attributed_errors(details, count=5)
    assert sorted(found) == [1, 3]
    assert "stockQuantity" in found[3]


# --- what Ankorstore ends up showing ------------------------------------------------


@pytest.mark.anyio
async def test_the_value_computed_is_written_as_stock_quantity_without_reading_reservations() -> (
    None
):
    # Allocation already added Ankorstore's own open orders (5 units) to the
    # sellable 12: Ankorstore subtracts its reservedQuantity and shows 12.
    a = FakeVariant(vid(1), "A", stock=40, reserved=5)
    b = FakeVariant(vid(2), "B", stock=3, reserved=0)
    fake = FakeAnkorstore(a, b)
    channel, _ = make_channel(fake, catalog_of(a, b))
    await channel.read_live()  # the start-up read-back
    reads = len(fake.gets())
    result = await channel.push([update("A", 17), update("B", 9)])
    assert [u.sku for u in result.acknowledged] == ["A", "B"]
    assert (a.stock, a.available) == (17, 12)
    assert (b.stock, b.available) == (9, 9)
    assert result.requests == 1  # the bulk write alone
    assert len(fake.gets()) == reads
    [ops] = sent_operations(fake)
    assert ops[0] == {
        "op": "update",
        "data": {"type": "product-variants", "id": a.id, "attributes": {"stockQuantity": 17}},
    }


@pytest.mark.anyio
async def test_an_order_placed_and_cancelled_between_two_polls_changes_nothing_for_good() -> None:
    # syncd never sees the order: Ankorstore alone subtracts it while it is
    # open, and its cancellation gives back exactly its units.
    a = FakeVariant(vid(1), "A", stock=0)
    fake = FakeAnkorstore(a)
    channel, _ = make_channel(fake, catalog_of(a))
    await channel.push([update("A", 10)])
    a.reserved = 4  # placed on Ankorstore
    assert a.available == 6
    await channel.push([update("A", 10, seq=2)])  # any later write of syncd's number
    assert a.available == 6
    a.reserved = 0  # cancelled before syncd's next order poll
    assert (a.stock, a.available) == (10, 10)


@pytest.mark.anyio
async def test_pack_sizes_are_ankorstore_unit_multipliers_by_sku() -> None:
    case = FakeVariant(vid(1), "WINE", stock=0, multiplier=6)
    single = FakeVariant(vid(2), "SOAP", stock=0)
    fake = FakeAnkorstore(case, single)
    channel, _ = make_channel(fake, catalog_of(case, single, pack=1))
    assert channel.pack_sizes() == {}
    await channel.read_live()
    packs = channel.pack_sizes()
    assert packs == {"WINE": 6, "SOAP": 1}
    await channel.read_live()
    assert channel.pack_sizes() is packs  # unchanged: the engine computes nothing again
    case.multiplier = 12
    await channel.read_live()
    assert channel.pack_sizes() == {"WINE": 12, "SOAP": 1}


@pytest.mark.anyio
async def test_a_value_computed_before_the_pack_was_known_is_not_sent() -> None:
    case = FakeVariant(vid(1), "WINE", stock=0, multiplier=6)
    fake = FakeAnkorstore(case)
    channel, _ = make_channel(fake, catalog_of(case, pack=1, with_ids=False))
    assert channel.pack_sizes() == {}  # what allocation used: the catalog's pack of 1
    # The push looks the variant up by SKU and learns it sells in cases of 6.
    result = await channel.push([update("WINE", 20)])
    assert result.acknowledged == []
    assert "packs of 6" in result.failed[0][1]
    assert not fake.posts()
    assert channel.pack_sizes() == {"WINE": 6}
    result = await channel.push([update("WINE", 18, seq=2)])
    assert [u.sku for u in result.acknowledged] == ["WINE"]
    assert case.stock == 18


# --- partial refusals -------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("atomic", [True, False])
async def test_one_refused_operation_is_parked_and_the_others_land(atomic: bool) -> None:
    variants = [FakeVariant(vid(n), f"S{n}", stock=0) for n in range(1, 6)]
    fake = FakeAnkorstore(*variants)
    fake.atomic = atomic
    fake.invalid = {variants[2].id: "indexed"}
    channel, _ = make_channel(fake, catalog_of(*variants))
    result = await channel.push([update(v.sku, 10 + i) for i, v in enumerate(variants)])
    assert [u.sku for u, _ in result.parked] == ["S3"]
    assert "/atomic:operations/2/data/attributes/stockQuantity" in result.parked[0][1]
    assert sorted(u.sku for u in result.acknowledged) == ["S1", "S2", "S4", "S5"]
    assert [v.stock for v in variants] == [10, 11, 0, 13, 14]
    assert [len(ops) for ops in sent_operations(fake)] == [5, 4]
    assert not result.failed


@pytest.mark.anyio
async def test_error_naming_no_operation_is_narrowed_down_by_splitting() -> None:
    variants = [FakeVariant(vid(n), f"S{n}", stock=0) for n in range(1, 5)]
    fake = FakeAnkorstore(*variants)
    fake.invalid = {variants[3].id: "plain"}  # pointer "data.attributes.field"
    channel, _ = make_channel(fake, catalog_of(*variants))
    result = await channel.push([update(v.sku, 7) for v in variants])
    assert [u.sku for u, _ in result.parked] == ["S4"]
    assert sorted(u.sku for u in result.acknowledged) == ["S1", "S2", "S3"]
    assert [v.stock for v in variants] == [7, 7, 7, 0]
    # 4 -> (2 ok, 2 refused) -> (1 ok, 1 refused): five requests, never the whole catalog.
    assert [len(ops) for ops in sent_operations(fake)] == [4, 2, 2, 1, 1]


@pytest.mark.anyio
async def test_unknown_variant_id_is_parked_with_the_404() -> None:
    known = FakeVariant(vid(1), "A", stock=0)
    ghost = FakeVariant(vid(99), "GHOST", stock=0)
    fake = FakeAnkorstore(known)  # Ankorstore has never heard of the ghost
    channel, _ = make_channel(fake, catalog_of(known, ghost))
    result = await channel.push([update("A", 3), update("GHOST", 3)])
    assert [u.sku for u, _ in result.parked] == ["GHOST"]
    assert "404" in result.parked[0][1]
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert known.stock == 3


@pytest.mark.anyio
async def test_every_operation_refused_alike_fails_the_batch_instead_of_parking_it() -> None:
    # E.g. a body Ankorstore no longer accepts: parking would hide the whole catalog.
    variants = [FakeVariant(vid(n), f"S{n}", stock=0) for n in range(1, 4)]
    fake = FakeAnkorstore(*variants)
    fake.invalid = dict.fromkeys((v.id for v in variants), "indexed")
    channel, _ = make_channel(fake, catalog_of(*variants))
    result = await channel.push([update(v.sku, 2) for v in variants])
    assert not result.parked
    assert sorted(u.sku for u, _ in result.failed) == ["S1", "S2", "S3"]
    assert len(fake.posts()) == 1


@pytest.mark.anyio
async def test_alike_refusals_are_parked_once_the_other_operations_landed() -> None:
    variants = [FakeVariant(vid(n), f"S{n}", stock=0) for n in range(1, 5)]
    fake = FakeAnkorstore(*variants)
    fake.invalid = {variants[0].id: "indexed", variants[2].id: "indexed"}
    channel, _ = make_channel(fake, catalog_of(*variants))
    result = await channel.push([update(v.sku, 2) for v in variants])
    assert sorted(u.sku for u in result.acknowledged) == ["S2", "S4"]
    assert sorted(u.sku for u, _ in result.parked) == ["S1", "S3"]
    # all four, then the two good ones, then the two refused ones again
    assert [len(ops) for ops in sent_operations(fake)] == [4, 2, 2]


@pytest.mark.anyio
async def test_404_naming_nothing_before_any_success_fails_instead_of_parking() -> None:
    a = FakeVariant(vid(1), "A", stock=0)
    fake = FakeAnkorstore(a)

    def wrong_endpoint(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(404, json={"errors": [{"status": "404", "detail": "Not found"}]})
        return None

    fake.intercept = wrong_endpoint
    channel, _ = make_channel(fake, catalog_of(a))
    result = await channel.push([update("A", 3)])
    assert not result.parked
    assert [u.sku for u, _ in result.failed] == ["A"]


# --- transient failures ---------------------------------------------------------------


@pytest.mark.anyio
async def test_5xx_resends_the_same_absolute_values_then_reports_failed() -> None:
    a = FakeVariant(vid(1), "A", stock=0)
    fake = FakeAnkorstore(a)

    def outage(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(503, json={"errors": [{"status": "503", "detail": "down"}]})
        return None

    fake.intercept = outage
    channel, _ = make_channel(fake, catalog_of(a), retry=RetryPolicy(max_attempts=3))
    result = await channel.push([update("A", 5)])
    assert [u.sku for u, _ in result.failed] == ["A"]
    assert "503" in result.failed[0][1]
    bodies = {r.content for r in fake.posts()}
    assert len(fake.posts()) == 3
    assert len(bodies) == 1


@pytest.mark.anyio
async def test_5xx_then_success_lands_the_value() -> None:
    a = FakeVariant(vid(1), "A", stock=0)
    fake = FakeAnkorstore(a)
    answers = iter([httpx.Response(502, json={"errors": []})])

    def once(request: httpx.Request) -> httpx.Response | None:
        return next(answers, None) if request.method == "POST" else None

    fake.intercept = once
    channel, _ = make_channel(fake, catalog_of(a))
    result = await channel.push([update("A", 5)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert a.stock == 5


@pytest.mark.anyio
async def test_429_waits_for_retry_after_before_resending() -> None:
    a = FakeVariant(vid(1), "A", stock=0)
    fake = FakeAnkorstore(a)
    answers = iter([httpx.Response(429, headers={"Retry-After": "7"}, json={"errors": []})])

    def throttled(request: httpx.Request) -> httpx.Response | None:
        return next(answers, None) if request.method == "POST" else None

    fake.intercept = throttled
    channel, clock = make_channel(fake, catalog_of(a))
    started = clock.monotonic()
    result = await channel.push([update("A", 5)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert clock.monotonic() - started >= 7
    assert len(fake.posts()) == 2


# --- always in stock ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_always_in_stock_variant_is_left_alone_and_parked_with_the_reason() -> None:
    flagged = FakeVariant(vid(1), "A", stock=None, always=True)
    normal = FakeVariant(vid(2), "B", stock=0)
    fake = FakeAnkorstore(flagged, normal)
    channel, _ = make_channel(fake, catalog_of(flagged, normal))
    result = await channel.push([update("A", 4), update("B", 4)])
    assert [(u.sku, r.split(":")[0]) for u, r in result.parked] == [("A", ALWAYS_IN_STOCK_REASON)]
    assert flagged.always
    assert flagged.stock is None
    assert [op["data"]["id"] for ops in sent_operations(fake) for op in ops] == [normal.id]


@pytest.mark.anyio
async def test_always_in_stock_manage_publishes_a_number_which_clears_the_flag() -> None:
    flagged = FakeVariant(vid(1), "A", stock=None, reserved=2, always=True)
    fake = FakeAnkorstore(flagged)
    channel, _ = make_channel(fake, catalog_of(flagged), always_in_stock="manage")
    result = await channel.push([update("A", 6)])  # 4 sellable + the 2 of its own orders
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert (flagged.always, flagged.stock, flagged.available) == (False, 6, 4)


# --- request cost ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_budget_is_the_limiter_s_less_what_sources_keep() -> None:
    a = FakeVariant(vid(1), "A", stock=10)
    fake = FakeAnkorstore(a)
    channel, _ = make_channel(fake, catalog_of(a))
    # 600/min less 20% left for sources and 2 s of window slack.
    assert channel.requests_available() == 480
    await channel.read_live()
    await channel.push([update("A", 4)])
    assert channel.requests_available() == 480 - 2  # the read and the write, nothing else


# --- identities ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_variant_without_catalog_id_is_found_by_sku_or_parked() -> None:
    listed = FakeVariant(vid(1), "A", stock=0)
    missing = FakeVariant(vid(2), "NOPE", stock=0)
    fake = FakeAnkorstore(listed)
    channel, _ = make_channel(fake, catalog_of(listed, missing, with_ids=False))
    result = await channel.push([update("A", 2), update("NOPE", 2)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert listed.stock == 2
    assert [u.sku for u, _ in result.parked] == ["NOPE"]
    assert "filter%5Bsku%5D=A%2CNOPE" in str(fake.gets()[0].url)


# --- read-back --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_read_live_reports_written_available_and_reserved_units() -> None:
    variants = [FakeVariant(vid(n), f"S{n}", stock=10 + n, reserved=n) for n in range(1, 6)]
    variants.append(FakeVariant(vid(9), "ALWAYS", stock=None, always=True))
    variants.append(FakeVariant(vid(10), "NOT-OURS", stock=3))
    fake = FakeAnkorstore(*variants)
    channel, _ = make_channel(fake, catalog_of(*variants[:-1]), page_size=2)
    live = await channel.read_live()
    assert {sku: value.sellable for sku, value in live.items()} == {
        "S1": 10,
        "S2": 10,
        "S3": 10,
        "S4": 10,
        "S5": 10,
        "ALWAYS": None,
    }
    assert (live["S2"].written, live["S2"].reserved) == (12, 2)
    assert live["ALWAYS"].written is None
    assert len(fake.gets()) == 4  # 7 variants, 2 per page: every page followed


@pytest.mark.anyio
async def test_read_live_for_a_few_skus_reads_only_those() -> None:
    variants = [FakeVariant(vid(n), f"S{n}", stock=n) for n in range(1, 301)]
    fake = FakeAnkorstore(*variants)
    channel, _ = make_channel(fake, catalog_of(*variants))
    live = await channel.read_live(["S7", "S8"])
    assert {k: v.sellable for k, v in live.items()} == {"S7": 7, "S8": 8}
    assert len(fake.gets()) == 1
    assert "filter%5Bid%5D%5B%5D" in str(fake.gets()[0].url)
