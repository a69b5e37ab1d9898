"""Paginated listings are read to their end, or fail loudly -- never cut short."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.clock import FakeClock
from syncd.http.client import ApiClient
from syncd.http.errors import PaginationError
from syncd.http.jsonapi import paginate, paginate_cursor, paginate_next_url
from tests.unit.http.fakeapi import BASE, FakeApi, make_client


def jsonapi_page(
    ids: list[str], *, next_link: str | None, has_more: bool | None = None
) -> httpx.Response:
    page: dict[str, object] = {
        "from": ids[0] if ids else None,
        "to": ids[-1] if ids else None,
        "perPage": 2,
    }
    if has_more is not None:
        page["hasMore"] = has_more
    links: dict[str, object] = {"first": f"{BASE}/api/v1/orders"}
    if next_link is not None:
        links["next"] = next_link
    body = {
        "data": [{"type": "order", "id": i, "attributes": {}} for i in ids],
        "included": [{"type": "retailer", "id": "r1"}],
        "meta": {"page": page},
        "links": links,
        "jsonapi": {"version": "1.0"},
    }
    return httpx.Response(200, json=body)


def by_cursor(pages: dict[str | None, httpx.Response]):  # type: ignore[no-untyped-def]
    def respond(request: httpx.Request) -> httpx.Response:
        return pages[request.url.params.get("page[after]")]

    return respond


async def collect(client: ApiClient, url: str, **kwargs: Any) -> list[Any]:
    return [page async for page in paginate(client, url, **kwargs)]


@pytest.mark.anyio
async def test_follows_absolute_next_links_until_has_more_is_false() -> None:
    pages = {
        None: jsonapi_page(
            ["a", "b"],
            next_link=f"{BASE}/api/v1/orders?page%5Bafter%5D=b&page%5Blimit%5D=2",
            has_more=True,
        ),
        "b": jsonapi_page(
            ["c", "d"],
            next_link=f"{BASE}/api/v1/orders?page%5Bafter%5D=d&page%5Blimit%5D=2",
            has_more=True,
        ),
        # The last page still carries a next link; hasMore=false ends the listing.
        "d": jsonapi_page(
            ["e"],
            next_link=f"{BASE}/api/v1/orders?page%5Bafter%5D=e&page%5Blimit%5D=2",
            has_more=False,
        ),
    }
    api = FakeApi(FakeClock(), by_cursor(pages))
    client = make_client(api)
    result = await collect(client, "/api/v1/orders", params={"page[limit]": 2})
    assert [[item["id"] for item in page.data] for page in result] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]
    assert [page.cursor for page in result] == ["b", "d", "e"]
    assert [page.has_more for page in result] == [True, True, False]
    assert result[0].included == [{"type": "retailer", "id": "r1"}]
    assert len(api.calls) == 3


@pytest.mark.anyio
async def test_follows_relative_next_links_and_stops_on_a_null_next() -> None:
    pages = {
        None: jsonapi_page(["a"], next_link="/api/astral/v1/stock/postings?page%5Bafter%5D=a"),
        "a": jsonapi_page(["b"], next_link=None),
    }
    api = FakeApi(FakeClock(), by_cursor(pages))
    client = make_client(api)
    result = await collect(client, "/api/astral/v1/stock/postings")
    assert [page.data[0]["id"] for page in result] == ["a", "b"]
    assert api.calls[1].url.path == "/api/astral/v1/stock/postings"
    assert result[1].has_more is None  # optional in the schema (seed 000 L718-719)


@pytest.mark.anyio
async def test_filters_the_next_link_dropped_are_carried_over() -> None:
    pages = {
        None: jsonapi_page(
            ["a"], next_link=f"{BASE}/api/v1/orders?include=&page%5Bafter%5D=a&page%5Blimit%5D=1"
        ),
        "a": jsonapi_page(["b"], next_link=None),
    }
    api = FakeApi(FakeClock(), by_cursor(pages))
    client = make_client(api)
    await collect(
        client, "/api/v1/orders", params={"filter[status]": "brand_confirmed", "page[limit]": 50}
    )
    second = api.calls[1].url.params
    assert second["filter[status]"] == "brand_confirmed"
    assert second["page[limit]"] == "1"  # the link's own value wins
    assert second["page[after]"] == "a"


@pytest.mark.anyio
async def test_a_next_link_that_repeats_is_an_error_not_an_endless_loop() -> None:
    loop = jsonapi_page(["a"], next_link=f"{BASE}/api/v1/orders?page%5Bafter%5D=a", has_more=True)
    api = FakeApi(FakeClock(), lambda request: loop)
    client = make_client(api)
    pages = paginate(client, "/api/v1/orders")
    assert (await anext(pages)).data[0]["id"] == "a"
    assert (await anext(pages)).data[0]["id"] == "a"  # served once more, then recognised
    with pytest.raises(PaginationError, match="repeats"):
        await anext(pages)
    assert len(api.calls) == 2


@pytest.mark.anyio
async def test_page_limit_guards_against_a_server_that_never_ends() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("page[after]", "0")) + 1
        return jsonapi_page(
            [str(n)], next_link=f"{BASE}/api/v1/orders?page%5Bafter%5D={n}", has_more=True
        )

    api = FakeApi(FakeClock(), endless)
    client = make_client(api)
    with pytest.raises(PaginationError, match="more than 5 pages"):
        await collect(client, "/api/v1/orders", max_pages=5)
    assert len(api.calls) == 5


@pytest.mark.anyio
async def test_has_more_without_a_next_link_is_an_error_not_a_short_read() -> None:
    api = FakeApi(FakeClock(), lambda request: jsonapi_page(["a"], next_link=None, has_more=True))
    client = make_client(api)
    with pytest.raises(PaginationError, match="hasMore"):
        await collect(client, "/api/v1/orders")


@pytest.mark.anyio
async def test_a_next_link_to_another_host_is_refused() -> None:
    api = FakeApi(
        FakeClock(),
        lambda request: jsonapi_page(["a"], next_link="https://evil.example.test/steal"),
    )
    client = make_client(api)
    with pytest.raises(PaginationError, match="leaves the API's host"):
        await collect(client, "/api/v1/orders")
    assert len(api.calls) == 1


@pytest.mark.anyio
async def test_a_listing_without_a_data_array_is_an_error() -> None:
    api = FakeApi(FakeClock(), lambda request: httpx.Response(200, json={"data": {"id": "x"}}))
    client = make_client(api)
    with pytest.raises(PaginationError, match="data array"):
        await collect(client, "/api/v1/orders")


@pytest.mark.anyio
async def test_fabric_style_absolute_next_pagination() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        nxt = (
            f"{BASE}/v1/retailers/1182/inventory/?updated_at_gte=1650327740&page={page + 1}"
            if page < 3
            else None
        )
        return httpx.Response(
            200,
            json={"count": 5, "next": nxt, "previous": None, "results": [page * 10, page * 10 + 1]},
        )

    api = FakeApi(FakeClock(), respond)
    client = make_client(api)
    pages = [
        p
        async for p in paginate_next_url(
            client, "/v1/retailers/1182/inventory/", params={"updated_at_gte": 1650327740}
        )
    ]
    assert [p.results for p in pages] == [[10, 11], [20, 21], [30, 31]]
    assert pages[0].count == 5
    assert pages[-1].next is None
    assert all(c.url.params["updated_at_gte"] == "1650327740" for c in api.calls)


@pytest.mark.anyio
async def test_fabric_style_repeating_next_is_an_error() -> None:
    body = {"count": 9, "next": f"{BASE}/v1/retailers/1/inventory/?page=2", "results": []}
    api = FakeApi(FakeClock(), lambda request: httpx.Response(200, json=body))
    client = make_client(api)
    with pytest.raises(PaginationError, match="repeats"):
        _ = [p async for p in paginate_next_url(client, "/v1/retailers/1/inventory/")]


@pytest.mark.anyio
async def test_cursor_token_pagination_passes_next_back_as_a_parameter() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("next")
        following = {None: "c1", "c1": "c2", "c2": None}[cursor]
        body: dict[str, object] = {"items": [cursor or "first"], "total": 3}
        if following is not None:
            body["next"] = following
        return httpx.Response(200, json=body)

    api = FakeApi(FakeClock(), respond)
    client = make_client(api)
    pages = [p async for p in paginate_cursor(client, "/orders", params={"status": "SUBMITTED"})]
    assert [p.results for p in pages] == [["first"], ["c1"], ["c2"]]
    assert all(c.url.params["status"] == "SUBMITTED" for c in api.calls)
    assert pages[0].count == 3


@pytest.mark.anyio
async def test_cursor_token_that_repeats_is_an_error() -> None:
    api = FakeApi(
        FakeClock(),
        lambda request: httpx.Response(200, json={"items": [], "next": "same", "total": 0}),
    )
    client = make_client(api)
    with pytest.raises(PaginationError, match="repeats"):
        _ = [p async for p in paginate_cursor(client, "/orders")]
    assert len(api.calls) == 2
