"""The fabric channel against an in-memory fabric supplier API behind httpx.MockTransport.

What a brand would notice: the number lands on the right fabric item (found
by its brand SKU, never the retailer's), syncd only counts it as done once
fabric shows it, the write call can be re-pointed from config, and nothing
negative is ever sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from structlog.testing import capture_logs

from syncd.channels.fabric import READBACK_MISMATCH, FabricChannel
from syncd.channels.fabric_inventory_map import parse_item, parse_quantity
from syncd.channels.updates import Move, PlannedUpdate
from syncd.clock import FakeClock
from syncd.config.sections import FabricChannelSection
from syncd.http.budget import Window
from syncd.http.presets import fabric_client
from syncd.http.retry import RetryPolicy
from syncd.model import Catalog, Variant

BASE = "https://fabric.test"
BRAND = "510"


@dataclass
class FakeItem:
    id: int
    brand_identifier: str
    inventory: int | str
    identifier: str = ""
    policy: str = "managed"
    updated_at: float | None = None
    """Epoch seconds of fabric's last change (``inventory_updated_at``)."""

    def json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "variant": {
                "id": self.id + 5_000_000,
                "identifier": self.identifier or self.brand_identifier,
                "brand_identifier": self.brand_identifier,
            },
            "inventory_policy": self.policy,
            "inventory": self.inventory,
            "inventory_updated_at": (
                None
                if self.updated_at is None
                else datetime.fromtimestamp(self.updated_at, UTC).isoformat()
            ),
            "sellable": "Yes",
        }


Interceptor = Callable[[httpx.Request], httpx.Response | None]


class FakeFabric:
    """Supplier list (DRF pages), item GET and a configurable absolute write."""

    def __init__(
        self,
        *items: FakeItem,
        page_size: int = 50,
        write_method: str = "PATCH",
        item_prefix: str = f"/v1/brands/{BRAND}/inventory/",
        field: str = "inventory",
    ) -> None:
        self.items = {i.id: i for i in items}
        self.page_size = page_size
        self.write_method = write_method
        self.item_prefix = item_prefix
        self.field = field
        self.requests: list[httpx.Request] = []
        self.after_write: Callable[[FakeItem], None] | None = None
        self.intercept: Interceptor | None = None
        self.now: Callable[[], float] = lambda: 1_700_000_000.0
        """fabric's clock (epoch s): stamps each change, judges ``updated_at_gte``."""
        self.stamp_writes = True

    def writes(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == self.write_method]

    def lists(self) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == "GET" and r.url.path == f"/v1/brands/{BRAND}/inventory/"
        ]

    def full_lists(self) -> list[httpx.Request]:
        """List pages read without a time filter (the whole list)."""
        return [r for r in self.lists() if "updated_at_gte" not in str(r.url)]

    def slices(self) -> list[httpx.Request]:
        """List pages of only the items changed since a time."""
        return [r for r in self.lists() if "updated_at_gte" in str(r.url)]

    def item_reads(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "GET" and r not in self.lists()]

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token/":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 36000})
        self.requests.append(request)
        if self.intercept is not None:
            answer = self.intercept(request)
            if answer is not None:
                return answer
        path = request.url.path
        if request.method == "GET" and path == f"/v1/brands/{BRAND}/inventory/":
            return self._page(request)
        if path.startswith(self.item_prefix) and path.endswith("/"):
            item = self.items.get(int(path[len(self.item_prefix) : -1]))
            if item is None:
                return httpx.Response(404, json={"detail": "Not found."})
            if request.method == "GET":
                return httpx.Response(200, json=item.json())
            if request.method == self.write_method:
                body = json.loads(request.content)
                if self.field not in body:
                    return httpx.Response(400, json={self.field: ["This field is required."]})
                item.inventory = max(0, int(body[self.field]))
                if self.stamp_writes:
                    item.updated_at = self.now()
                if self.after_write is not None:
                    self.after_write(item)
                return httpx.Response(200, json=item.json())
        return httpx.Response(404, json={"detail": "Not found."})

    def _page(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        page = int(query.get("page", ["1"])[0])
        rows = sorted(self.items.values(), key=lambda i: i.id)
        if "updated_at_gte" in query:
            since = float(query["updated_at_gte"][0])
            rows = [i for i in rows if i.updated_at is not None and i.updated_at >= since]
        if query.get("order_by") == ["-inventory_updated_at"]:
            rows.sort(key=lambda i: (i.updated_at or 0.0, i.id), reverse=True)
        chunk = rows[(page - 1) * self.page_size : page * self.page_size]
        more = page * self.page_size < len(rows)
        next_url = str(request.url.copy_merge_params({"page": page + 1})) if more else None
        return httpx.Response(
            200,
            json={
                "count": len(rows),
                "next": next_url,
                "previous": None,
                "results": [i.json() for i in chunk],
            },
        )


def make_channel(
    fake: FakeFabric,
    catalog: Catalog,
    *,
    clock: FakeClock | None = None,
    retry: RetryPolicy | None = None,
    windows: tuple[Window, ...] = (Window(600, 60.0),),
    transport: httpx.AsyncBaseTransport | None = None,
    **section: object,
) -> tuple[FabricChannel, FakeClock]:
    clock = clock or FakeClock()
    client = fabric_client(
        base_url=BASE,
        token_url=f"{BASE}/auth/token/",
        client_id="c",
        client_secret="s",
        clock=clock,
        windows=windows,
        transport=transport or httpx.MockTransport(fake.handler),
        retry=retry,
    )
    fake.now = clock.wall
    config = FabricChannelSection.model_validate({"locations": ["activeants"], **section})
    channel = FabricChannel(client, catalog, config, brand_id=BRAND, retailer_id="500", clock=clock)
    return channel, clock


def catalog_of(*skus: str) -> Catalog:
    return Catalog(variants={sku: Variant(sku=sku, fabric_sku=f"FB-{sku}") for sku in skus})


def update(sku: str, quantity: int, seq: int = 1) -> PlannedUpdate:
    return PlannedUpdate(sku=sku, quantity=quantity, seq=seq, previous=None, move=Move.UNKNOWN)


# --- parsing -----------------------------------------------------------------------


def test_inventory_numbers_may_arrive_as_strings_but_never_as_booleans() -> None:
    assert parse_quantity(150) == 150
    assert parse_quantity("150") == 150
    assert parse_quantity(" 7 ") == 7
    assert parse_quantity(True) is None
    assert parse_quantity("1.5") is None
    assert parse_item({"id": 3, "variant": {"identifier": "X"}}) is None  # no brand SKU


# --- writes --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_write_lands_on_the_item_of_the_brand_sku_and_is_confirmed_by_reading_back() -> None:
    fake = FakeFabric(
        FakeItem(1, "FB-A", 3, identifier="RETAILER-SKU-A"),
        FakeItem(2, "FB-B", 9),
    )
    channel, _ = make_channel(fake, catalog_of("A", "B"))
    result = await channel.push([update("A", 12)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert fake.items[1].inventory == 12
    assert fake.items[2].inventory == 9
    [write] = fake.writes()
    assert write.url.path == f"/v1/brands/{BRAND}/inventory/1/"
    assert json.loads(write.content) == {"inventory": 12}
    assert write.headers["content-type"] == "application/json"
    # list (map) + write + the slice of items changed since just before the write
    assert [r.method for r in fake.requests] == ["GET", "PATCH", "GET"]
    assert len(fake.slices()) == 1
    assert fake.item_reads() == []
    assert result.requests == 3


@pytest.mark.anyio
async def test_method_path_and_body_field_come_from_config() -> None:
    fake = FakeFabric(
        FakeItem(1, "FB-A", 3),
        write_method="PUT",
        item_prefix=f"/v1/brands/{BRAND}/stock/",
        field="quantity",
    )
    channel, _ = make_channel(
        fake,
        catalog_of("A"),
        write_method="PUT",
        write_path="/v1/brands/{brand_id}/stock/{inventory_id}/",
        write_body="quantity",
    )
    result = await channel.push([update("A", 4)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    [write] = fake.writes()
    assert write.url.path == f"/v1/brands/{BRAND}/stock/1/"
    assert json.loads(write.content) == {"quantity": 4}


@pytest.mark.anyio
async def test_readback_showing_another_value_is_reported_not_acknowledged() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 3))

    def order_arrives(item: FakeItem) -> None:
        item.inventory = int(item.inventory) - 2  # fabric decrements on an order

    fake.after_write = order_arrives
    channel, _ = make_channel(fake, catalog_of("A"))
    result = await channel.push([update("A", 10)])
    assert not result.acknowledged
    [(failed, reason)] = result.failed
    assert failed.sku == "A"
    assert reason.startswith(READBACK_MISMATCH)
    assert "shows 8" in reason
    assert "wrote 10" in reason


@pytest.mark.anyio
async def test_without_readback_the_writes_own_answer_is_checked() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 3), FakeItem(2, "FB-B", 3))
    channel, _ = make_channel(fake, catalog_of("A", "B"), readback=False)
    result = await channel.push([update("A", 6)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert [r.method for r in fake.requests] == ["GET", "PATCH"]
    fake.after_write = lambda item: setattr(item, "inventory", 1)
    result = await channel.push([update("B", 6)])
    assert result.failed
    assert result.failed[0][1].startswith(READBACK_MISMATCH)


@pytest.mark.anyio
async def test_negative_quantity_is_parked_and_never_sent() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 3))
    channel, _ = make_channel(fake, catalog_of("A"))
    result = await channel.push([update("A", -1)])
    assert [(u.sku, "negative" in r) for u, r in result.parked] == [("A", True)]
    assert not fake.requests
    assert fake.items[1].inventory == 3


# --- the SKU -> inventory id map ---------------------------------------------------------------


@pytest.mark.anyio
async def test_map_is_read_across_pages_once_and_reused() -> None:
    items = [FakeItem(n, f"FB-S{n}", 0) for n in range(1, 8)]
    fake = FakeFabric(*items, page_size=3)
    channel, _ = make_channel(fake, catalog_of(*(f"S{n}" for n in range(1, 8))))
    await channel.push([update("S7", 1)])
    await channel.push([update("S2", 1)])
    assert len(fake.full_lists()) == 3  # 7 items, 3 per page, read once
    assert fake.items[7].inventory == 1
    assert fake.items[2].inventory == 1


@pytest.mark.anyio
async def test_a_miss_rereads_the_list_and_finds_a_new_item() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0))
    channel, clock = make_channel(fake, catalog_of("A", "NEW"))
    await channel.push([update("A", 1)])
    fake.items[2] = FakeItem(2, "FB-NEW", 0)  # created on fabric after the map was read
    clock.advance(61)
    result = await channel.push([update("NEW", 5)])
    assert [u.sku for u in result.acknowledged] == ["NEW"]
    assert fake.items[2].inventory == 5
    assert len(fake.full_lists()) == 2


@pytest.mark.anyio
async def test_a_miss_against_a_fresh_map_is_parked_without_another_read() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0))
    channel, _ = make_channel(fake, catalog_of("A", "GHOST"))
    await channel.push([update("A", 1)])
    result = await channel.push([update("GHOST", 5)])
    assert [u.sku for u, _ in result.parked] == ["GHOST"]
    assert "FB-GHOST" in result.parked[0][1]
    assert len(fake.full_lists()) == 1


@pytest.mark.anyio
async def test_two_items_claiming_one_brand_sku_park_it_and_neither_is_written() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 3), FakeItem(2, "FB-B", 0), FakeItem(9, "FB-A", 4))
    channel, clock = make_channel(fake, catalog_of("A", "B"))
    with capture_logs() as logs:
        result = await channel.push([update("A", 5), update("B", 6)])
    assert [u.sku for u, _ in result.parked] == ["A"]
    assert "ambiguous" in result.parked[0][1]
    assert "ids 1, 9" in result.parked[0][1]
    assert [u.sku for u in result.acknowledged] == ["B"]
    assert (fake.items[1].inventory, fake.items[9].inventory) == (3, 4)
    assert [
        e["inventory_ids"] for e in logs if e["event"] == "channel.inventory_map_ambiguous"
    ] == [[1, 9]]
    # Drift read-back does not guess either: the ambiguous SKU shows no live value.
    live = await channel.read_live()
    assert set(live) == {"B"}
    # Once fabric lists a single item again, the SKU is written to it.
    del fake.items[9]
    clock.advance(61)
    again = await channel.push([update("A", 5)])
    assert [u.sku for u in again.acknowledged] == ["A"]
    assert fake.items[1].inventory == 5


@pytest.mark.anyio
async def test_an_id_that_went_stale_is_looked_up_again_and_the_write_retried() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0))
    channel, _ = make_channel(fake, catalog_of("A"))
    await channel.push([update("A", 1)])
    fake.items = {77: FakeItem(77, "FB-A", 0)}  # item re-created under a new id
    result = await channel.push([update("A", 6, seq=2)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert fake.items[77].inventory == 6
    assert [w.url.path for w in fake.writes()][-2:] == [
        f"/v1/brands/{BRAND}/inventory/1/",
        f"/v1/brands/{BRAND}/inventory/77/",
    ]


# --- refusals and rate limits ------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_refusal_before_any_write_worked_fails_instead_of_parking() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0), FakeItem(2, "FB-B", 0))
    channel, _ = make_channel(fake, catalog_of("A", "B"), write_body="stock")  # wrong field
    result = await channel.push([update("A", 1)])
    assert not result.parked
    assert [u.sku for u, _ in result.failed] == ["A"]


@pytest.mark.anyio
async def test_a_refusal_after_writes_worked_parks_that_sku() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0), FakeItem(2, "FB-B", 0))
    channel, _ = make_channel(fake, catalog_of("A", "B"))
    await channel.push([update("A", 1)])

    def refuse_b(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PATCH" and request.url.path.endswith("/2/"):
            return httpx.Response(400, json={"inventory": ["Ensure this value is at most 9999."]})
        return None

    fake.intercept = refuse_b
    result = await channel.push([update("B", 10_000)])
    assert [u.sku for u, _ in result.parked] == ["B"]
    assert "at most 9999" in result.parked[0][1]


@pytest.mark.anyio
async def test_429_is_waited_out_as_retry_after_says() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0))
    answers = iter([httpx.Response(429, headers={"Retry-After": "12"}, json={"detail": "slow"})])

    def throttle_once(request: httpx.Request) -> httpx.Response | None:
        return next(answers, None) if request.method == "PATCH" else None

    fake.intercept = throttle_once
    channel, clock = make_channel(fake, catalog_of("A"))
    started = clock.monotonic()
    result = await channel.push([update("A", 3)])
    assert [u.sku for u in result.acknowledged] == ["A"]
    assert clock.monotonic() - started >= 12
    assert len(fake.writes()) == 2


@pytest.mark.anyio
async def test_budget_counts_the_readback_and_the_channels_own_pace() -> None:
    fake = FakeFabric(FakeItem(1, "FB-A", 0))
    channel, _ = make_channel(fake, catalog_of("A"))
    # 600/min less 20%: 480; batches of 50 writes plus one confirming read
    assert channel.per_request == 50
    assert channel.requests_available() == 480 // 51
    channel, _ = make_channel(fake, catalog_of("A"), readback=False, requests_per_minute=30.0)
    assert channel.per_request == 30  # the channel's own pace is the tighter window
    assert channel.requests_available() == 1


# --- read-back for drift -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_read_live_reports_fabrics_own_number_and_none_when_unmanaged() -> None:
    fake = FakeFabric(
        FakeItem(1, "FB-A", "150"),
        FakeItem(2, "FB-B", 999, policy="unmanaged"),
        FakeItem(3, "FB-NOT-OURS", 4),
    )
    channel, _ = make_channel(fake, catalog_of("A", "B"))
    live = await channel.read_live()
    assert {sku: value.sellable for sku, value in live.items()} == {"A": 150, "B": None}
    assert live["A"].raw["inventoryId"] == 1
