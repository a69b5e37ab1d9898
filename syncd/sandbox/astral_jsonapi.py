"""ASTRAL's JSON:API documents: query parameters in, resources and pagination out.

Shapes follow the ASTRAL spec (``Astral_*`` schemas) and seed 000
L12946-13034, L13173-14017. Unlike the main Ankorstore API, ASTRAL's
pagination links are always present and ``null`` when there is nothing
further (L13310-13322), its cursors may carry a timestamp (``uuid,1700000000``,
L13520) and its error ``status`` is an integer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from syncd.sandbox.astral_ledger import (
    LOCATION_STATUSES,
    ON_HAND,
    AstralPosting,
    AstralTransaction,
    LotKey,
)
from syncd.sandbox.astral_state import AstralState
from syncd.sandbox.jsonapi_sim import (
    ApiError,
    PageParamError,
    PageRequest,
    error_response,
    iso_millis,
    page_url,
    parse_page,
)

PAGE_DEFAULT = 10  # L13202-13206, L13369-13373, L13511-13515, L13782-13786
PAGE_MAX = 100  # not documented; chosen, enforced by clamping (visible in perPage)
FEED_CURSOR = re.compile(
    r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}(,\d{10})?$"
)
STATE_STATUSES = frozenset(s for s in LOCATION_STATUSES if s != "void")
"""What the state endpoint lists by default: every location status but ``void``
(never stock, L13157); ``onHand`` only when asked, so nothing is counted twice."""


class QueryError(ValueError):
    """A filter, sort or include the endpoint does not take (answered with 400)."""


def bad_request(detail: str) -> Response:
    return error_response([ApiError(400, detail)], integer_status=True)


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def array_filter(
    request: Request, name: str, allowed: Sequence[str] | None = None, *, uuids: bool = False
) -> list[str] | None:
    """An array filter (``filter[x][]=a&filter[x][]=b``, L13024); None when absent."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    for value in values:
        if allowed is not None and value not in allowed:
            raise QueryError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        if uuids and not is_uuid(value):
            raise QueryError(f"{name}: {value!r} is not a uuid")
    return values


def read_page(request: Request, *, feed: bool) -> PageRequest:
    """``page[...]``; feed cursors are ``uuid<,timestamp>``, others plain UUIDs (L13208-13216)."""
    page = parse_page(request, default=PAGE_DEFAULT, maximum=PAGE_MAX)
    for name, value in (("page[after]", page.after), ("page[before]", page.before)):
        if value is None:
            continue
        ok = bool(FEED_CURSOR.match(value)) if feed else is_uuid(value)
        if not ok:
            shape = "uuid<,timestamp>" if feed else "uuid"
            raise PageParamError(name, f"{name} must be a {shape} cursor")
    return page


def read_includes(request: Request, allowed: set[str]) -> set[str]:
    raw = request.query_params.get("include") or ""
    tokens = {t.strip() for t in raw.split(",") if t.strip()}
    unknown = tokens - allowed
    if unknown:
        raise QueryError(f"include: {', '.join(sorted(unknown))} not supported")
    return tokens


def meta_links(
    request: Request,
    page: PageRequest,
    first: str | None,
    last: str | None,
    *,
    more_after: bool,
    more_before: bool,
    has_more: bool,
) -> dict[str, Any]:
    """``meta.page`` and ``links`` (L12946-13016): cursors of the first and last item."""
    limit = ("page[limit]", str(page.limit))
    forward = more_after and last
    backward = more_before and first
    return {
        "meta": {"page": {"from": first, "to": last, "hasMore": has_more, "perPage": page.limit}},
        "links": {
            "first": page_url(request, [limit]),
            "next": page_url(request, [("page[after]", last or ""), limit]) if forward else None,
            "prev": page_url(request, [("page[before]", first or ""), limit]) if backward else None,
        },
    }


def lot_json(lot: LotKey) -> dict[str, Any]:
    """The spec's ``Lot`` (``number`` + ``expiryDate``); the brief's examples say ``lotNumber``."""
    return {"number": lot[0], "expiryDate": lot[1] or None}


def posting_resource(posting: AstralPosting, *, with_lot: bool) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "locationId": posting.location_id,
        "productVariantId": posting.variant_id,
        "locationStatus": posting.status,
        "quantity": posting.quantity,
        "movementType": posting.movement,
        "unitMultiplier": posting.unit_multiplier,
    }
    if with_lot and posting.lot[0]:
        attributes["lotNumber"] = posting.lot[0]
        if posting.lot[1]:
            attributes["expiryDate"] = posting.lot[1]
    return {
        "type": "posting",
        "id": posting.id,
        "attributes": attributes,
        "relationships": {
            "transaction": {"data": {"type": "transaction", "id": posting.transaction_id}},
            "state": {"data": {"type": "stock-state", "id": posting.variant_id}},
        },
    }


def transaction_resource(txn: AstralTransaction) -> dict[str, Any]:
    return {
        "type": "transaction",
        "id": txn.id,
        "attributes": {
            "relatedId": txn.related_id,
            "createdAt": iso_millis(txn.created_at),
            "metadata": dict(txn.metadata),
        },
        "relationships": {
            "postings": {"data": [{"type": "posting", "id": p.id} for p in txn.postings]}
        },
    }


def _row(
    state: AstralState,
    loc_id: str,
    status: str,
    quantity: int,
    *,
    multiplier: int,
    kind: str,
    lot: LotKey | None,
) -> dict[str, Any]:
    location = state.location(loc_id)
    row: dict[str, Any] = {
        "quantity": quantity,
        "locationId": loc_id,
        "locationType": location.type if location else "warehouse",
        "status": status,
        "unitMultiplier": multiplier,
        "productType": kind,
    }
    if lot is not None and lot[0]:
        row["lot"] = lot_json(lot)
    return row


def stock_state_resource(
    state: AstralState,
    variant_id: str,
    *,
    statuses: frozenset[str] | set[str] = STATE_STATUSES,
    locations: set[str] | None = None,
    until: float | None = None,
    before: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """One ``stock-state`` resource: balances of a single per location, status and lot,
    or of a bundle per location and status (min over components, L13169-13171)."""
    rows: list[dict[str, Any]] = []
    if variant_id in state.bundles:
        for (loc_id, status), qty in sorted(state.bundle_balances(variant_id, until=until).items()):
            if status in statuses and (locations is None or loc_id in locations):
                rows.append(_row(state, loc_id, status, qty, multiplier=1, kind="bundle", lot=None))
    else:
        multiplier = state.variants[variant_id].unit_multiplier
        on_hand: dict[tuple[str, LotKey], int] = {}
        balances = state.single_balances(variant_id, until=until, before=before)
        for (loc_id, status, lot), qty in sorted(balances.items()):
            if locations is not None and loc_id not in locations:
                continue
            if status in statuses:
                rows.append(
                    _row(state, loc_id, status, qty, multiplier=multiplier, kind="single", lot=lot)
                )
            if status in ON_HAND:
                on_hand[(loc_id, lot)] = on_hand.get((loc_id, lot), 0) + qty
        if "onHand" in statuses:
            for (loc_id, lot), qty in sorted(on_hand.items()):
                rows.append(
                    _row(
                        state, loc_id, "onHand", qty, multiplier=multiplier, kind="single", lot=lot
                    )
                )
    return {"type": "stock-state", "id": variant_id, "attributes": {"quantities": rows}}
