"""Reading paginated listings to their end -- or failing loudly, never stopping short.

Three shapes exist among syncd's APIs:

* **JSON:API cursor pages** (Ankorstore and ASTRAL, seed 000 L45-107 and
  L12946-13018): follow ``links.next`` -- "we recommend using the provided
  helper pagination links" (L86-90, L12985-12987) -- until
  ``meta.page.hasMore`` is false or ``next`` is missing or null ("If a link
  does not exist then you cannot paginate any further", L96, L12995).
  :func:`paginate`.
* **DRF envelopes** ``{count, next, previous, results}`` with an absolute
  ``next`` URL followed verbatim (fabric, seed 003 L64-68). :func:`paginate_next_url`.
* **A cursor token** returned as ``next`` and passed back as the ``next``
  query parameter (FashionTrade ``GET /orders``, seed 002 L1344-1427).
  :func:`paginate_cursor`.

Every reader guards against a server that never ends: a ``next`` link (or
cursor) seen before, or more than ``max_pages`` pages, raises
:class:`PaginationError` -- as does a page that says there is more but gives
no way to get it. A caller therefore either reads every page or gets an
error; it can never mistake a truncated listing for a complete one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from syncd.http.client import ApiClient, QueryParams, response_json
from syncd.http.errors import PaginationError, RequestContext

JsonObject = dict[str, Any]

DEFAULT_MAX_PAGES = 100_000
"""Far above any real catalog (100 000 pages of 10); only a runaway server reaches it."""


@dataclass(frozen=True, slots=True)
class Page:
    """One JSON:API page: its resources and everything needed to resume."""

    url: str
    data: list[JsonObject]
    included: list[JsonObject]
    meta: JsonObject
    links: JsonObject
    document: JsonObject = field(repr=False)
    dropped: int = 0
    """Entries of ``data`` that were not objects (``null``, a string...), left out of
    ``data``. Callers that must account for every entry -- a listing that
    releases what it does not contain -- treat them as unidentified items."""

    @property
    def cursor(self) -> str | None:
        """``meta.page.to``: the opaque cursor after this page's last item (ASTRAL brief §1.5)."""
        value = _page_meta(self.meta).get("to")
        return value if isinstance(value, str) and value else None

    @property
    def has_more(self) -> bool | None:
        """``meta.page.hasMore``; ``None`` when absent (optional in the schema, L718-719)."""
        value = _page_meta(self.meta).get("hasMore")
        return value if isinstance(value, bool) else None

    @property
    def next_url(self) -> str | None:
        value = self.links.get("next")
        return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ResultsPage:
    """One page of a plain-JSON listing (fabric, FashionTrade)."""

    url: str
    results: list[Any]
    count: int | None
    """The total the server reports (fabric ``count``, FashionTrade ``total``)."""
    next: str | None
    document: JsonObject = field(repr=False)


async def paginate(
    client: ApiClient,
    url: str,
    *,
    params: QueryParams | None = None,
    reserve: float = 0.0,
    max_pages: int = DEFAULT_MAX_PAGES,
    carry_params: bool = True,
) -> AsyncIterator[Page]:
    """Yield every page of a JSON:API listing, following ``links.next``.

    ``next`` may be absolute or relative; it is resolved against the URL of
    the page that carried it. With ``carry_params``, query parameters of the
    first request that a ``next`` link lacks are added back: the documented
    links show only ``include`` and ``page[...]`` (seed 000 L113-115), and
    silently dropping a ``filter[...]`` would turn a filtered listing into a
    different one. Parameters present in the link always win.
    """
    first = httpx.QueryParams(params) if params is not None else httpx.QueryParams()
    seen: set[str] = set()
    target = httpx.URL(url)
    request_params: httpx.QueryParams | None = first
    for number in range(1, max_pages + 1):
        response = await client.request("GET", target, params=request_params, reserve=reserve)
        page_url = response.request.url
        seen.add(str(page_url))
        document = _json_object(response_json(response, api=client.name), client, page_url)
        page = _jsonapi_page(document, page_url, client)
        yield page
        if page.has_more is False:
            return
        if page.next_url is None:
            if page.has_more:
                raise _error(client, page_url, "page says hasMore but has no next link")
            return
        target = page_url.join(page.next_url)
        if carry_params:
            target = _with_missing_params(target, first)
        _check_next(
            client, page_url=page_url, target=target, seen=seen, number=number, max_pages=max_pages
        )
        request_params = None
    raise AssertionError("unreachable: the loop raises before exceeding max_pages")


async def paginate_next_url(
    client: ApiClient,
    url: str,
    *,
    params: QueryParams | None = None,
    reserve: float = 0.0,
    max_pages: int = DEFAULT_MAX_PAGES,
    results_key: str = "results",
) -> AsyncIterator[ResultsPage]:
    """Yield every page of a ``{count, next, previous, results}`` listing (fabric).

    ``next`` is an absolute URL followed verbatim (seed 003 L66): its query
    already holds every parameter, so nothing is carried over.
    """
    seen: set[str] = set()
    target = httpx.URL(url)
    request_params: QueryParams | None = params
    for number in range(1, max_pages + 1):
        response = await client.request("GET", target, params=request_params, reserve=reserve)
        page_url = response.request.url
        seen.add(str(page_url))
        document = _json_object(response_json(response, api=client.name), client, page_url)
        results = document.get(results_key)
        if not isinstance(results, list):
            raise _error(client, page_url, f"page has no {results_key!r} list")
        next_value = document.get("next")
        next_url = next_value if isinstance(next_value, str) and next_value else None
        yield ResultsPage(
            url=str(page_url),
            results=results,
            count=_int_or_none(document.get("count")),
            next=next_url,
            document=document,
        )
        if next_url is None:
            return
        target = page_url.join(next_url)
        _check_next(
            client, page_url=page_url, target=target, seen=seen, number=number, max_pages=max_pages
        )
        request_params = None
    raise AssertionError("unreachable: the loop raises before exceeding max_pages")


async def paginate_cursor(
    client: ApiClient,
    url: str,
    *,
    params: Mapping[str, str | int] | None = None,
    reserve: float = 0.0,
    max_pages: int = DEFAULT_MAX_PAGES,
    items_key: str = "items",
    cursor_key: str = "next",
    cursor_param: str = "next",
    count_key: str = "total",
) -> AsyncIterator[ResultsPage]:
    """Yield every page of a listing whose ``next`` is a token for the next request.

    FashionTrade answers ``{items, next, total}`` and takes the token back
    as ``?next=`` (seed 002 L1344-1427, L700-715); the listing ends when
    ``next`` is absent. A token seen twice raises :class:`PaginationError`.
    """
    base = dict(params or {})
    seen: set[str] = set()
    cursor: str | None = None
    for number in range(1, max_pages + 1):
        query: dict[str, str | int] = dict(base)
        if cursor is not None:
            query[cursor_param] = cursor
        response = await client.request("GET", url, params=query, reserve=reserve)
        page_url = response.request.url
        document = _json_object(response_json(response, api=client.name), client, page_url)
        items = document.get(items_key)
        if not isinstance(items, list):
            raise _error(client, page_url, f"page has no {items_key!r} list")
        token = document.get(cursor_key)
        cursor = token if isinstance(token, str) and token else None
        yield ResultsPage(
            url=str(page_url),
            results=items,
            count=_int_or_none(document.get(count_key)),
            next=cursor,
            document=document,
        )
        if cursor is None:
            return
        if cursor in seen:
            raise _error(
                client, page_url, "next cursor repeats an earlier page; the listing never ends"
            )
        seen.add(cursor)
        if number == max_pages:
            raise _error(client, page_url, f"more than {max_pages} pages")
    raise AssertionError("unreachable: the loop raises before exceeding max_pages")


def _jsonapi_page(document: JsonObject, page_url: httpx.URL, client: ApiClient) -> Page:
    data = document.get("data")
    if not isinstance(data, list):
        raise _error(client, page_url, "JSON:API listing has no data array")
    included = document.get("included")
    meta = document.get("meta")
    links = document.get("links")
    resources = [item for item in data if isinstance(item, dict)]
    return Page(
        url=str(page_url),
        data=resources,
        included=[item for item in included if isinstance(item, dict)]
        if isinstance(included, list)
        else [],
        meta=meta if isinstance(meta, dict) else {},
        links=links if isinstance(links, dict) else {},
        document=document,
        dropped=len(data) - len(resources),
    )


def _check_next(
    client: ApiClient,
    *,
    page_url: httpx.URL,
    target: httpx.URL,
    seen: set[str],
    number: int,
    max_pages: int,
) -> None:
    if str(target) in seen:
        raise _error(client, page_url, "next link repeats an earlier page; the listing never ends")
    if (target.scheme, target.host, target.port) != (page_url.scheme, page_url.host, page_url.port):
        raise _error(client, page_url, f"next link leaves the API's host ({target.host})")
    if number >= max_pages:
        raise _error(client, page_url, f"more than {max_pages} pages")


def _with_missing_params(target: httpx.URL, first: httpx.QueryParams) -> httpx.URL:
    query = httpx.QueryParams(target.query)
    for key in first:
        if key not in query:
            for value in first.get_list(key):
                query = query.add(key, value)
    return target.copy_with(query=str(query).encode("ascii"))


def _json_object(document: Any, client: ApiClient, page_url: httpx.URL) -> JsonObject:
    if not isinstance(document, dict):
        raise _error(client, page_url, "page is not a JSON object")
    return document


def _page_meta(meta: JsonObject) -> JsonObject:
    page = meta.get("page")
    return page if isinstance(page, dict) else {}


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error(client: ApiClient, page_url: httpx.URL, message: str) -> PaginationError:
    return PaginationError(
        message, context=RequestContext(api=client.name, method="GET", path=page_url.path)
    )
