"""fabric Marketplace simulator (seed 003, retailer side; supplier side per brief).

Retailer side, as the seed documents it:

- Token: ``POST /v1/`` exactly as printed (L34, truncated in the seed) and
  ``POST /auth/token/`` (the legacy RevCascade path, [EXT]): form body
  ``grant_type=client_credentials&client_id=..&client_secret=..`` only.
  Answer ``{access_token, token_type: "Bearer", expires_in: 36000, scope}``
  -- 10 hours (L41). Wrong client: 401 ``invalid_client``; other grant or a
  JSON body: 400 ``unsupported_grant_type``.
- ``GET /v1/retailers/{retailer_id}/inventory/`` and ``.../inventory/{variant_id}/``
  (L4859-4957): filters ``updated_at_{lt,lte,gt,gte}`` in epoch seconds on
  ``inventory_updated_at`` and ``order_by`` (``[-]inventory_updated_at``).
- ``GET|POST /v1/retailers/{retailer_id}/orders/`` and ``GET .../orders/{order_id}/``
  (L39, L4958-5181): the list is not documented beyond L39; it takes the
  same ``updated_at_*`` filters (on the order's ``updated_at``), ``status``
  (``open``/``closed``/``canceled``) and ``order_by`` (``[-]id``, ``[-]updated_at``).

Lists: ``{count, next, previous, results}`` (L64-68), page-number paging
(``?page=N``, [EXT]) with ``next``/``previous`` as absolute URLs on the host
the client called, a fixed page size (:attr:`FabricState.page_size`, no
documented parameter), ``404 {"detail": "Invalid page."}`` past the end.

Trailing slashes (DRF, brief §2.6): a path without its slash answers a
**GET/HEAD with 301** to the slashed URL and **any other method with 404**,
so a write to a slash-less URL fails loudly instead of being redirected.

Errors are DRF-style ``{"detail": ...}``: 401 without or with a dead token,
404 for unknown ids, 400 ``{field: [message]}`` for bad input, and 429
``{"detail": "Request was throttled..."}`` with ``Retry-After`` past the
configured per-minute limit (fabric documents none: default 60/min).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox.fabric_http import (
    CONVERTER,
    BadQuery,
    detail,
    integer,
    keep,
    not_found_or_moved,
    order_errors,
    page_response,
    throttled_response,
    time_filters,
)
from syncd.sandbox.fabric_model import FabricItem, FabricOrder
from syncd.sandbox.fabric_state import FabricState
from syncd.sandbox.faults import ASGIApp, FaultMiddleware, FaultPlan
from syncd.sandbox.simkit import (
    AdminError,
    FormError,
    Handler,
    admin_route,
    bearer_token,
    common_admin_routes,
    guarded,
    per_minute_limiter,
    read_form,
    read_json_object,
    require_int,
    require_str,
)

TOKEN_PATHS = ("/v1/", "/auth/token/")

RETAILER = "/v1/retailers/{retailer_id:int}"

# --- supplier (brand) side: NOT DOCUMENTED BY THE SEED -------------------------
# Modelled on /work/shared/briefs/fabric-supplier-api.md (§0-§2: fabric's
# supplier reference publishes GET /v1/brands/{brand_id}/inventory/{id}/ on a
# page titled "update inventory", and its integration guide says API
# suppliers "Send PATCH requests to the Inventory API"). Every supplier path
# and the write body live here so they are easy to correct once confirmed.
SUPPLIER = "/v1/brands/{brand_id:int}"
SUPPLIER_INVENTORY_LIST = f"{SUPPLIER}/inventory/"
"""GET: the brand's items; filters ``identifier`` (brand SKU), ``upc``, ``updated_at_*``."""
SUPPLIER_INVENTORY_ITEM = f"{SUPPLIER}/inventory/{{inventory_id:int}}/"
"""GET one item; PATCH ``{"inventory": <absolute units>}`` (keyed by inventory-item id)."""
SUPPLIER_WRITE_METHOD = "PATCH"
SUPPLIER_WRITE_FIELD = "inventory"
SUPPLIER_ORDERS = f"{SUPPLIER}/orders/"
SUPPLIER_ORDER = f"{SUPPLIER}/orders/{{order_id:int}}/"
# --------------------------------------------------------------------------------


class _App:
    def __init__(self, state: FabricState, plan: FaultPlan) -> None:
        self.state = state
        self.plan = plan

    # --- plumbing -------------------------------------------------------------

    def _authorize(self, request: Request, key: str) -> Response | None:
        if self.plan.take("revoke_tokens", request.method, request.url.path) is not None:
            self.state.revoke_tokens()
        token = bearer_token(request)
        if token is None:
            self.state.counters.deny(key)
            return detail("Authentication credentials were not provided.", 401)
        if self.state.tokens.check(token) is None:
            self.state.counters.deny(key)
            return detail("Invalid token.", 401)
        return None

    def _scope_ok(self, request: Request) -> bool:
        params = request.path_params
        if "retailer_id" in params and params["retailer_id"] != self.state.retailer_id:
            return False
        return not ("brand_id" in params and params["brand_id"] != self.state.brand_id)

    def _guard(self, request: Request, key: str) -> Response | None:
        denied = self._authorize(request, key)
        if denied is not None:
            return denied
        if not self._scope_ok(request):
            return detail("Not found.", 404)
        return None

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> Response:
        partial = self.plan.take("partial_page", "GET", request.url.path) is not None
        return page_response(request, rows, self.state.page_size, partial=partial)

    # --- token -----------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormError:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if (form.get("client_id"), form.get("client_secret")) != (
            self.state.client_id,
            self.state.client_secret,
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = self.state.tokens.issue(self.state.client_id)
        return JSONResponse(
            {
                "access_token": issued.token,
                "token_type": "Bearer",
                "expires_in": self.state.tokens.lifetime,
                "scope": "read write",
            }
        )

    # --- inventory -------------------------------------------------------------

    def _inventory_rows(self, request: Request, *, supplier: bool) -> list[dict[str, Any]]:
        filters = time_filters(request)
        order_by = request.query_params.get("order_by", "")
        if order_by not in {"", "inventory_updated_at", "-inventory_updated_at"}:
            raise BadQuery(
                "order_by",
                f"Select a valid choice. {order_by} is not one of the available choices.",
            )
        identifier = request.query_params.get("identifier") if supplier else None
        upc = request.query_params.get("upc") if supplier else None
        with self.state.lock:
            items = [
                item
                for item in self.state.items.values()
                if keep(item.inventory_updated_at, filters)
                and (identifier is None or item.brand_identifier == identifier)
                and (upc is None or item.upc == upc)
            ]
            if order_by:
                items.sort(
                    key=lambda i: (i.inventory_updated_at or 0.0, i.inventory_id),
                    reverse=order_by.startswith("-"),
                )
            else:
                items.sort(key=lambda i: i.inventory_id)
            return [self.state.item_json(item, supplier=supplier) for item in items]

    async def retailer_inventory(self, request: Request) -> Response:
        denied = self._guard(request, f"GET {RETAILER}/inventory/")
        if denied is not None:
            return denied
        try:
            rows = self._inventory_rows(request, supplier=False)
        except BadQuery as exc:
            return JSONResponse({exc.field: [str(exc)]}, status_code=400)
        return self._page(request, rows)

    async def retailer_item(self, request: Request) -> Response:
        denied = self._guard(request, f"GET {RETAILER}/inventory/{{variant_id}}/")
        if denied is not None:
            return denied
        try:
            item = self.state.item_by_variant(request.path_params["variant_id"])
        except KeyError:
            return detail("Not found.", 404)
        with self.state.lock:
            return JSONResponse(self.state.item_json(item))

    async def supplier_inventory(self, request: Request) -> Response:
        denied = self._guard(request, f"GET {SUPPLIER_INVENTORY_LIST}")
        if denied is not None:
            return denied
        try:
            rows = self._inventory_rows(request, supplier=True)
        except BadQuery as exc:
            return JSONResponse({exc.field: [str(exc)]}, status_code=400)
        return self._page(request, rows)

    def _supplier_item(self, request: Request) -> FabricItem | None:
        return self.state.items.get(request.path_params["inventory_id"])

    async def supplier_item(self, request: Request) -> Response:
        denied = self._guard(request, f"GET {SUPPLIER_INVENTORY_ITEM}")
        if denied is not None:
            return denied
        item = self._supplier_item(request)
        if item is None:
            return detail("Not found.", 404)
        with self.state.lock:
            return JSONResponse(self.state.item_json(item, supplier=True))

    async def supplier_write(self, request: Request) -> Response:
        """PATCH an absolute level onto one inventory item (supplier side, undocumented)."""
        key = f"{SUPPLIER_WRITE_METHOD} {SUPPLIER_INVENTORY_ITEM}"
        denied = self._guard(request, key)
        if denied is not None:
            return denied
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/json":
            return detail(f'Unsupported media type "{content_type}" in request.', 415)
        item = self._supplier_item(request)
        if item is None:
            return detail("Not found.", 404)
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            return detail(f"JSON parse error - {exc}", 400)
        if not isinstance(body, dict) or SUPPLIER_WRITE_FIELD not in body:
            return JSONResponse(
                {SUPPLIER_WRITE_FIELD: ["This field is required."]}, status_code=400
            )
        value = integer(body[SUPPLIER_WRITE_FIELD])
        if value is None:
            return JSONResponse(
                {SUPPLIER_WRITE_FIELD: ["A valid integer is required."]}, status_code=400
            )
        with self.state.lock:
            self.state.submit_inventory(item.inventory_id, value)
            if isinstance(body.get("estimated_availability_date"), str | None):
                item.estimated_availability_date = body.get(
                    "estimated_availability_date", item.estimated_availability_date
                )
            self.state.counters.write(CONVERTER.sub("}", key))
            return JSONResponse(self.state.item_json(item, supplier=True))

    # --- orders ----------------------------------------------------------------

    def _order_rows(self, request: Request) -> list[dict[str, Any]]:
        filters = time_filters(request)
        status = request.query_params.get("status")
        if status is not None and status not in {"open", "closed", "canceled"}:
            raise BadQuery(
                "status", f"Select a valid choice. {status} is not one of the available choices."
            )
        order_by = request.query_params.get("order_by", "id")
        sort_keys: dict[str, Callable[[FabricOrder], tuple[float, int]]] = {
            "id": lambda o: (0.0, o.order_id),
            "updated_at": lambda o: (o.updated_at, o.order_id),
        }
        if order_by.lstrip("-") not in sort_keys:
            raise BadQuery(
                "order_by",
                f"Select a valid choice. {order_by} is not one of the available choices.",
            )
        with self.state.lock:
            orders = [
                o
                for o in self.state.orders.values()
                if keep(o.updated_at, filters) and (status is None or o.status == status)
            ]
            orders.sort(key=sort_keys[order_by.lstrip("-")], reverse=order_by.startswith("-"))
            return [self.state.order_json(o) for o in orders]

    async def list_orders(self, request: Request) -> Response:
        denied = self._guard(request, f"GET {request.scope['route_key']}")
        if denied is not None:
            return denied
        try:
            rows = self._order_rows(request)
        except BadQuery as exc:
            return JSONResponse({exc.field: [str(exc)]}, status_code=400)
        return self._page(request, rows)

    async def get_order(self, request: Request) -> Response:
        denied = self._guard(request, f"GET {request.scope['route_key']}")
        if denied is not None:
            return denied
        with self.state.lock:
            order = self.state.orders.get(request.path_params["order_id"])
            if order is None:
                return detail("Not found.", 404)
            return JSONResponse(self.state.order_json(order))

    async def create_order(self, request: Request) -> Response:
        """``POST /v1/retailers/{id}/orders/`` (L4958-4991): all or nothing."""
        denied = self._guard(request, f"POST {RETAILER}/orders/")
        if denied is not None:
            return denied
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            return detail(f"JSON parse error - {exc}", 400)
        errors = order_errors(body)
        if errors:
            return JSONResponse(errors, status_code=400)
        lines: dict[str | int, int] = {}
        for line in body["order_lines"]:
            try:
                item = self.state.item_by_variant(line["variant"]["id"])
            except KeyError:
                return JSONResponse(
                    {"order_lines": [f"Invalid variant id {line['variant']['id']}."]},
                    status_code=400,
                )
            quantity = integer(line["quantity"]) or 0
            lines[item.inventory_id] = lines.get(item.inventory_id, 0) + quantity
        try:
            order = self.state.place_order(
                lines, purchase_order_number=body["purchase_order_number"]
            )
        except ValueError as exc:
            return detail(str(exc), 400)
        self.state.counters.write(f"POST {RETAILER}/orders/")
        with self.state.lock:
            return JSONResponse(self.state.order_json(order), status_code=201)


def _admin_routes(state: FabricState) -> list[Route]:
    def line_quantities(body: dict[str, Any]) -> dict[int, int] | None:
        lines = body.get("lines")
        if lines is None:
            return None
        if not isinstance(lines, dict):
            raise AdminError("'lines' must map line id to units")
        return {int(line_id): int(quantity) for line_id, quantity in lines.items()}

    async def place(request: Request) -> Any:
        body = await read_json_object(request)
        lines = body.get("lines")
        if not isinstance(lines, dict) or not lines:
            raise AdminError("'lines' must map SKU to units")
        po_number = body.get("purchase_order_number")
        order = state.place_order(
            {str(sku): int(quantity) for sku, quantity in lines.items()},
            purchase_order_number=po_number if isinstance(po_number, str) else None,
            allow_oversell=bool(body.get("allow_oversell", False)),
        )
        with state.lock:
            return state.order_json(order)

    async def ship(request: Request) -> Any:
        body = await read_json_object(request)
        order = state.ship_lines(int(request.path_params["order_id"]), line_quantities(body))
        with state.lock:
            return state.order_json(order)

    async def cancel(request: Request) -> Any:
        body = await read_json_object(request)
        order = state.cancel_lines(int(request.path_params["order_id"]), line_quantities(body))
        with state.lock:
            return state.order_json(order)

    async def set_inventory(request: Request) -> Any:
        body = await read_json_object(request)
        item = state.submit_inventory(require_str(body, "sku"), require_int(body, "inventory"))
        return {"sku": item.brand_sku, "inventory": item.inventory}

    async def read_inventory(request: Request) -> Any:
        sku = request.path_params["sku"]
        return {"sku": sku, "inventory": state.inventory(sku)}

    return [
        *common_admin_routes(state.snapshot, state.clock, state.revoke_tokens),
        Route("/_sandbox/orders", admin_route(place), methods=["POST"]),
        Route("/_sandbox/orders/{order_id}/ship", admin_route(ship), methods=["POST"]),
        Route("/_sandbox/orders/{order_id}/cancel", admin_route(cancel), methods=["POST"]),
        Route("/_sandbox/inventory/set", admin_route(set_inventory), methods=["POST"]),
        Route("/_sandbox/inventory/{sku}", admin_route(read_inventory), methods=["GET"]),
    ]


def create_app(state: FabricState, faults: FaultPlan) -> ASGIApp:
    """The fabric Marketplace simulator over ``state``, wrapped in ``faults``."""
    app = _App(state, faults)
    limiter = per_minute_limiter(state.rate_limit, state.clock)

    def api(method: str, path: str, handler: Handler) -> Route:
        route_key = CONVERTER.sub("}", path)
        counted = guarded(
            f"{method} {route_key}",
            handler,
            counters=state.counters,
            limiter=limiter,
            throttled=throttled_response,
        )

        async def run(request: Request) -> Response:
            request.scope["route_key"] = route_key
            return await counted(request)

        return Route(path, run, methods=[method])

    routes = [
        *(api("POST", path, app.token) for path in TOKEN_PATHS),
        api("GET", f"{RETAILER}/inventory/", app.retailer_inventory),
        api("GET", f"{RETAILER}/inventory/{{variant_id:int}}/", app.retailer_item),
        api("GET", f"{RETAILER}/orders/", app.list_orders),
        api("POST", f"{RETAILER}/orders/", app.create_order),
        api("GET", f"{RETAILER}/orders/{{order_id:int}}/", app.get_order),
        api("GET", SUPPLIER_INVENTORY_LIST, app.supplier_inventory),
        api("GET", SUPPLIER_INVENTORY_ITEM, app.supplier_item),
        api(SUPPLIER_WRITE_METHOD, SUPPLIER_INVENTORY_ITEM, app.supplier_write),
        api("GET", SUPPLIER_ORDERS, app.list_orders),
        api("GET", SUPPLIER_ORDER, app.get_order),
        *_admin_routes(state),
    ]
    starlette = Starlette(
        routes=routes, exception_handlers={404: not_found_or_moved, 405: not_found_or_moved}
    )
    starlette.router.redirect_slashes = False
    return FaultMiddleware(starlette, faults)
