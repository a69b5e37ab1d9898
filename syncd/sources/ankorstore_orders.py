"""``ankorstore_orders``: Ankorstore orders that hold the brand's stock become reservations.

The order list has no date or ``updatedAt`` filter and no documented sort
(seed 000 L4807-4835; brief seed-ankorstore-orders 8.1 #8), and
``updatedAt`` ignores item changes (L5006). So every poll re-lists, in
full, each status that holds stock (``filter[status]`` takes one value,
L4814-4819), following ``links.next`` to the end (L3681-3711). A poll costs
one request per page per holding status (plus the handover lookups), never
anything proportional to the catalog.

Only a listing that read every page of every holding status is recorded
with ``complete=True``: the ledger then releases the orders that are no
longer in it -- shipped, cancelled, rejected, or handed to Ankorstore's
fulfilment centre. A failed page (after the HTTP layer's own retries: 401
re-authenticates, 429 waits) makes the poll partial: what was read is
recorded with ``complete=False`` and nothing is released.

Reserved quantity is pieces (``multipliedQuantity``, brief 2.6) per brand SKU,
on ``[sources.ankorstore_orders] fulfilled_from``. Parsing rules:
:mod:`syncd.sources.orders_ankorstore_parse`.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from syncd.clock import Clock
from syncd.config.sections import OrderSourceSection
from syncd.http.client import ApiClient
from syncd.http.errors import HttpError
from syncd.http.jsonapi import paginate
from syncd.ledger.store import Ledger
from syncd.model import Catalog
from syncd.sources.base import PollResult
from syncd.sources.handover import Handover
from syncd.sources.orders_ankorstore_parse import HOLDING_STATUSES, index_included, parse_order
from syncd.sources.orders_catalog import OrderCatalog
from syncd.sources.orders_model import (
    LISTED_TWICE,
    REPEATED_PAGE,
    Listing,
    ParsedOrder,
    RepeatGuard,
    larger_of,
)
from syncd.sources.orders_record import observation_time, record_listing
from syncd.sources.problems import SkipLog

_log = structlog.get_logger(__name__)

ORDERS_PATH = "/api/v1/orders"
INCLUDE = "orderItems.productVariant"
"""Items and their variants in one request (seed 000 L3258: no need to name orderItems too)."""
DEFAULT_PAGE_SIZE = 100
"""``page[limit]``: no maximum is documented; 100 is the largest ``perPage`` in any sample."""


class AnkorstoreOrdersSource:
    """Reservations from Ankorstore internal orders (see the module docstring)."""

    name = "ankorstore_orders"
    channel = "ankorstore"

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: OrderSourceSection,
        *,
        handover: Handover | None,
        clock: Clock,
        page_size: int = DEFAULT_PAGE_SIZE,
        statuses: Sequence[str] = HOLDING_STATUSES,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._client = client
        self._catalog = OrderCatalog(catalog)
        self._handover = handover
        self._clock = clock
        self._skips = SkipLog(self.name, clock)
        self._page_size = page_size
        self._statuses = tuple(statuses)
        self.locations: tuple[str, ...] = (section.fulfilled_from,)
        self.stale_after = section.stale_after
        self.poll_interval = section.poll_interval

    async def poll(self, ledger: Ledger) -> PollResult:
        # Taken before the first request: an order the ledger saw after this
        # moment (another observation) is never released by this listing.
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
        """Every order in a holding status, or a partial listing that says so."""
        listing = Listing()
        listed_in: dict[str, str] = {}
        for status in self._statuses:
            params = {
                "filter[status]": status,
                "include": INCLUDE,
                "page[limit]": str(self._page_size),
            }
            guard = RepeatGuard()
            try:
                async for page in paginate(self._client, ORDERS_PATH, params=params):
                    listing.requests += 1
                    if page.dropped:
                        # An entry that is not even an object may be an open order:
                        # the listing no longer proves what it does not contain.
                        listing.incomplete(
                            f"{page.dropped} {status} entries", "not an object: cannot be read"
                        )
                    included = index_included(page.included)
                    refs: list[str] = []
                    for resource in page.data:
                        order = parse_order(resource, included, self._catalog, listing)
                        if order is not None:
                            refs.append(order.order_ref)
                            self._merge(listing, order, status, listed_in)
                    if guard.repeats(refs):
                        listing.fail(f"listing {status} orders failed: {REPEATED_PAGE}")
                        break
            except HttpError as exc:
                listing.requests += 1
                listing.fail(f"listing {status} orders failed: {exc}")
            if listing.error is not None:
                break
        return listing

    @staticmethod
    def _merge(
        listing: Listing, order: ParsedOrder, status: str, listed_in: dict[str, str]
    ) -> None:
        ref = order.order_ref
        if ref not in listing.orders:
            listing.orders[ref] = order
            listed_in[ref] = status
            return
        if listed_in[ref] == status:
            # A page boundary moved while the listing ran: one order (its
            # reference, seed 000 L4865-4868) seen twice, not two orders, and
            # which copy is newer is unknown: the larger reservation counts.
            listing.skip(f"order {ref}", f"{LISTED_TWICE} (status {status})")
            listing.orders[ref] = larger_of(listing.orders[ref], order)
            return
        # It moved on while the statuses were listed one after another (in flow
        # order, so forward only): the later listing is the newer observation,
        # e.g. quantities the brand lowered when confirming.
        _log.info(
            "source.order_moved_during_listing",
            source="ankorstore_orders",
            order_ref=ref,
            before=listed_in[ref],
            after=status,
        )
        listing.orders[ref] = order
        listed_in[ref] = status

    async def aclose(self) -> None:
        """Nothing to close: the Ankorstore client is shared (ApiClients closes it)."""
