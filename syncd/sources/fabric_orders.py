"""``fabric_orders``: open fabric purchase-order lines become reservations.

**Which listing.** syncd is the brand, a *supplier* in fabric's terms. The
seed documents only the retailer side (``/v1/retailers/:id/orders/``, named
at L39 and created at L4958-4991), scoped by a retailer id whose credentials
a brand never has (brief seed-fabric 3); vendors reach orders "for
acknowledgment and fulfillment" (L4959) through fabric's supplier API,
``GET /v1/brands/{brand_id}/orders/`` ([EXT], brief fabric-supplier-api;
served by the sandbox). syncd reads the supplier side by default; the path
is a template (``{brand_id}``, ``{retailer_id}``) so it can be re-pointed
once fabric confirms the call.

**What a poll reads.** Every page of the open orders (``status=open``),
following the absolute ``next`` URL to the end (L64-68): one request per
page of open orders, nothing per catalog item. A complete listing is
recorded with ``complete=True``, so an order that shipped or was cancelled
(and so left the open listing) is released; its partially shipped or
cancelled lines are released through ``quantity_open``
(:mod:`syncd.sources.orders_fabric_parse`). A failed page makes the poll
partial (``complete=False``): nothing is released. So does a listing whose
``count`` changed between pages, or disagrees with the entries read: page
numbers over a set that changed while it was read can skip an order.

fabric decrements its own "managed" inventory when an order arrives (brief
seed-fabric 4, 8.3), which is why the fabric channel waits for this feed
before publishing increases (its description in syncd.integrations).
"""

from __future__ import annotations

from syncd.clock import Clock
from syncd.config.sections import OrderSourceSection
from syncd.http.client import ApiClient
from syncd.http.errors import HttpError
from syncd.http.jsonapi import paginate_next_url
from syncd.ledger.store import Ledger
from syncd.model import Catalog
from syncd.sources.base import PollResult
from syncd.sources.handover import Handover
from syncd.sources.orders_catalog import OrderCatalog
from syncd.sources.orders_fabric_parse import parse_order
from syncd.sources.orders_model import (
    LISTED_TWICE,
    REPEATED_PAGE,
    Listing,
    RepeatGuard,
    larger_of,
)
from syncd.sources.orders_record import observation_time, record_listing
from syncd.sources.problems import SkipLog

SUPPLIER_ORDERS_PATH = "/v1/brands/{brand_id}/orders/"
"""The brand's own orders (supplier API, [EXT]); the default."""
RETAILER_ORDERS_PATH = "/v1/retailers/{retailer_id}/orders/"
"""The documented retailer-side listing (seed 003 L39); needs a retailer's credentials."""
OPEN_STATUS = "open"


def orders_path(template: str, *, brand_id: str | None, retailer_id: str | None) -> str:
    """The listing path with its ids filled in; ValueError when one is needed but missing."""
    path = template
    for name, value in (("brand_id", brand_id), ("retailer_id", retailer_id)):
        placeholder = "{" + name + "}"
        if placeholder in path:
            if not value:
                raise ValueError(f"fabric orders path {template!r} needs {name}")
            path = path.replace(placeholder, value)
    if "{" in path or "}" in path:
        raise ValueError(f"fabric orders path {template!r} has an unknown placeholder")
    if not path.endswith("/"):
        # fabric paths end with a slash (DRF); without it a GET is redirected (brief 2.6).
        raise ValueError(f"fabric orders path {template!r} must end with '/'")
    return path


class FabricOrdersSource:
    """Reservations from fabric orders (see the module docstring)."""

    name = "fabric_orders"
    channel = "fabric"

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: OrderSourceSection,
        *,
        handover: Handover | None,
        clock: Clock,
        brand_id: str | None = None,
        retailer_id: str | None = None,
        path: str = SUPPLIER_ORDERS_PATH,
        status_filter: str | None = OPEN_STATUS,
    ) -> None:
        self._client = client
        self._catalog = OrderCatalog(catalog)
        self._handover = handover
        self._clock = clock
        self._skips = SkipLog(self.name, clock)
        self._path = orders_path(path, brand_id=brand_id, retailer_id=retailer_id)
        self._status_filter = status_filter
        self.locations: tuple[str, ...] = (section.fulfilled_from,)
        self.stale_after = section.stale_after
        self.poll_interval = section.poll_interval

    async def poll(self, ledger: Ledger) -> PollResult:
        observed_at = observation_time(self._clock)
        listing = await self.read()
        return await record_listing(
            ledger,
            feed=self.name,
            channel=self.channel,
            location=self.locations[0],
            listing=listing,
            observed_at=observed_at,
            handover=self._handover,
            skip_log=self._skips,
        )

    async def read(self) -> Listing:
        """Every open order, or a partial listing that says so."""
        listing = Listing()
        params = {"status": self._status_filter} if self._status_filter else None
        counts: set[int | None] = set()
        entries = 0
        guard = RepeatGuard()
        try:
            async for page in paginate_next_url(self._client, self._path, params=params):
                listing.requests += 1
                counts.add(page.count)
                entries += len(page.results)
                refs: list[str] = []
                for raw in page.results:
                    order = parse_order(raw, self._catalog, listing)
                    if order is None:
                        continue
                    refs.append(order.order_ref)
                    if order.order_ref in listing.orders:
                        # Page-number paging over a changing set (see below).
                        listing.skip(f"order {order.order_ref}", LISTED_TWICE)
                        order = larger_of(listing.orders[order.order_ref], order)
                    listing.orders[order.order_ref] = order
                if guard.repeats(refs):
                    listing.fail(f"listing fabric orders failed: {REPEATED_PAGE}")
                    return listing
        except HttpError as exc:
            listing.requests += 1
            listing.fail(f"listing fabric orders failed: {exc}")
            return listing
        total = counts.pop() if len(counts) == 1 else -1
        if total is not None and total != entries:
            # Page-number paging over a changing set: an order that closed while
            # the pages were read shifts the rest, and one can slip between pages.
            listing.incomplete("listing", "the open orders changed while paging: no releases")
        return listing

    async def aclose(self) -> None:
        """Nothing to close: the fabric client is shared (ApiClients closes it)."""
