"""Admin controls of the ASTRAL simulator: make stock move from outside the process.

``POST /_sandbox/astral/movements`` runs one movement described as JSON (see
:func:`apply_movement`); ``GET /_sandbox/astral/state`` returns every
balance in batches and units. Mounted by :mod:`syncd.sandbox.ankorstore_admin`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.sandbox.astral_jsonapi import transaction_resource
from syncd.sandbox.astral_ledger import AstralTransaction, InsufficientStock
from syncd.sandbox.astral_state import AstralState

_MOVEMENTS = (
    "expect",
    "receive",
    "reserve",
    "release",
    "ship",
    "damage",
    "expire",
    "adjust",
    "snapshot",
)


def apply_movement(state: AstralState, spec: dict[str, Any]) -> AstralTransaction | None:
    """Run one movement described as JSON (the admin route and ``syncd sandbox`` scripts).

    ``{"kind": "receive", "variant": "SKU-000001", "batches": 4, "lot": {"number": "L1",
    "expiryDate": "2027-01-28"}, "relatedId": "...", "createdAt": 1.7e9 | "backdate": 3600}``;
    ``adjust`` takes ``delta``, ``snapshot`` an absolute ``batches``.
    """
    kind = spec.get("kind")
    if kind not in _MOVEMENTS:
        raise ValueError(f"kind must be one of {', '.join(_MOVEMENTS)}")
    key = str(spec["variant"])
    raw_lot = spec.get("lot")
    lot = (
        (str(raw_lot["number"]), str(raw_lot.get("expiryDate") or ""))
        if isinstance(raw_lot, dict)
        else None
    )
    created_at = spec.get("createdAt")
    if created_at is None and spec.get("backdate") is not None:
        created_at = state.clock.now() - float(spec["backdate"])
    when = float(created_at) if created_at is not None else None
    related = spec.get("relatedId")
    batches = int(spec.get("batches", 0))
    if kind == "expect":
        return state.expect(key, batches, lot=lot, created_at=when)
    if kind == "receive":
        return state.receive(key, batches, lot=lot, created_at=when)
    if kind == "reserve":
        return state.reserve(key, batches, related_id=related, lot=lot, created_at=when)
    if kind == "release":
        return state.release(key, batches, related_id=related, created_at=when)
    if kind == "ship":
        return state.ship(key, batches, related_id=related, created_at=when)
    if kind == "damage":
        return state.damage(key, batches, created_at=when)
    if kind == "expire":
        return state.expire(key, batches, lot=lot, created_at=when)
    if kind == "adjust":
        return state.adjust(key, int(spec["delta"]), lot=lot, created_at=when)
    return state.snapshot(key, batches, lot=lot, created_at=when)


def astral_admin_routes(state: AstralState) -> list[Route]:
    async def movements(request: Request) -> Response:
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("body must be an object")
            txn = apply_movement(state, spec)
        except (KeyError, TypeError, ValueError, InsufficientStock) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(
            {"transaction": transaction_resource(txn) if txn else None}, status_code=201
        )

    async def summary(_: Request) -> Response:
        return JSONResponse(state.summary())

    return [
        Route("/_sandbox/astral/movements", movements, methods=["POST"]),
        Route("/_sandbox/astral/state", summary, methods=["GET"]),
    ]
