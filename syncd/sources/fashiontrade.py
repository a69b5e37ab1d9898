"""``fashiontrade``: open FashionTrade order lines become reservations.

FashionTrade lists orders with ``created_after``/``created_before`` and
``status`` only (seed 002 L1346-1427): there is no "updated since" filter,
so a status change on an order seen before is invisible to a
``created_after`` cursor (brief seed-fashiontrade 10.5). And the overview
carries no lines (L670-698): they need ``GET /orders/{orderNumber}``
(L1429-1473). Each poll therefore:

1. lists every order created within the look-back window (``lookback``,
   default 30 days): their overview statuses;
2. once at start-up and then every ``sweep_interval`` (default a day) also
   lists each open overview status without a date bound, which finds open
   orders older than the window that syncd has never seen (a first start,
   or a window shortened in config);
3. reads the lines of every open order whose lines are not known for its
   current status: orders with a uniform status keep their lines (cached up
   to ``lines_max_age``); ``MIXED`` orders with an open line are re-read
   every poll, since a line can change while the overview stays ``MIXED``;
4. re-reads, by number, every order it still tracks as open -- seen with
   an open line before, or holding a reservation in the ledger -- that the
   listings did not contain: orders older than the window stay reserved exactly until
   FashionTrade says they shipped or were rejected.

Every order is observed explicitly (``SHIPPED``/``REJECTED`` ones with no
lines), so the observation is recorded with ``complete=False`` and nothing
is ever released for being absent. An order FashionTrade answers 404 for
keeps its reservation (reported): the API has no cancelled status (brief
11.13), and a wrong path must not release everything. ``max_order_requests``
bounds the per-order reads of one poll; the rest wait for the next poll
(``caught_up=False``).

A poll with no changes costs the window's listing pages, one read per
``MIXED`` order and one per tracked order older than the window -- never
anything per catalog item.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import structlog

from syncd.clock import Clock
from syncd.config.sections import OrderSourceSection
from syncd.http.client import ApiClient, response_json
from syncd.http.errors import ApiError, HttpError
from syncd.http.jsonapi import paginate_cursor
from syncd.ledger.store import Ledger
from syncd.model import Catalog
from syncd.sources.base import PollResult
from syncd.sources.handover import Handover
from syncd.sources.orders_catalog import OrderCatalog
from syncd.sources.orders_fashiontrade_parse import (
    MIXED,
    OPEN_OVERVIEW,
    RELEASED,
    parse_order,
    parse_overview,
)
from syncd.sources.orders_model import REPEATED_PAGE, Listing, ParsedOrder, RepeatGuard
from syncd.sources.orders_record import observation_time, previous_lines, record_listing
from syncd.sources.problems import SkipLog

_log = structlog.get_logger(__name__)

ORDERS_PATH = "/orders"
DEFAULT_LOOKBACK = 30 * 86_400.0
DEFAULT_SWEEP_INTERVAL = 86_400.0
DEFAULT_LINES_MAX_AGE = 3_600.0
DEFAULT_MAX_ORDER_REQUESTS = 200


@dataclass(frozen=True, slots=True)
class _Known:
    """An order's lines as last read, for the overview status they were read under."""

    status: str
    order: ParsedOrder
    read_at: float
    """``clock.monotonic()`` of the read."""


class FashionTradeOrdersSource:
    """Reservations from FashionTrade orders (see the module docstring)."""

    name = "fashiontrade"
    channel = "fashiontrade"

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: OrderSourceSection,
        *,
        handover: Handover | None,
        clock: Clock,
        lookback: float = DEFAULT_LOOKBACK,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
        lines_max_age: float = DEFAULT_LINES_MAX_AGE,
        max_order_requests: int = DEFAULT_MAX_ORDER_REQUESTS,
        page_limit: int | None = None,
    ) -> None:
        if lookback <= 0 or sweep_interval <= 0 or lines_max_age < 0:
            raise ValueError("lookback and sweep_interval must be > 0, lines_max_age >= 0")
        if max_order_requests < 1:
            raise ValueError("max_order_requests must be at least 1")
        self._client = client
        self._catalog = OrderCatalog(catalog)
        self._handover = handover
        self._clock = clock
        self._skips = SkipLog(self.name, clock)
        self._lookback = lookback
        self._sweep_interval = sweep_interval
        self._lines_max_age = lines_max_age
        self._max_order_requests = max_order_requests
        self._page_limit = page_limit
        self._known: dict[str, _Known] = {}
        self._tracked: set[str] = set()
        self._last_sweep: float | None = None
        self.locations: tuple[str, ...] = (section.fulfilled_from,)
        self.stale_after = section.stale_after
        self.poll_interval = section.poll_interval

    async def poll(self, ledger: Ledger) -> PollResult:
        observed_at = observation_time(self._clock)
        listing = Listing(complete=False)
        overviews = await self._overviews(listing, observed_at)
        budget = _Budget(self._max_order_requests)
        for number, status in overviews.items():
            await self._observe(listing, number, status, budget)
        if listing.error is None:
            ledger_open = set(await previous_lines(ledger, self.channel))
            for number in sorted((self._tracked | ledger_open) - overviews.keys()):
                await self._observe(listing, number, None, budget)
        listing.more = budget.exhausted
        self._track(listing)
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

    # --- listings -----------------------------------------------------------------

    async def _overviews(self, listing: Listing, observed_at: datetime) -> dict[str, str | None]:
        """Overview status by order number: the window, plus a sweep of open statuses when due."""
        cutoff = datetime.fromtimestamp(observed_at.timestamp() - self._lookback, UTC)
        found: dict[str, str | None] = {}
        window = {"created_after": cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if not await self._list(listing, window, found):
            return found
        now = self._clock.monotonic()
        if self._last_sweep is None or now - self._last_sweep >= self._sweep_interval:
            for status in sorted(OPEN_OVERVIEW):
                if not await self._list(listing, {"status": status}, found):
                    return found
            self._last_sweep = now
        return found

    async def _list(
        self, listing: Listing, params: dict[str, str], found: dict[str, str | None]
    ) -> bool:
        query: dict[str, str | int] = dict(params)
        if self._page_limit is not None:
            query["limit"] = self._page_limit
        seen: set[str] = set()
        guard = RepeatGuard()
        try:
            async for page in paginate_cursor(self._client, ORDERS_PATH, params=query):
                listing.requests += 1
                numbers: list[str] = []
                for raw in page.results:
                    parsed = parse_overview(raw, listing)
                    if parsed is None:
                        continue
                    number, status = parsed
                    numbers.append(number)
                    if number in seen:
                        listing.skip(f"order {number}", "listed twice: counted once")
                    seen.add(number)
                    if number in found and found[number] != status:
                        # Two overviews of one order disagree (it moved while the
                        # listings ran): neither may release it; read the order itself.
                        _log.info(
                            "source.order_listed_twice",
                            source=self.name,
                            order_ref=number,
                            statuses=[found[number], status],
                            note="its lines are read again",
                        )
                        found[number] = None
                    elif number not in found:
                        found[number] = status
                if guard.repeats(numbers):
                    listing.fail(
                        f"listing fashiontrade orders ({', '.join(params)}) failed: {REPEATED_PAGE}"
                    )
                    return False
        except HttpError as exc:
            listing.requests += 1
            listing.fail(f"listing fashiontrade orders ({', '.join(params)}) failed: {exc}")
            return False
        return True

    # --- orders -------------------------------------------------------------------

    async def _observe(
        self, listing: Listing, number: str, status: str | None, budget: _Budget
    ) -> None:
        """Add ``number`` to the listing, from its overview status, the cache or a read."""
        if status in RELEASED:
            listing.orders[number] = ParsedOrder(order_ref=number, status=status)
            self._known.pop(number, None)
            return
        if status is not None and status not in OPEN_OVERVIEW:
            listing.skip(f"order {number}", f"unknown status {status!r}: keeping its reservation")
            return
        known = self._known.get(number)
        if (
            status is not None
            and known is not None
            and known.status == status
            # A line can change while the overview stays MIXED, unless none is open.
            and (status != MIXED or not known.order.reserving)
            and self._clock.monotonic() - known.read_at < self._lines_max_age
        ):
            listing.orders[number] = known.order
            return
        if listing.error is not None:
            return  # after a failure nothing more is asked this poll
        if not budget.take():
            return
        order = await self._read(listing, number)
        if order is None:
            return
        listing.orders[number] = order
        if order.status in RELEASED:
            self._known.pop(number, None)
        else:
            self._known[number] = _Known(status or order.status, order, self._clock.monotonic())

    async def _read(self, listing: Listing, number: str) -> ParsedOrder | None:
        path = f"{ORDERS_PATH}/{quote(number, safe='')}"
        listing.requests += 1
        try:
            response = await self._client.request("GET", path)
            body: Any = response_json(response, api=self._client.name)
        except ApiError as exc:
            if exc.status == 404:
                listing.skip(f"order {number}", "not found (404): keeping its reservation")
                return None
            listing.fail(f"reading fashiontrade order {number} failed: {exc}")
            return None
        except HttpError as exc:
            listing.fail(f"reading fashiontrade order {number} failed: {exc}")
            return None
        return parse_order(number, body, self._catalog, listing)

    def _track(self, listing: Listing) -> None:
        """Orders that hold stock are re-read while they do; closed ones are dropped."""
        for number, order in listing.orders.items():
            if order.reserving:
                self._tracked.add(number)
            else:
                self._tracked.discard(number)

    async def aclose(self) -> None:
        """Nothing to close: the FashionTrade client is shared (ApiClients closes it)."""


class _Budget:
    """Per-order reads left in this poll."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.exhausted = False

    def take(self) -> bool:
        if self.left <= 0:
            self.exhausted = True
            return False
        self.left -= 1
        return True
