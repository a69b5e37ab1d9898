"""JSON:API building blocks shared by the Ankorstore and ASTRAL simulators.

Ankorstore documents one document shape for every JSON:API endpoint (seed 000
L15-133, L12930-13034): resource data under ``data``, errors under
``errors``, cursor pagination in ``meta.page`` with ``links``, and the media
type ``application/vnd.api+json`` on both sides. This module holds those
rules once: media-type checks, error documents, cursor slicing and the
pagination links, so each simulator only describes its resources.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

JSONAPI = "application/vnd.api+json"
JSONAPI_VERSION = {"version": "1.0"}

T = TypeVar("T")

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
}


@dataclass(frozen=True, slots=True)
class ApiError:
    """One entry of a JSON:API ``errors`` array."""

    status: int
    detail: str
    pointer: str | None = None
    code: str | None = None
    title: str | None = None

    def to_json(self, *, integer_status: bool = False) -> dict[str, Any]:
        # Ankorstore's main API writes the status as a string ("422", seed 000
        # L9447-9452); the ASTRAL service's error schema has it as an integer.
        body: dict[str, Any] = {
            "status": self.status if integer_status else str(self.status),
            "title": self.title or _TITLES.get(self.status, "Error"),
            "detail": self.detail,
        }
        if self.code is not None:
            body["code"] = self.code
        if self.pointer is not None:
            body["source"] = {"pointer": self.pointer}
        return body


class JsonApiResponse(Response):
    media_type = JSONAPI

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode()


def document(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> JsonApiResponse:
    """A JSON:API response carrying ``jsonapi.version`` like every Ankorstore reply."""
    payload = dict(body)
    payload.setdefault("jsonapi", dict(JSONAPI_VERSION))
    return JsonApiResponse(payload, status_code=status, headers=dict(headers or {}))


def error_response(
    errors: Sequence[ApiError],
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    integer_status: bool = False,
) -> JsonApiResponse:
    if not errors:
        raise ValueError("an error response needs at least one error")
    code = status if status is not None else errors[0].status
    body = {"errors": [e.to_json(integer_status=integer_status) for e in errors]}
    return document(body, status=code, headers=headers)


def _media_ranges(header: str) -> list[tuple[str, dict[str, str]]]:
    ranges = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        ranges.append((pieces[0].lower(), params))
    return ranges


def _jsonapi_params_ok(params: Mapping[str, str]) -> bool:
    # JSON:API allows only the ext/profile parameters; a q-value is ordinary HTTP.
    return set(params) <= {"ext", "profile", "q"}


def accepts_jsonapi(accept: str | None) -> bool:
    """True when ``Accept`` explicitly names ``application/vnd.api+json``.

    The header is *required* (seed 000 L23, L12930), so a missing header or a
    bare ``*/*`` is refused with 406 -- the strict reading, which catches a
    client that forgot to set it.
    """
    if not accept:
        return False
    return any(kind == JSONAPI and _jsonapi_params_ok(p) for kind, p in _media_ranges(accept))


def accepts_json(accept: str | None) -> bool:
    """For the non-JSON:API endpoints (``/api/v1/me``): JSON in any spelling."""
    if not accept:
        return True
    kinds = {kind for kind, _ in _media_ranges(accept)}
    return bool(kinds & {"application/json", JSONAPI, "application/*", "*/*"})


def is_jsonapi_body(content_type: str | None) -> bool:
    """True when a request body is declared as JSON:API (seed 000 L23)."""
    if not content_type:
        return False
    ranges = _media_ranges(content_type)
    return len(ranges) == 1 and ranges[0][0] == JSONAPI and _jsonapi_params_ok(ranges[0][1])


# --- pagination -----------------------------------------------------------------


class PageParamError(ValueError):
    """A ``page[...]`` parameter the server cannot honour (answered with 400)."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(detail)
        self.parameter = parameter
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    after: str | None
    before: str | None


def parse_page(request: Request, *, default: int, maximum: int | None) -> PageRequest:
    """Read ``page[limit]``, ``page[after]``, ``page[before]`` (seed 000 L84, L12983).

    A limit above ``maximum`` is clamped (``meta.page.perPage`` reports what
    was used); a limit that is not a positive integer is a 400.
    """
    raw = request.query_params.get("page[limit]")
    limit = default
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise PageParamError("page[limit]", "page[limit] must be an integer") from None
        if limit < 1:
            raise PageParamError("page[limit]", "page[limit] must be at least 1")
    if maximum is not None:
        limit = min(limit, maximum)
    after = request.query_params.get("page[after]") or None
    before = request.query_params.get("page[before]") or None
    if after and before:
        raise PageParamError("page[after]", "use page[after] or page[before], not both")
    return PageRequest(limit=limit, after=after, before=before)


@dataclass(slots=True)
class PageSlice(Generic[T]):
    items: list[T]
    more_after: bool
    """Items exist after the last item of this page (``links.next``)."""
    more_before: bool
    """Items exist before the first item of this page (``links.prev``)."""
    direction_has_more: bool = field(default=False)
    """``meta.page.hasMore``: more items in the direction of travel."""


def cursor_slice(items: Sequence[T], key: Callable[[T], str], page: PageRequest) -> PageSlice[T]:
    """Cut one page out of an ordered list with id cursors.

    ``page[after]=X`` returns the items strictly after X; ``page[before]=X``
    the ``limit`` items immediately before X, still in list order.
    """
    start = 0
    stop = len(items)
    if page.after or page.before:
        cursor = page.after or page.before
        position = next((i for i, item in enumerate(items) if key(item) == cursor), None)
        if position is None:
            name = "page[after]" if page.after else "page[before]"
            raise PageParamError(name, f"unknown cursor {cursor!r}")
        if page.after:
            start = position + 1
        else:
            stop = position
    if page.before:
        first = max(start, stop - page.limit)
        chosen = list(items[first:stop])
        return PageSlice(
            items=chosen,
            more_after=stop < len(items),
            more_before=first > 0,
            direction_has_more=first > 0,
        )
    chosen = list(items[start : start + page.limit])
    end = start + len(chosen)
    return PageSlice(
        items=chosen,
        more_after=end < len(items),
        more_before=start > 0,
        direction_has_more=end < len(items),
    )


def truncate_page(page: PageSlice[T], keep: int | None = None) -> PageSlice[T]:
    """The ``partial_page`` fault: fewer items than asked while ``hasMore`` stays true.

    Only the forward direction is cut (items dropped from the end are still
    reachable through ``links.next``), so nothing is lost to a client that
    follows the links -- which is what a client must do.
    """
    if len(page.items) <= 1:
        return page
    count = keep if keep is not None else max(1, len(page.items) // 2)
    count = max(1, min(count, len(page.items) - 1))
    return PageSlice(
        items=page.items[:count],
        more_after=True,
        more_before=page.more_before,
        direction_has_more=True,
    )


def page_url(request: Request, page_params: Sequence[tuple[str, str]]) -> str:
    """The request's URL with its ``page[...]`` parameters replaced.

    Filters, ``include`` and ``sort`` are kept, so following ``links.next``
    continues the same query (seed 000 L86-107).
    """
    kept = [(k, v) for k, v in request.query_params.multi_items() if not k.startswith("page[")]
    query = urlencode([*kept, *page_params])
    return str(request.url.replace(query=query))


def iso_micro(epoch: float) -> str:
    """Ankorstore catalog timestamps: ``2020-08-27T14:29:15.000000Z`` (seed 000 L1599)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_offset(epoch: float) -> str:
    """Order timestamps: ``2022-03-15T10:05:09+00:00`` (seed 000 L5827ff)."""
    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat()


def iso_millis(epoch: float) -> str:
    """ASTRAL transaction timestamps: ``2024-05-28T09:07:26.339Z`` (brief seed-astral 3.6)."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


async def read_json(request: Request) -> tuple[Any, ApiError | None]:
    """The request body as JSON, or a 400 error for a body that is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError):
        return None, ApiError(400, "The request body is not valid JSON.", code="invalid_json")
