"""ASTRAL (Ankorstore's Stock Tracking and Logistics API) routes of the simulator.

ASTRAL is served by the Ankorstore app itself (same host, same token, same
rate budget; :func:`syncd.sandbox.ankorstore.create_app` mounts
:func:`routes`). Paths are the spec's ``/api/astral/v1/stock/*`` (the seed's
only URL, ``/api/astral/v1/postings`` at L13012, lacks ``/stock/`` and is a
documentation slip, brief seed-astral A1).

Reading rules implemented here (seed 000 L12946-13034, L13173-14017):

- ``page[limit]`` defaults to 10 (L13204); the seed gives no maximum, the
  simulator clamps at :data:`PAGE_MAX` and reports it in ``meta.page.perPage``;
- state and locations page with plain UUID cursors; postings and
  transactions with ``uuid,timestamp`` cursors (L13520) that are resolved by
  their UUID; an unknown cursor is a 400;
- the feed is ordered by transaction ``createdAt`` (ascending unless
  ``sort=-transaction.createdAt``); ``meta.page.from``/``to`` are the
  cursors of the first and last item; ``hasMore`` is "more in the direction
  of travel"; ``links.next``/``prev`` are ``null`` when there is nothing
  further that way (L12995);
- ``include=state`` on postings gives each variant's balance *before* the
  page's earliest posting ("the quantities at the start of the set of
  postings", L13548), so opening state + the page's deltas = the state after
  the page;
- lot numbers and expiry dates of postings appear only with ``include=lot``
  ("To receive information on which specific lots were involved in the
  movement, include the lot resource", L13486);
- a bundle id in ``filter[productVariantIds][]`` returns its components'
  postings (L13165) and, on the state endpoint, bundle quantities (L13169).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.sandbox.ankorstore_http import Admitted, Guard
from syncd.sandbox.astral_jsonapi import (
    QueryError,
    array_filter,
    bad_request,
    meta_links,
    posting_resource,
    read_includes,
    read_page,
    stock_state_resource,
    transaction_resource,
)
from syncd.sandbox.astral_ledger import (
    LOCATION_STATUSES,
    LOCATION_TYPES,
    MOVEMENT_TYPES,
    STOCK_STATUSES,
    scan,
)
from syncd.sandbox.astral_state import AstralState
from syncd.sandbox.faults import FaultPlan
from syncd.sandbox.jsonapi_sim import (
    PageParamError,
    PageRequest,
    PageSlice,
    cursor_slice,
    document,
    truncate_page,
)

PREFIX = "/api/astral/v1/stock"

T = TypeVar("T")


def _sliced_body(
    request: Request, page: PageRequest, sliced: PageSlice[Any], ids: list[str], data: list[Any]
) -> dict[str, Any]:
    return {
        "data": data,
        **meta_links(
            request,
            page,
            ids[0] if ids else None,
            ids[-1] if ids else None,
            more_after=sliced.more_after,
            more_before=sliced.more_before,
            has_more=sliced.direction_has_more,
        ),
    }


class _Astral:
    """Handlers bound to one :class:`AstralState` and fault plan."""

    def __init__(self, state: AstralState, faults: FaultPlan) -> None:
        self.state = state
        self.faults = faults

    def _partial(self, request: Request, page: PageRequest, sliced: PageSlice[T]) -> PageSlice[T]:
        if page.before is None and self.faults.take(
            "partial_page", request.method, request.url.path
        ):
            return truncate_page(sliced)
        return sliced

    def _locations(self, request: Request) -> set[str]:
        types = array_filter(request, "filter[locationTypes][]", LOCATION_TYPES)
        ids = array_filter(request, "filter[locationIds][]", uuids=True)
        found = {loc.id for loc in self.state.locations if types is None or loc.type in types}
        return found & set(ids) if ids is not None else found

    async def stock_state(self, request: Request, _: Admitted) -> Response:
        """``GET /stock/state`` (L13173-13347)."""
        state = self.state
        try:
            ids = array_filter(request, "filter[productVariantIds][]", uuids=True)
            wanted = array_filter(request, "filter[status][]", STOCK_STATUSES)
            locations = self._locations(request)
            product_type = request.query_params.get("filter[productType]")
            if product_type not in (None, "single", "bundle"):
                raise QueryError("filter[productType] must be single or bundle")
            raw_at = request.query_params.get("stateAt")
            # stateAt: the unit is undocumented (A8); epoch seconds, like the cursors.
            until = float(int(raw_at)) if raw_at is not None else None
            page = read_page(request, feed=False)
        except (QueryError, PageParamError) as exc:
            return bad_request(str(exc))
        except ValueError:
            return bad_request("stateAt must be an integer timestamp (epoch seconds)")
        with state.lock:
            if ids is not None:
                entities = sorted(set(ids) & (set(state.variants) | set(state.bundles)))
            else:
                # Bundles are listed when asked for (by id or productType, L13169).
                entities = sorted(state.bundles if product_type == "bundle" else state.variants)
            if product_type is not None:
                pool = state.bundles if product_type == "bundle" else state.variants
                entities = [e for e in entities if e in pool]
            try:
                sliced = cursor_slice(entities, lambda e: e, page)
            except PageParamError as exc:
                return bad_request(str(exc))
            sliced = self._partial(request, page, sliced)
            options: dict[str, Any] = {"locations": locations, "until": until}
            if wanted:
                options["statuses"] = set(wanted)
            data = [stock_state_resource(state, e, **options) for e in sliced.items]
        return document(_sliced_body(request, page, sliced, sliced.items, data))

    async def locations(self, request: Request, _: Admitted) -> Response:
        """``GET /stock/locations`` (L13351-13480)."""
        try:
            types = array_filter(request, "filter[locationTypes][]", LOCATION_TYPES)
            external = request.query_params.get("filter[externalId]")
            page = read_page(request, feed=False)
            found = [
                loc
                for loc in self.state.locations
                if (types is None or loc.type in types)
                and (external is None or loc.external_id == external)
            ]
            sliced = self._partial(request, page, cursor_slice(found, lambda loc: loc.id, page))
        except (QueryError, PageParamError) as exc:
            return bad_request(str(exc))
        data = [
            {
                "type": "location",
                "id": loc.id,
                "attributes": {"type": loc.type, "externalId": loc.external_id},
            }
            for loc in sliced.items
        ]
        return document(_sliced_body(request, page, sliced, [x.id for x in sliced.items], data))

    # --- feeds ----------------------------------------------------------------------

    def _walk(
        self,
        request: Request,
        page: PageRequest,
        *,
        count: int,
        keys: Sequence[Any],
        cursor_key: Any | None,
        descending: bool,
        match: Callable[[int], bool],
    ) -> tuple[list[int], bool, bool, bool]:
        """Index positions of one feed page; (indices, more_after, more_before, has_more)."""
        forward = -1 if descending else 1
        if cursor_key is None:
            start, step = (count - 1 if descending else 0), forward
        elif page.after:
            start = (
                bisect.bisect_left(keys, cursor_key) - 1
                if descending
                else bisect.bisect_right(keys, cursor_key)
            )
            step = forward
        else:
            start = (
                bisect.bisect_right(keys, cursor_key)
                if descending
                else bisect.bisect_left(keys, cursor_key) - 1
            )
            step = -forward
        found = list(scan(count, start, step, match, page.limit + 1))
        has_more = len(found) > page.limit
        found = found[: page.limit]
        if page.before:
            found.reverse()
        if not found:
            return [], False, False, False
        beyond_last = any(scan(count, found[-1] + forward, forward, match, 1))
        beyond_first = any(scan(count, found[0] - forward, -forward, match, 1))
        # The partial_page fault: a short page whose hasMore still says "go on".
        if (
            page.before is None
            and len(found) > 1
            and self.faults.take("partial_page", request.method, request.url.path)
        ):
            found = found[: len(found) // 2]
            beyond_last = has_more = True
        return found, beyond_last, beyond_first, has_more

    def _feed_filters(self, request: Request) -> tuple[set[str] | None, set[str], set[str] | None]:
        """(variant ids with bundles expanded, location ids, location statuses)."""
        ids = array_filter(request, "filter[productVariantIds][]", uuids=True)
        statuses = array_filter(request, "filter[locationStatus][]", LOCATION_STATUSES)
        variants = self.state.expand(ids) if ids is not None else None
        return variants, self._locations(request), set(statuses) if statuses else None

    async def postings(self, request: Request, _: Admitted) -> Response:
        """``GET /stock/postings`` (L13482-13753)."""
        state = self.state
        try:
            variants, locations, statuses = self._feed_filters(request)
            moves_in = array_filter(request, "filter[movementType][in][]", MOVEMENT_TYPES)
            moves_out = set(
                array_filter(request, "filter[movementType][notIn][]", MOVEMENT_TYPES) or ()
            )
            sort = request.query_params.get("sort", "transaction.createdAt")
            if sort not in ("transaction.createdAt", "-transaction.createdAt"):
                raise QueryError("sort must be transaction.createdAt or -transaction.createdAt")
            includes = read_includes(request, {"transaction", "lot", "state"})
            page = read_page(request, feed=True)
        except (QueryError, PageParamError) as exc:
            return bad_request(str(exc))
        moves = set(moves_in) if moves_in else None
        with state.lock:  # the feed lists are live: read them under the lock
            posts, keys = state.feed_postings()

            def match(index: int) -> bool:
                p = posts[index]
                return (
                    (variants is None or p.variant_id in variants)
                    and p.location_id in locations
                    and (statuses is None or p.status in statuses)
                    and (moves is None or p.movement in moves)
                    and p.movement not in moves_out
                )

            cursor = page.after or page.before
            anchor = state.posting(cursor.split(",")[0]) if cursor else None
            if cursor and anchor is None:
                return bad_request(f"unknown cursor {cursor!r}")
            found, more_after, more_before, has_more = self._walk(
                request,
                page,
                count=len(posts),
                keys=keys,
                cursor_key=anchor.key if anchor else None,
                descending=sort.startswith("-"),
                match=match,
            )
            items = [posts[i] for i in found]
            body: dict[str, Any] = {
                "data": [posting_resource(p, with_lot="lot" in includes) for p in items],
                **meta_links(
                    request,
                    page,
                    items[0].cursor if items else None,
                    items[-1].cursor if items else None,
                    more_after=more_after,
                    more_before=more_before,
                    has_more=has_more,
                ),
            }
            included: list[dict[str, Any]] = []
            if "transaction" in includes:
                for txn_id in dict.fromkeys(p.transaction_id for p in items):
                    txn = state.transaction(txn_id)
                    if txn is not None:
                        included.append(transaction_resource(txn))
            if "state" in includes and items:
                # The balance before the page's earliest posting (L13548).
                opening = min(p.key for p in items)
                included += [
                    stock_state_resource(state, variant_id, before=opening)
                    for variant_id in dict.fromkeys(p.variant_id for p in items)
                ]
            if included:
                body["included"] = included
            return document(body)

    async def transactions(self, request: Request, _: Admitted) -> Response:
        """``GET /stock/transactions`` (L13755-14017)."""
        state = self.state
        try:
            variants, locations, statuses = self._feed_filters(request)
            related = array_filter(request, "filter[relatedIds][]")
            sort = request.query_params.get("sort", "createdAt")
            if sort not in ("createdAt", "-createdAt"):
                raise QueryError("sort must be createdAt or -createdAt")
            includes = read_includes(request, {"posting"})
            page = read_page(request, feed=True)
        except (QueryError, PageParamError) as exc:
            return bad_request(str(exc))
        related_set = set(related) if related is not None else None
        with state.lock:  # the feed lists are live: read them under the lock
            txns, keys = state.feed_transactions()

            def match(index: int) -> bool:
                # A transaction matches when any of its postings does (brief A15).
                txn = txns[index]
                if related_set is not None and txn.related_id not in related_set:
                    return False
                return any(
                    (variants is None or p.variant_id in variants)
                    and p.location_id in locations
                    and (statuses is None or p.status in statuses)
                    for p in txn.postings
                )

            cursor = page.after or page.before
            anchor = state.transaction(cursor.split(",")[0]) if cursor else None
            if cursor and anchor is None:
                return bad_request(f"unknown cursor {cursor!r}")
            found, more_after, more_before, has_more = self._walk(
                request,
                page,
                count=len(txns),
                keys=keys,
                cursor_key=anchor.key if anchor else None,
                descending=sort.startswith("-"),
                match=match,
            )
            items = [txns[i] for i in found]
            body: dict[str, Any] = {
                "data": [transaction_resource(t) for t in items],
                **meta_links(
                    request,
                    page,
                    items[0].cursor if items else None,
                    items[-1].cursor if items else None,
                    more_after=more_after,
                    more_before=more_before,
                    has_more=has_more,
                ),
            }
            if "posting" in includes and items:
                body["included"] = [
                    posting_resource(p, with_lot=True) for t in items for p in t.postings
                ]
            return document(body)


def routes(state: AstralState, guard: Guard, faults: FaultPlan) -> list[Route]:
    """The four documented ASTRAL reads, behind the Ankorstore guard."""
    astral = _Astral(state, faults)
    handlers = {
        "state": astral.stock_state,
        "locations": astral.locations,
        "postings": astral.postings,
        "transactions": astral.transactions,
    }
    return [
        Route(
            f"{PREFIX}/{name}",
            guard.wrap(f"GET {PREFIX}/{name}", handler, integer_status=True),
            methods=["GET"],
        )
        for name, handler in handlers.items()
    ]
