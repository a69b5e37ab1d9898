"""The Ankorstore simulator: OAuth, product-variant stock, bulk operations, orders, ASTRAL.

One Starlette app serves the whole host, as Ankorstore does: ``/oauth/token``,
``/api/v1/...`` and ASTRAL's ``/api/astral/v1/stock/...`` share tokens and
one rate budget (:mod:`syncd.sandbox.ankorstore_http`). State lives in
:class:`~syncd.sandbox.ankorstore_state.AnkorstoreState` (and its
``astral`` :class:`~syncd.sandbox.astral_state.AstralState`).

Decisions where the documents are silent or contradict each other:

- **Page size** (variants, orders): no default or maximum is documented
  (brief seed-ankorstore-catalog 9.8). Default 15 -- the ``perPage`` and
  ``page[limit]`` of every pagination example (seed 000 L75-79, L113-115) --
  and maximum 100, the largest ``perPage`` in any sample (L3106); a larger
  limit is clamped, visible in ``meta.page.perPage``. Both are state options.
- **Bulk type**: only ``product-variants`` is accepted unless the state says
  ``accept_type_aliases``: the spec and every response use it and
  SOURCES.md tells syncd to send it, so a client that drifted to the
  prose's ``productVariants`` (L649) is caught here.
- **Bulk atomicity** (brief 4.6, seed silent): ``atomic_operations=True`` by
  default -- the ``atomic:operations`` names come from the JSON:API Atomic
  Operations extension, which is all-or-nothing. With ``False`` the valid
  operations are applied and the response is still the 422/404 listing the
  invalid ones: the case where a client must not assume "error means
  nothing changed". Error pointers name the operation
  (``/atomic:operations/3/data/attributes/stockQuantity``).
- **Bulk results** carry ``attributes: {}`` like the documented example; a
  client reads stock back with GET, never from this response.
- **Unknown variant** in a write: 404 (documented for both endpoints).
- **Token errors** use the documented JSON:API error document with the
  OAuth error name in ``code`` (``invalid_client``...), as JSON.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox import astral
from syncd.sandbox.ankorstore_admin import admin_routes
from syncd.sandbox.ankorstore_http import Admitted, Guard
from syncd.sandbox.ankorstore_orders import (
    ORDER_INCLUDES,
    STATUSES,
    OrderError,
    order_included,
    order_resource,
    parse_includes,
)
from syncd.sandbox.ankorstore_state import AnkorstoreState, TokenError
from syncd.sandbox.ankorstore_stock import SimListing
from syncd.sandbox.faults import ASGIApp, FaultMiddleware, FaultPlan
from syncd.sandbox.jsonapi_sim import (
    ApiError,
    PageParamError,
    PageRequest,
    PageSlice,
    cursor_slice,
    document,
    error_response,
    iso_offset,
    page_url,
    parse_page,
    read_json,
    truncate_page,
)

_FORM = "application/x-www-form-urlencoded"


def _errors_status(errors: list[ApiError]) -> int:
    return 422 if any(e.status == 422 for e in errors) else errors[0].status


def _page_body(
    request: Request, page: PageRequest, sliced: PageSlice[Any], ids: list[str]
) -> dict[str, Any]:
    """``meta.page`` and ``links`` of the main API (seed 000 L49-107).

    Links that lead nowhere are omitted ("If a link does not exist then you
    cannot paginate any further in that direction", L92-107).
    """
    limit = ("page[limit]", str(page.limit))
    links = {"first": page_url(request, [limit])}
    if ids and sliced.more_after:
        links["next"] = page_url(request, [("page[after]", ids[-1]), limit])
    if ids and sliced.more_before:
        links["prev"] = page_url(request, [("page[before]", ids[0]), limit])
    return {
        "meta": {
            "page": {
                "from": ids[0] if ids else None,
                "to": ids[-1] if ids else None,
                "hasMore": sliced.direction_has_more,
                "perPage": page.limit,
            }
        },
        "links": links,
    }


class _Ankorstore:
    def __init__(self, state: AnkorstoreState, faults: FaultPlan) -> None:
        self.state = state
        self.faults = faults

    def _page(self, request: Request) -> PageRequest:
        return parse_page(request, default=self.state.page_default, maximum=self.state.page_max)

    def _partial(
        self, request: Request, page: PageRequest, sliced: PageSlice[Any]
    ) -> PageSlice[Any]:
        if page.before is None and self.faults.take(
            "partial_page", request.method, request.url.path
        ):
            return truncate_page(sliced)
        return sliced

    # --- auth ---------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token``: form-encoded client credentials, 60 per hour (L145-170, L228)."""
        state = self.state
        state.count_request("POST /oauth/token")
        with state.lock:
            state.counters.token_requests += 1
        verdict = state.token_rate.check("oauth-token")
        headers = verdict.headers()
        if not verdict.allowed:
            with state.lock:
                state.counters.rate_limited += 1
            return self._token_error(
                ApiError(429, "Too many token requests: 60 per hour."), headers
            )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _FORM:
            return self._token_error(
                ApiError(415, f"The token request must be {_FORM}.", code="invalid_request"),
                headers,
            )
        # Parsed by hand: Starlette's form parser needs python-multipart, which
        # syncd does not depend on, and a token request is a flat urlencoded body.
        try:
            form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            form = {}

        def field(name: str) -> str | None:
            values = form.get(name)
            return values[0] if values else None

        try:
            issued = state.issue_token(
                grant_type=field("grant_type"),
                client_id=field("client_id"),
                client_secret=field("client_secret"),
                scope=field("scope"),
            )
        except TokenError as exc:
            return self._token_error(exc.error, headers)
        body = {"token_type": "Bearer", "expires_in": state.token_ttl, "access_token": issued.value}
        return JSONResponse(body, headers={**headers, "Cache-Control": "no-store"})

    @staticmethod
    def _token_error(error: ApiError, headers: dict[str, str]) -> Response:
        body = {"jsonapi": {"version": "1.0"}, "errors": [error.to_json()]}
        return JSONResponse(body, status_code=error.status, headers=headers)

    async def me(self, request: Request, _: Admitted) -> Response:
        """``GET /api/v1/me``: not JSON:API, snake_case (L174-198)."""
        body = {
            "data": {
                "type": "user",
                "id": 1234,
                "email": "api@sandbox.example",
                "first_name": "Sandbox",
                "last_name": "Brand",
                "created_at": "2020-01-28T11:26:35+00:00",
                "updated_at": iso_offset(self.state.clock.now()),
            }
        }
        return JSONResponse(body)

    # --- variants -----------------------------------------------------------------

    @staticmethod
    def _include_product(request: Request) -> bool:
        raw = request.query_params.get("include") or ""
        tokens = {t.strip() for t in raw.split(",") if t.strip()}
        if tokens - {"product"}:
            raise PageParamError("include", "include supports only 'product'")
        return "product" in tokens

    async def variants(self, request: Request, _: Admitted) -> Response:
        """``GET /api/v1/product-variants`` with ``filter[sku]`` (comma-separated, L1277-1281)."""
        params = request.query_params
        try:
            page = self._page(request)
            with_product = self._include_product(request)
        except PageParamError as exc:
            return error_response([ApiError(400, exc.detail)])
        skus = {s for s in (params.get("filter[sku]") or "").split(",") if s} or None
        ians = {s for s in (params.get("filter[ian]") or "").split(",") if s} or None
        ids = set(params.getlist("filter[id][]")) or None
        needle = (params.get("filter[skuOrName]") or "").lower() or None
        archived = params.get("filter[archived]")
        with self.state.lock:
            found: list[SimListing] = [
                listing
                for listing in self.state.ordered_listings()
                if (skus is None or listing.sku in skus)
                and (ians is None or listing.ian in ians)
                and (ids is None or listing.id in ids)
                and (
                    needle is None
                    or needle in listing.sku.lower()
                    or needle in listing.name.lower()
                )
                and archived not in ("true", "1")  # the sandbox archives nothing
            ]
            try:
                sliced = cursor_slice(found, lambda listing: listing.id, page)
            except PageParamError as exc:
                return error_response([ApiError(400, exc.detail)])
            sliced = self._partial(request, page, sliced)
            data = [listing.to_resource() for listing in sliced.items]
            included = (
                [listing.product_resource() for listing in sliced.items] if with_product else []
            )
        body = {"data": data, **_page_body(request, page, sliced, [x.id for x in sliced.items])}
        if with_product:
            body["included"] = list({p["id"]: p for p in included}.values())
        return document(body)

    async def variant(self, request: Request, _: Admitted) -> Response:
        try:
            with_product = self._include_product(request)
            listing = self.state.listing(request.path_params["variant_id"])
        except PageParamError as exc:
            return error_response([ApiError(400, exc.detail)])
        except KeyError:
            return error_response([ApiError(404, "Not found")])
        with self.state.lock:
            body: dict[str, Any] = {"data": listing.to_resource()}
            if with_product:
                body["included"] = [listing.product_resource()]
        return document(body)

    async def patch_stock(self, request: Request, _: Admitted) -> Response:
        """``PATCH /api/v1/product-variants/{id}/stock`` (L1624-1825)."""
        payload, bad = await read_json(request)
        if bad is not None:
            return error_response([bad])
        listing, errors = self.state.patch_stock(request.path_params["variant_id"], payload)
        if listing is None:
            return error_response(errors, status=_errors_status(errors))
        with self.state.lock:
            return document({"data": listing.to_resource()})

    async def operations(self, request: Request, _: Admitted) -> Response:
        """``POST /api/v1/operations``: 1-50 ``update`` operations (L636-669, L12856-12918)."""
        payload, bad = await read_json(request)
        if bad is not None:
            return error_response([bad])
        invalid_index = None
        operations = payload.get("atomic:operations") if isinstance(payload, dict) else None
        if isinstance(operations, list) and 1 <= len(operations) <= 50:
            fault = self.faults.take("invalid_operation", request.method, request.url.path)
            if fault is not None:
                wanted = int(fault.params.get("index", len(operations) // 2))
                invalid_index = max(0, min(wanted, len(operations) - 1))
        applied, errors = self.state.apply_operations(payload, invalid_index=invalid_index)
        if errors:
            return error_response(errors, status=_errors_status(errors))
        results = [
            {"data": {"type": "product-variants", "id": x.id, "attributes": {}}} for x in applied
        ]
        return document({"atomic:results": results})

    # --- orders -------------------------------------------------------------------

    def _order_includes(self, request: Request) -> set[str]:
        includes = parse_includes(request.query_params.get("include"))
        if includes - ORDER_INCLUDES:
            raise PageParamError("include", f"include supports {', '.join(sorted(ORDER_INCLUDES))}")
        return includes

    async def orders(self, request: Request, _: Admitted) -> Response:
        """``GET /api/v1/orders``: ``filter[status]`` is one enum value (L4814-4819)."""
        params = request.query_params
        status = params.get("filter[status]") or None
        retailer = params.get("filter[retailer]") or None
        try:
            if status is not None and status not in STATUSES:
                raise PageParamError("filter[status]", f"filter[status]: unknown status {status!r}")
            includes = self._order_includes(request)
            page = self._page(request)
        except PageParamError as exc:
            return error_response([ApiError(400, exc.detail)])
        with self.state.lock:
            found = [
                order
                for order in self.state.orders()
                if (status is None or order.status == status)
                and (retailer is None or order.retailer_id == retailer)
            ]
            try:
                sliced = cursor_slice(found, lambda order: order.id, page)
            except PageParamError as exc:
                return error_response([ApiError(400, exc.detail)])
            sliced = self._partial(request, page, sliced)
            body: dict[str, Any] = {
                "data": [order_resource(order, single=False) for order in sliced.items],
                **_page_body(request, page, sliced, [o.id for o in sliced.items]),
            }
            if includes:
                body["included"] = order_included(sliced.items, includes, self.state.listings)
        return document(body)

    async def order(self, request: Request, _: Admitted) -> Response:
        try:
            includes = self._order_includes(request)
            order = self.state.order(request.path_params["order_id"])
        except PageParamError as exc:
            return error_response([ApiError(400, exc.detail)])
        except OrderError:
            return error_response([ApiError(404, "Not found")])
        with self.state.lock:
            body: dict[str, Any] = {"data": order_resource(order, single=True)}
            if includes:
                body["included"] = order_included([order], includes, self.state.listings)
        return document(body)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = "Not found" if status == 404 else "Method Not Allowed" if status == 405 else "Error"
    return error_response([ApiError(status, detail)])


def create_app(state: AnkorstoreState, faults: FaultPlan) -> ASGIApp:
    """The Ankorstore host (REST, OAuth and ASTRAL) wrapped in :class:`FaultMiddleware`."""
    api = _Ankorstore(state, faults)
    guard = Guard(state, faults)
    wrap = guard.wrap
    routes = [
        Route("/oauth/token", api.token, methods=["POST"]),
        Route("/api/v1/me", wrap("GET /api/v1/me", api.me, media="json"), methods=["GET"]),
        Route(
            "/api/v1/product-variants",
            wrap("GET /api/v1/product-variants", api.variants),
            methods=["GET"],
        ),
        Route(
            "/api/v1/product-variants/{variant_id}",
            wrap("GET /api/v1/product-variants/{id}", api.variant),
            methods=["GET"],
        ),
        Route(
            "/api/v1/product-variants/{variant_id}/stock",
            wrap("PATCH /api/v1/product-variants/{id}/stock", api.patch_stock, body=True),
            methods=["PATCH"],
        ),
        Route(
            "/api/v1/operations",
            wrap("POST /api/v1/operations", api.operations, body=True),
            methods=["POST"],
        ),
        Route("/api/v1/orders", wrap("GET /api/v1/orders", api.orders), methods=["GET"]),
        Route(
            "/api/v1/orders/{order_id}", wrap("GET /api/v1/orders/{id}", api.order), methods=["GET"]
        ),
        *astral.routes(state.astral, guard, faults),
        *admin_routes(state),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    return FaultMiddleware(app, faults)
