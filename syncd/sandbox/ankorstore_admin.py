"""Unauthenticated controls of the Ankorstore simulator under ``/_sandbox``.

Used by the demo and by tests that run the sandbox as a separate process (the
crash tests): place and move orders, set stock, revoke tokens, move the
simulator's clock, switch bulk atomicity, read every counter and balance.
``/_sandbox/...`` is never faulted (FaultMiddleware); ``/_sandbox/faults``
itself is served by the middleware.

Routes (JSON bodies; 400 ``{"error": ...}`` on a bad request):

- ``GET /_sandbox/state``: :meth:`AnkorstoreState.snapshot`
- ``POST /_sandbox/orders`` ``{"lines": {sku_or_id: packs}, "status"?, "force"?}`` -> 201
- ``POST /_sandbox/orders/{id}/status`` ``{"status": ..., "force"?}``
- ``POST /_sandbox/orders/{id}/accept`` ``{"packs"?: {sku_or_id: packs}}``
- ``POST /_sandbox/variants/{sku_or_id}/stock`` ``{"stockQuantity": n}`` or ``{"isAlwaysInStock": true}``
- ``POST /_sandbox/tokens/revoke``, ``POST /_sandbox/clock/advance`` ``{"seconds": n}``
- ``POST /_sandbox/settings`` ``{"atomicOperations"?: bool, "acceptTypeAliases"?: bool}``
- ``POST /_sandbox/astral/movements``, ``GET /_sandbox/astral/state`` (see astral_admin)
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox.ankorstore_orders import order_resource
from syncd.sandbox.ankorstore_state import AnkorstoreState
from syncd.sandbox.astral_admin import astral_admin_routes


def _order_json(state: AnkorstoreState, order_id: str) -> dict[str, Any]:
    with state.lock:
        order = state.order(order_id)
        return {
            **order_resource(order, single=False),
            "items": [
                {
                    "sku": state.listings[i.listing_id].sku,
                    "variantId": i.listing_id,
                    "quantity": i.quantity,
                    "multipliedQuantity": i.multiplied_quantity,
                }
                for i in order.items
            ],
        }


def admin_routes(state: AnkorstoreState) -> list[Route]:
    """Unauthenticated test/demo controls under ``/_sandbox`` (never faulted)."""

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        payload = await request.json()
        if not isinstance(payload, dict):
            raise ValueError("body must be a JSON object")
        return payload

    def fail(exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def snapshot(_: Request) -> Response:
        return JSONResponse(state.snapshot())

    async def place(request: Request) -> Response:
        try:
            spec = await body_of(request)
            order = state.place_order(
                {str(k): int(v) for k, v in dict(spec["lines"]).items()},
                status=str(spec.get("status", "ankor_confirmed")),
                force=bool(spec.get("force", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return fail(exc)
        return JSONResponse({"order": _order_json(state, order.id)}, status_code=201)

    async def advance(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        try:
            spec = await body_of(request)
            status = str(spec["status"])
            if status == "shipped" and not spec.get("force"):
                state.ship_order(order_id)
            else:
                state.advance_order(order_id, status, force=bool(spec.get("force", False)))
        except (KeyError, TypeError, ValueError) as exc:
            return fail(exc)
        return JSONResponse({"order": _order_json(state, order_id)})

    async def accept(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        try:
            spec = await body_of(request)
            packs = {str(k): int(v) for k, v in dict(spec.get("packs", {})).items()}
            state.accept_order(order_id, packs)
        except (KeyError, TypeError, ValueError) as exc:
            return fail(exc)
        return JSONResponse({"order": _order_json(state, order_id)})

    async def set_stock(request: Request) -> Response:
        try:
            spec = await body_of(request)
            raw = spec.get("stockQuantity")
            listing = state.set_stock(
                request.path_params["key"],
                None if raw is None else int(raw),
                always_in_stock=bool(spec.get("isAlwaysInStock", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return fail(exc)
        with state.lock:
            return JSONResponse({"variant": listing.summary()})

    async def revoke(_: Request) -> Response:
        return JSONResponse({"revoked": state.revoke_tokens()})

    async def advance_clock(request: Request) -> Response:
        try:
            spec = await body_of(request)
            state.clock.advance(float(spec["seconds"]))
        except (KeyError, TypeError, ValueError) as exc:
            return fail(exc)
        return JSONResponse({"clock": state.clock.now()})

    async def settings(request: Request) -> Response:
        try:
            spec = await body_of(request)
            with state.lock:
                if "atomicOperations" in spec:
                    state.atomic_operations = bool(spec["atomicOperations"])
                if "acceptTypeAliases" in spec:
                    state.accept_type_aliases = bool(spec["acceptTypeAliases"])
        except (TypeError, ValueError) as exc:
            return fail(exc)
        return JSONResponse(
            {
                "atomicOperations": state.atomic_operations,
                "acceptTypeAliases": state.accept_type_aliases,
            }
        )

    return [
        Route("/_sandbox/state", snapshot, methods=["GET"]),
        Route("/_sandbox/orders", place, methods=["POST"]),
        Route("/_sandbox/orders/{order_id}/status", advance, methods=["POST"]),
        Route("/_sandbox/orders/{order_id}/accept", accept, methods=["POST"]),
        Route("/_sandbox/variants/{key}/stock", set_stock, methods=["POST"]),
        Route("/_sandbox/tokens/revoke", revoke, methods=["POST"]),
        Route("/_sandbox/clock/advance", advance_clock, methods=["POST"]),
        Route("/_sandbox/settings", settings, methods=["POST"]),
        *astral_admin_routes(state.astral),
    ]
