"""HTTP conventions of the fabric simulator: DRF-style errors, paging, filters, slashes.

fabric's Marketplace API is a Django REST Framework service (brief §2.4-§2.6):
``{"detail": ...}`` errors, ``{field: [message]}`` validation errors,
``count/next/previous/results`` lists, trailing slashes on every path.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match

from syncd.sandbox.limits import Verdict

CONVERTER = re.compile(r":int}")
_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def detail(message: str, status: int) -> Response:
    return JSONResponse({"detail": message}, status_code=status)


def throttled_response(verdict: Verdict) -> Response:
    response = detail(
        f"Request was throttled. Expected available in {verdict.retry_after} seconds.", 429
    )
    response.headers["Retry-After"] = str(verdict.retry_after)
    return response


class BadQuery(ValueError):
    """A bad query parameter, answered ``400 {field: [message]}``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def page_response(
    request: Request, rows: list[dict[str, Any]], size: int, *, partial: bool = False
) -> Response:
    """DRF page-number pagination with absolute ``next``/``previous`` (seed 003 L64-68).

    ``partial`` serves the ``partial_page`` fault: half the page, same ``next``.
    """
    raw = request.query_params.get("page", "1")
    last = max(1, math.ceil(len(rows) / size))
    if not raw.isdigit() or not 1 <= int(raw) <= last:
        return detail("Invalid page.", 404)
    page = int(raw)
    results = rows[(page - 1) * size : page * size]
    if partial and len(results) > 1:
        results = results[: len(results) // 2]
    next_url = str(request.url.include_query_params(page=page + 1)) if page < last else None
    previous: str | None = None
    if page == 2:
        previous = str(request.url.remove_query_params("page"))
    elif page > 2:
        previous = str(request.url.include_query_params(page=page - 1))
    return JSONResponse(
        {"count": len(rows), "next": next_url, "previous": previous, "results": results}
    )


def time_filters(request: Request) -> list[tuple[Callable[[float, float], bool], float]]:
    """``updated_at_{op}=<epoch seconds UTC>`` (seed 003 L59, L4871-4874)."""
    filters = []
    for suffix, compare in _COMPARATORS.items():
        name = f"updated_at_{suffix}"
        raw = request.query_params.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            raise BadQuery(name, "Enter a number.") from None
        if not math.isfinite(value):
            raise BadQuery(name, "Enter a number.")
        filters.append((compare, value))
    return filters


def keep(stamp: float | None, filters: list[tuple[Callable[[float, float], bool], float]]) -> bool:
    if not filters:
        return True
    return stamp is not None and all(compare(stamp, value) for compare, value in filters)


def integer(value: Any) -> int | None:
    """DRF IntegerField: an int, or a string of one; never a bool or a fraction."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def order_errors(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary."]}
    errors: dict[str, list[str]] = {}
    if not isinstance(body.get("purchase_order_number"), str) or not body["purchase_order_number"]:
        errors["purchase_order_number"] = ["This field is required."]
    lines = body.get("order_lines")
    if not isinstance(lines, list) or not lines:
        errors["order_lines"] = ["This field is required."]
        return errors
    for line in lines:
        variant = line.get("variant") if isinstance(line, dict) else None
        quantity = integer(line.get("quantity")) if isinstance(line, dict) else None
        if (
            quantity is None
            or quantity <= 0
            or not isinstance(variant, dict)
            or not isinstance(variant.get("id"), int)
        ):
            errors["order_lines"] = ["Each line needs a positive quantity and a variant id."]
            break
    return errors


async def not_found_or_moved(request: Request, exc: Exception) -> Response:
    """DRF-style 404/405; a slash-less GET to an existing path is redirected (301)."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return detail(f'Method "{request.method}" not allowed.', 405)
    path = request.url.path
    if not path.endswith("/") and request.method in {"GET", "HEAD"}:
        scope = dict(request.scope, path=path + "/", method="GET")
        routes = request.app.routes
        if any(route.matches(scope)[0] != Match.NONE for route in routes):
            return RedirectResponse(str(request.url.replace(path=path + "/")), 301)
    return detail("Not found.", 404)
