"""``GET /v3/orders`` of the Active Ants simulator: modelled, **not in seed 001**.

The seed has no order read at all (brief §4.3): v2 only creates orders
(``order/add``, L428-882) and names v3 only for ``POST v3/orders`` (L432).
A client still needs to know which channel orders the warehouse already
holds (their units are in AA's allocation, so syncd must stop reserving
them, brief G19). This read is modelled on public v3 clients ([EXT], brief
§5.6): JSON:API ``data[]`` of ``{id, type: "orders", attributes:
{externalOrderNumber, reference, orderedOn, currency, email,
preferredShippingDate, allowPartialDelivery, onHold}, links}``, filtered with
the seed's v3 filter syntax (L2647) as ``filter[externalOrderNumber][in]=a,b``,
paged with ``page[number]``/``page[size]`` (size default and maximum
:data:`PAGE_SIZE`) and an absolute ``links.next`` while more pages exist.
Bad paging parameters: 400 with a JSON:API ``errors`` array.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.sandbox.activeants_state import AAOrder, ActiveAntsState

PAGE_SIZE = 100


def _error(status: int, detail: str) -> Response:
    return JSONResponse(
        {"errors": [{"status": str(status), "title": "Bad Request", "detail": detail}]},
        status_code=status,
    )


def _order(order: AAOrder, base_url: str) -> dict[str, Any]:
    return {
        "id": order.order_id,
        "type": "orders",
        "attributes": {
            "externalOrderNumber": order.external_order_number,
            "reference": order.reference,
            "orderedOn": datetime.fromtimestamp(order.ordered_on, UTC).isoformat(
                timespec="seconds"
            ),
            "currency": order.extra.get("currency", "EUR"),
            "email": order.extra.get("email"),
            "preferredShippingDate": order.extra.get("preferredShippingDate"),
            "allowPartialDelivery": False,
            "onHold": order.on_hold,
        },
        "links": {"self": f"{base_url.rstrip('/')}/v3/orders/{order.order_id}"},
    }


def orders_page(request: Request, state: ActiveAntsState, *, partial: bool = False) -> Response:
    """One page of held orders; ``partial`` serves the ``partial_page`` fault (half a page)."""
    params = request.query_params
    try:
        number = int(params.get("page[number]", "1"))
        size = min(int(params.get("page[size]", str(PAGE_SIZE))), PAGE_SIZE)
        if number < 1 or size < 1:
            raise ValueError
    except ValueError:
        return _error(400, "page[number] and page[size] must be positive integers")
    wanted = params.get("filter[externalOrderNumber][in]")
    with state.lock:
        orders = sorted(state.orders.values(), key=lambda o: o.order_id)
        if wanted is not None:
            refs = {ref for ref in wanted.split(",") if ref}
            orders = [o for o in orders if o.external_order_number in refs]
        total = len(orders)
        page = orders[(number - 1) * size : number * size]
        if partial and len(page) > 1:
            page = page[: len(page) // 2]
        data = [_order(o, str(request.base_url)) for o in page]
    links: dict[str, str] = {"self": str(request.url)}
    if number < math.ceil(total / size):
        links["next"] = str(request.url.include_query_params(**{"page[number]": number + 1}))
    return JSONResponse({"data": data, "links": links, "meta": {"total": total}})
