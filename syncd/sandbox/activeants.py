"""Active Ants ShopApi v2 simulator (seed 001), served by Starlette.

Endpoints (paths kept exactly as the seed writes them, brief §2.1):

- ``POST /token``: password grant, form-encoded only (L29-44). A JSON body is
  refused (400 ``unsupported_grant_type``, the OWIN answer, brief §2.3).
  Response: ``access_token``, ``token_type`` "bearer", ``expires_in``,
  ``userName``, and ``issued``/``expires`` in RFC1123 (L46-78) -- also under
  the OWIN spellings ``.issued``/``.expires``, since the live key names are
  unconfirmed (brief A11). Bad credentials: 400 ``invalid_grant``.
- ``GET /status/get``: no authentication (L103).
- ``GET /v2/stock/bulk``: ``all_products=true`` for everything, else the
  products whose stock mutation time is ``>= from`` and ``< to``
  (L2857-2893); no ``from`` means one day back (L2857). Both parameters are
  optional (the prose wins over the schema); ``period.from`` echoes the
  request (null for a full read without ``from``). One response, no paging: the
  seed has none (brief §5.2). ``to`` is the server time floored to the
  millisecond, in UTC with an explicit ``+00:00`` offset, so a client that
  does not URL-encode ``from`` (L2874) sends a space and gets a 400.
- ``GET /v2/stock/get/{sku}``: the full breakdown (L2761-2839).
- ``GET /stock/get/{sku}``: one integer, economic or free stock (L2648).
- ``GET /stock/bulk/{all}``: ``true`` = every product, ``false`` = only the
  products flagged "needs to be synched" (L2685); the read clears the flags
  of what it returns (the seed has no ack call, brief A4).
- ``POST /order/add``: JSON order with the seed's required fields
  (L436-785); the warehouse then holds it (its units leave free stock). A
  repeated ``externalOrderNumber`` or an unknown SKU is a 400 ``NOK`` and
  changes nothing.
- ``GET /v3/orders``: **not in the seed** (see :mod:`syncd.sandbox.activeants_v3`):
  how a client tells which channel orders the warehouse already holds.

Envelope ``{messageCode, message, result}`` on every v1/v2 endpoint
(L154-168). The seed shows no HTTP status but 401 (L28), so: 401 for a
missing, expired or revoked token; 400 + ``NOK`` for bad parameters or
bodies; **200 + ``NOK``** for an unknown SKU (the seed is silent, brief
A20: a client must check ``messageCode``, not only the status); 429 + ``NOK``
with ``Retry-After`` past the configured per-minute limit (the seed has no
limit: default 120/min, :data:`~syncd.sandbox.activeants_state.DEFAULT_RATE_LIMIT`). The body keys of the
unnamed ``v2/stock/bulk`` objects (L2884, L2895, L2912) are unknown; they
are the constants below so they are easy to correct.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox.activeants_state import AAProduct, ActiveAntsState
from syncd.sandbox.activeants_v3 import orders_page
from syncd.sandbox.faults import ASGIApp, FaultMiddleware, FaultPlan
from syncd.sandbox.limits import Verdict
from syncd.sandbox.simkit import (
    AdminError,
    FormError,
    Handler,
    admin_route,
    bearer_token,
    common_admin_routes,
    guarded,
    parse_iso,
    per_minute_limiter,
    read_form,
    read_json_object,
    require_int,
    require_str,
    rfc1123,
)

BULK_PERIOD_KEY = "period"
"""Unnamed object holding ``from``/``to`` in ``v2/stock/bulk`` (L2884)."""
BULK_PRODUCTS_KEY = "products"
"""Unnamed product array in ``v2/stock/bulk`` (L2895)."""
LOTS_KEY = "thts"
"""Lot list; named ``thts`` only in ``v2/stock/get`` (L2836), reused for the bulk reads."""
ORDER_REQUIRED = (
    "externalOrderNumber",
    "paymentMethodId",
    "deliveryAddressLastName",
    "deliveryAddressPostalCode",
    "deliveryAddressHouseNumber",
    "deliveryAddressStreet",
    "deliveryAddressCountryIso",
    "languageId",
    "orderTypeId",
    "orderItems",
)
"""Required fields of ``order/add`` (L437-743)."""


def envelope(message: str, result: Any = None, *, ok: bool = True, status: int = 200) -> Response:
    body = {"messageCode": "OK" if ok else "NOK", "message": message, "result": result}
    return JSONResponse(body, status_code=status)


def nok(message: str, status: int = 400) -> Response:
    return envelope(message, ok=False, status=status)


def _throttled(verdict: Verdict) -> Response:
    response = nok("Too many requests. Retry later.", status=429)
    response.headers["Retry-After"] = str(verdict.retry_after)
    return response


def _iso_offset(us: int) -> str:
    moment = datetime.fromtimestamp(us / 1_000_000, UTC)
    return moment.isoformat(timespec="milliseconds")


def _to_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _lots(product: AAProduct, *, date_time: bool) -> list[dict[str, Any]]:
    return [
        {
            "quantity": lot.quantity,
            "tht": (f"{lot.tht}T00:00:00" if date_time else lot.tht) if lot.tht else None,
            "lotNumber": lot.number,
        }
        for lot in product.lots
    ]


def _bulk_item(product: AAProduct) -> dict[str, Any]:
    """One product of ``v2/stock/bulk`` (L2897-2941)."""
    return {
        "sku": product.sku,
        "name": product.name,
        "stock": product.economic if product.use_economic_stock else product.free,
        LOTS_KEY: _lots(product, date_time=True),
        "freeStock": product.free,
        "economicStock": product.economic,
        "availableStock": product.available,
        "physicalStock": product.physical,
    }


class _App:
    """Request handlers over one :class:`ActiveAntsState`."""

    def __init__(self, state: ActiveAntsState, plan: FaultPlan) -> None:
        self.state = state
        self.plan = plan

    def _authorize(self, request: Request, key: str) -> Response | None:
        """None when the bearer token is live, else the 401 to send."""
        if self.plan.take("revoke_tokens", request.method, request.url.path) is not None:
            self.state.revoke_tokens()
        token = bearer_token(request)
        if token is None or self.state.tokens.check(token) is None:
            self.state.counters.deny(key)
            response = nok("Authorization has been denied for this request.", status=401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="shopapi"'
            return response
        return None

    async def token(self, request: Request) -> Response:
        """``POST /token`` (L22-97)."""
        try:
            form = await read_form(request)
        except FormError:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("grant_type") != "password":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("username") != self.state.username or (
            form.get("password") != self.state.password
        ):
            return JSONResponse(
                {
                    "error": "invalid_grant",
                    "error_description": "The user name or password is incorrect.",
                },
                status_code=400,
            )
        issued = self.state.tokens.issue(self.state.username)
        return JSONResponse(
            {
                "access_token": issued.token,
                "token_type": "bearer",
                "expires_in": self.state.tokens.lifetime,
                "userName": self.state.username,
                "issued": rfc1123(issued.issued_at),
                "expires": rfc1123(issued.expires_at),
                ".issued": rfc1123(issued.issued_at),
                ".expires": rfc1123(issued.expires_at),
            }
        )

    async def status(self, request: Request) -> Response:
        """``GET /status/get``: no authentication (L99-131)."""
        return envelope("Status is OK.")

    async def stock_bulk_v2(self, request: Request) -> Response:
        """``GET /v2/stock/bulk`` (L2852-2952)."""
        denied = self._authorize(request, "GET /v2/stock/bulk")
        if denied is not None:
            return denied
        raw_all = request.query_params.get("all_products", "false").lower()
        if raw_all not in {"true", "false"}:
            return nok("all_products must be true or false.")
        raw_from = request.query_params.get("from")
        from_us: int | None = None
        if raw_from is not None:
            try:
                from_us = _to_us(parse_iso(raw_from))
            except ValueError:
                return nok(f"The value '{raw_from}' is not a valid ISO-8601 date-time for from.")
        with self.state.lock:
            now_us = self.state.now_us()
            to_us = now_us - now_us % 1000
            if raw_all == "true":
                chosen = list(self.state.products.values())
            else:
                if from_us is None:
                    from_us = to_us - 86_400 * 1_000_000
                chosen = [
                    p for p in self.state.products.values() if from_us <= p.mutated_us < to_us
                ]
            items = []
            for product in sorted(chosen, key=lambda p: p.sku):
                if product.sku in self.state.listed_twice:
                    ghost = _bulk_item(product)
                    ghost["availableStock"] = (
                        product.available + self.state.listed_twice[product.sku]
                    )
                    items.append(ghost)
                items.append(_bulk_item(product))
        period = {
            "from": _iso_offset(from_us) if from_us is not None else None,
            "to": _iso_offset(to_us),
        }
        return envelope(
            f"Found {len(items)} products suitable for stock synchronization.",
            {BULK_PERIOD_KEY: period, BULK_PRODUCTS_KEY: items},
        )

    async def stock_get_v2(self, request: Request) -> Response:
        """``GET /v2/stock/get/{sku}`` (L2761-2850)."""
        denied = self._authorize(request, "GET /v2/stock/get/{sku}")
        if denied is not None:
            return denied
        sku = request.path_params["sku"]
        with self.state.lock:
            product = self.state.products.get(sku)
            if product is None:
                return envelope(f"No stock found for sku '{sku}'.", ok=False)
            result = {
                "name": product.name,
                "sku": product.sku,
                "productId": product.product_id,
                "useEconomicStock": product.use_economic_stock,
                "physicalStock": product.physical,
                "expectedStock": product.expected,
                "orderedStock": product.ordered,
                "unavailableStock": product.unavailable,
                "freeStock": product.free,
                "economicStock": product.economic,
                "availableStock": product.available,
                LOTS_KEY: _lots(product, date_time=True),
            }
        return envelope("Found stock for the provided information.", result)

    async def stock_get_v1(self, request: Request) -> Response:
        """``GET /stock/get/{sku}``: economic or free stock as one integer (L2643-2678)."""
        denied = self._authorize(request, "GET /stock/get/{sku}")
        if denied is not None:
            return denied
        sku = request.path_params["sku"]
        with self.state.lock:
            product = self.state.products.get(sku)
            if product is None:
                return envelope(f"No stock found for sku '{sku}'.", ok=False)
            level = product.economic if product.use_economic_stock else product.free
        return envelope("Found stock for the provided information.", level)

    async def stock_bulk_v1(self, request: Request) -> Response:
        """``GET /stock/bulk/{all}``: the shared "needs to be synched" queue (L2680-2759)."""
        denied = self._authorize(request, "GET /stock/bulk/{all}")
        if denied is not None:
            return denied
        flag = request.path_params["all"].lower()
        if flag not in {"true", "false"}:
            return nok("allProducts needs to be either true or false.")
        with self.state.lock:
            chosen = [p for p in self.state.products.values() if flag == "true" or p.needs_sync]
            items = []
            for product in sorted(chosen, key=lambda p: p.sku):
                product.needs_sync = False
                items.append(
                    {
                        "sku": product.sku,
                        "name": product.name,
                        "stock": product.economic
                        if product.use_economic_stock
                        else product.available,
                        LOTS_KEY: _lots(product, date_time=False),
                        "freeStock": product.free,
                        "economicStock": product.economic,
                        "availableStock": product.available,
                        "physicalStock": product.physical,
                    }
                )
        return envelope(f"Found {len(items)} products suitable for stock synchronization.", items)

    async def order_add(self, request: Request) -> Response:
        """``POST /order/add`` (L428-882): the warehouse holds the order from now on."""
        denied = self._authorize(request, "POST /order/add")
        if denied is not None:
            return denied
        try:
            body = await read_json_object(request)
        except AdminError as exc:
            return nok(str(exc))
        missing = [name for name in ORDER_REQUIRED if body.get(name) in (None, "", [])]
        if missing:
            return nok(f"Missing required field(s): {', '.join(missing)}.")
        items = body["orderItems"]
        lines: dict[str, int] = {}
        if not isinstance(items, list):
            return nok("orderItems must be an array.")
        for item in items:
            if not isinstance(item, dict):
                return nok("Each order item must be an object.")
            sku, quantity = item.get("sku"), item.get("quantity")
            if not isinstance(sku, str) or not isinstance(quantity, int) or quantity <= 0:
                return nok("Each order item needs a sku and a positive integer quantity.")
            if not isinstance(item.get("price"), int | float):
                return nok(f"Order item {sku} needs a price.")
            lines[sku] = lines.get(sku, 0) + quantity
        try:
            order = self.state.add_order(
                str(body["externalOrderNumber"]),
                lines,
                reference=body.get("extraReference"),
                on_hold=bool(body.get("onHold", False)),
                extra={
                    k: body[k] for k in ("email", "currency", "preferredShippingDate") if k in body
                },
            )
        except (KeyError, ValueError) as exc:
            return nok(f"Order could not be added: {exc.args[0]}")
        self.state.counters.write("POST /order/add")
        return envelope("Order has been successfully added.", order.order_id)

    async def orders_v3(self, request: Request) -> Response:
        """``GET /v3/orders`` -- [EXT], not in the seed; see the module docstring."""
        denied = self._authorize(request, "GET /v3/orders")
        if denied is not None:
            return denied
        partial = self.plan.take("partial_page", "GET", request.url.path) is not None
        return orders_page(request, self.state, partial=partial)


def _admin_routes(state: ActiveAntsState) -> list[Route]:
    async def set_stock(request: Request) -> Any:
        body = await read_json_object(request)
        return state.set_stock(require_str(body, "sku"), require_int(body, "available")).to_json()

    async def move_stock(request: Request) -> Any:
        body = await read_json_object(request)
        return state.move_stock(require_str(body, "sku"), require_int(body, "delta")).to_json()

    async def set_levels(request: Request) -> Any:
        body = await read_json_object(request)
        levels = {
            k: require_int(body, k) for k in ("unavailable", "excluded", "expected") if k in body
        }
        return state.set_levels(require_str(body, "sku"), **levels).to_json()

    async def add_order(request: Request) -> Any:
        body = await read_json_object(request)
        lines = body.get("lines")
        if not isinstance(lines, dict) or not all(isinstance(q, int) for q in lines.values()):
            raise AdminError("'lines' must map SKU to an integer quantity")
        channel = body.get("channel")
        return state.add_order(
            require_str(body, "externalOrderNumber"),
            lines,
            channel=channel if isinstance(channel, str) else None,
        ).to_json()

    async def ship(request: Request) -> Any:
        return state.ship_order(request.path_params["ref"]).to_json()

    async def cancel(request: Request) -> Any:
        return state.cancel_order(request.path_params["ref"]).to_json()

    return [
        *common_admin_routes(state.snapshot, state.clock, state.revoke_tokens),
        Route("/_sandbox/stock/set", admin_route(set_stock), methods=["POST"]),
        Route("/_sandbox/stock/move", admin_route(move_stock), methods=["POST"]),
        Route("/_sandbox/stock/levels", admin_route(set_levels), methods=["POST"]),
        Route("/_sandbox/orders", admin_route(add_order), methods=["POST"]),
        Route("/_sandbox/orders/{ref}/ship", admin_route(ship), methods=["POST"]),
        Route("/_sandbox/orders/{ref}/cancel", admin_route(cancel), methods=["POST"]),
    ]


def create_app(state: ActiveAntsState, faults: FaultPlan) -> ASGIApp:
    """The ShopApi simulator over ``state``, wrapped in ``faults``."""
    app = _App(state, faults)
    limiter = per_minute_limiter(state.rate_limit, state.clock)

    def api(method: str, path: str, handler: Handler) -> Route:
        key = f"{method} {path}"
        wrapped = guarded(
            key, handler, counters=state.counters, limiter=limiter, throttled=_throttled
        )
        return Route(path, wrapped, methods=[method])

    routes = [
        api("POST", "/token", app.token),
        api("GET", "/status/get", app.status),
        api("GET", "/v2/stock/bulk", app.stock_bulk_v2),
        api("GET", "/v2/stock/get/{sku}", app.stock_get_v2),
        api("GET", "/stock/get/{sku}", app.stock_get_v1),
        api("GET", "/stock/bulk/{all}", app.stock_bulk_v1),
        api("POST", "/order/add", app.order_add),
        api("GET", "/v3/orders", app.orders_v3),
        *_admin_routes(state),
    ]
    return FaultMiddleware(Starlette(routes=routes), faults)
