"""FashionTrade order-integration simulator (seed 002), served by Starlette.

Paths are relative to the base path ``/order-integration`` of the real host
(L79-81); the simulator serves them at the root, so a client's base URL is
the simulator URL itself.

- Auth: the static API key as ``Authorization: Bearer <key>`` (L1746).
  Anything else: 401 with the body ``"Request lacks valid authentication."``.
  The ``revoke_tokens`` fault (or the admin route) revokes the key: every
  request is then 401 until ``POST /_sandbox/key/restore``.
- ``GET /orders`` (L1346-1427): overviews ``{items, next, total}`` (L700-715).
  ``created_after``/``created_before``: ISO-8601 (offset optional, naive = UTC)
  or an all-digit epoch in **milliseconds** (the seed types them
  ``string (int64)`` *and* says ISO-8601, L1354-1368); both bounds are
  **exclusive**. ``status``: one value of the overview enum, matched at
  order level (``MIXED`` included; brief §11.3). ``limit``: default 1000
  (L1388), values above 1000 are silently capped (the maximum is unstated).
  ``next``: the opaque cursor of the previous page, carrying the filters,
  the limit (an explicit ``limit`` overrides it) and the position (the
  order after the last one returned); the deprecated ``cursor`` is
  accepted as an alias. ``next`` is **absent** on the last
  page. ``total`` counts every order matching the filters. Items are sorted
  by creation time, then order number.
- ``GET /orders/{orderNumber}`` (L1429-1473), ``GET /orders/{orderNumber}/lines``
  (L1475-1517), ``GET /orders/{orderNumber}/lines/{lineId}`` (L1519-1568),
  ``PUT /orders/{orderNumber}/lines/{lineId}/status`` with
  ``{"order_line_status": ...}`` (L1686-1740).

Error bodies are JSON strings (the seed types them ``string``, brief §2.5).
The seed documents no rate limit: none by default, configurable (429 with
``Retry-After``).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox.fashiontrade_state import (
    LINE_STATUSES,
    ORDER_STATUSES,
    FashionTradeState,
    FTOrder,
    LineSpec,
)
from syncd.sandbox.faults import ASGIApp, FaultMiddleware, FaultPlan
from syncd.sandbox.limits import Verdict
from syncd.sandbox.simkit import (
    AdminError,
    Handler,
    admin_route,
    bearer_token,
    common_admin_routes,
    guarded,
    parse_iso,
    per_minute_limiter,
    read_json_object,
    require_str,
)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 1000
UNAUTHENTICATED = "Request lacks valid authentication."


def _text(message: str, status: int) -> Response:
    return JSONResponse(message, status_code=status)


def _throttled(verdict: Verdict) -> Response:
    response = _text("Too many requests.", 429)
    response.headers["Retry-After"] = str(verdict.retry_after)
    return response


def _bound_us(name: str, raw: str) -> int:
    """A ``created_*`` bound in epoch microseconds (ISO-8601, or epoch milliseconds)."""
    if raw.isdigit():
        return int(raw) * 1000
    try:
        moment = parse_iso(raw)
    except ValueError:
        raise ValueError(f"Invalid {name}: {raw!r}") from None
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _encode_cursor(position: tuple[int, str], filters: dict[str, Any]) -> str:
    payload = json.dumps({"after": list(position), "filters": filters}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(raw: str) -> tuple[tuple[int, str], dict[str, Any]]:
    try:
        padded = raw + "=" * (-len(raw) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created, number = data["after"]
        filters = data["filters"]
        if not isinstance(created, int) or not isinstance(number, str):
            raise TypeError
        if not isinstance(filters, dict):
            raise TypeError
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise ValueError("Invalid next cursor.") from None
    return (created, number), filters


class _App:
    def __init__(self, state: FashionTradeState, plan: FaultPlan) -> None:
        self.state = state
        self.plan = plan

    def _authorize(self, request: Request, key: str) -> Response | None:
        if self.plan.take("revoke_tokens", request.method, request.url.path) is not None:
            self.state.revoke_tokens()
        if not self.state.key_ok(bearer_token(request)):
            self.state.counters.deny(key)
            return _text(UNAUTHENTICATED, 401)
        return None

    def _filters(self, request: Request) -> tuple[dict[str, Any], tuple[int, str] | None]:
        params = request.query_params
        token = params.get("next") or params.get("cursor")
        if token:
            position, carried = _decode_cursor(token)
            return carried, position
        filters: dict[str, Any] = {}
        for name in ("created_after", "created_before"):
            raw = params.get(name)
            if raw is not None:
                filters[name] = _bound_us(name, raw)
        status = params.get("status")
        if status is not None:
            if status not in ORDER_STATUSES:
                raise ValueError(f"Invalid status: {status!r}")
            filters["status"] = status
        return filters, None

    async def list_orders(self, request: Request) -> Response:
        denied = self._authorize(request, "GET /orders")
        if denied is not None:
            return denied
        try:
            filters, after = self._filters(request)
        except ValueError as exc:
            return _text(str(exc), 400)
        # A cursor remembers its page's limit; an explicit ``limit`` wins.
        raw_limit = request.query_params.get("limit", str(filters.get("limit", DEFAULT_LIMIT)))
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            return _text(f"Invalid limit: {raw_limit!r}", 400)
        limit = min(int(raw_limit), MAX_LIMIT)
        filters["limit"] = limit
        with self.state.lock:
            matching = sorted(
                (o for o in self.state.orders.values() if _matches(o, filters)),
                key=lambda o: (o.created_us, o.order_number),
            )
            remaining = [
                o for o in matching if after is None or (o.created_us, o.order_number) > after
            ]
            page = remaining[:limit]
            if self.plan.take("partial_page", "GET", request.url.path) and len(page) > 1:
                page = page[: len(page) // 2]
            body: dict[str, Any] = {"items": [o.overview() for o in page], "total": len(matching)}
            if len(page) < len(remaining):
                last = page[-1]
                body["next"] = _encode_cursor((last.created_us, last.order_number), filters)
        return JSONResponse(body)

    def _order(self, request: Request) -> FTOrder | None:
        return self.state.orders.get(request.path_params["order_number"])

    async def get_order(self, request: Request) -> Response:
        denied = self._authorize(request, "GET /orders/{orderNumber}")
        if denied is not None:
            return denied
        with self.state.lock:
            order = self._order(request)
            if order is None:
                return _text("Order not found.", 404)
            return JSONResponse(order.to_json())

    async def get_lines(self, request: Request) -> Response:
        denied = self._authorize(request, "GET /orders/{orderNumber}/lines")
        if denied is not None:
            return denied
        with self.state.lock:
            order = self._order(request)
            if order is None:
                return _text("Order not found.", 404)
            return JSONResponse({"items": order.lines_json()})

    async def get_line(self, request: Request) -> Response:
        denied = self._authorize(request, "GET /orders/{orderNumber}/lines/{lineId}")
        if denied is not None:
            return denied
        with self.state.lock:
            order = self._order(request)
            try:
                if order is None:
                    raise KeyError
                line = order.line(request.path_params["line_id"])
            except KeyError:
                return _text("Order or order line not found.", 404)
            return JSONResponse(line.to_json(order.retailer_name, order.delivery))

    async def put_status(self, request: Request) -> Response:
        key = "PUT /orders/{orderNumber}/lines/{lineId}/status"
        denied = self._authorize(request, key)
        if denied is not None:
            return denied
        try:
            body = await read_json_object(request)
        except AdminError as exc:
            return _text(str(exc), 400)
        status = body.get("order_line_status")
        if status not in LINE_STATUSES:
            return _text(f"Invalid order_line_status: {status!r}", 400)
        try:
            self.state.set_line_status(
                request.path_params["order_number"], request.path_params["line_id"], status
            )
        except KeyError:
            return _text("Order not found.", 404)
        self.state.counters.write(key)
        return _text("Updated the status", 200)


def _matches(order: FTOrder, filters: dict[str, Any]) -> bool:
    after, before = filters.get("created_after"), filters.get("created_before")
    if after is not None and not order.created_us > after:
        return False
    if before is not None and not order.created_us < before:
        return False
    status = filters.get("status")
    return status is None or order.status == status


def _line_specs(raw: Any) -> list[LineSpec]:
    if not isinstance(raw, list) or not raw:
        raise AdminError("'lines' must be a non-empty list")
    specs: list[LineSpec] = []
    for entry in raw:
        if isinstance(entry, dict):
            specs.append(entry)
        elif (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], int)
        ):
            specs.append((entry[0], entry[1]))
        else:
            raise AdminError("each line is [key, quantity] or {barcode, quantity, type}")
    return specs


def _admin_routes(state: FashionTradeState) -> list[Route]:
    async def place(request: Request) -> Any:
        body = await read_json_object(request)
        retailer = body.get("retailer_name", "Sandbox Boutique")
        order = state.place_order(
            _line_specs(body.get("lines")),
            retailer_name=str(retailer),
            status=str(body.get("status", "SUBMITTED")),
        )
        with state.lock:
            return order.to_json()

    async def line_status(request: Request) -> Any:
        body = await read_json_object(request)
        order = state.set_line_status(
            request.path_params["order_number"],
            request.path_params["line_id"],
            require_str(body, "status"),
        )
        with state.lock:
            return order.to_json()

    async def order_status(request: Request) -> Any:
        body = await read_json_object(request)
        order = state.set_order_status(
            request.path_params["order_number"], require_str(body, "status")
        )
        with state.lock:
            return order.to_json()

    async def restore(request: Request) -> Any:
        body = await read_json_object(request)
        new_key = body.get("api_key")
        state.restore_key(new_key if isinstance(new_key, str) and new_key else None)
        return {"keyRevoked": state.key_revoked}

    base = "/_sandbox/orders/{order_number}"
    return [
        *common_admin_routes(state.snapshot, state.clock, state.revoke_tokens),
        Route("/_sandbox/orders", admin_route(place), methods=["POST"]),
        Route(f"{base}/status", admin_route(order_status), methods=["POST"]),
        Route(f"{base}/lines/{{line_id}}/status", admin_route(line_status), methods=["POST"]),
        Route("/_sandbox/key/restore", admin_route(restore), methods=["POST"]),
    ]


def create_app(state: FashionTradeState, faults: FaultPlan) -> ASGIApp:
    """The FashionTrade simulator over ``state``, wrapped in ``faults``."""
    app = _App(state, faults)
    limiter = per_minute_limiter(state.rate_limit, state.clock)

    def api(method: str, path: str, key: str, handler: Handler) -> Route:
        wrapped = guarded(
            f"{method} {key}",
            handler,
            counters=state.counters,
            limiter=limiter,
            throttled=_throttled,
        )
        return Route(path, wrapped, methods=[method])

    order = "/orders/{order_number}"
    routes = [
        api("GET", "/orders", "/orders", app.list_orders),
        api("GET", order, "/orders/{orderNumber}", app.get_order),
        api("GET", f"{order}/lines", "/orders/{orderNumber}/lines", app.get_lines),
        api(
            "GET",
            f"{order}/lines/{{line_id}}",
            "/orders/{orderNumber}/lines/{lineId}",
            app.get_line,
        ),
        api(
            "PUT",
            f"{order}/lines/{{line_id}}/status",
            "/orders/{orderNumber}/lines/{lineId}/status",
            app.put_status,
        ),
        *_admin_routes(state),
    ]
    return FaultMiddleware(Starlette(routes=routes), faults)
