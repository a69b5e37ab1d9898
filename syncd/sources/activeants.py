"""Active Ants warehouse stock, read from ShopApi ``GET v2/stock/bulk`` (seed 001 L2852-2952).

The feed (brief seed-activeants 0.3, 3.7):

1. **Initial full read** with ``all_products=true`` (L2868) -- "an intensive
   operation which should only be used sparingly" (L2685) -- then again every
   ``full_reconcile_interval`` (default daily): the full read is the
   reconciliation. Its differences from the ledger become adjustments
   against ``void`` (see :mod:`syncd.sources.activeants_book`).
2. **Incremental reads** in between, ``all_products=false&from=<last to>``:
   the products whose stock mutation time is in ``[from, to)``
   (L2874-2893). ``from`` is always sent (the server's default is "one day
   in the past", L2857, which would skip changes after a day of downtime),
   always the ``to`` the server returned (never the local clock, G7) and
   URL-encoded by httpx (a ``+01:00`` offset must not arrive as a space).
3. The new ``to`` is committed **in the same SQLite transaction** as the
   levels it covers (the snapshot's cursor), so a crash between fetching
   and recording loses nothing: the next poll asks from the old ``from``
   again, and absolute levels recorded twice change nothing.

Bad input: a response that is not the documented envelope (not JSON,
``messageCode`` other than ``OK``, no period or product array) raises and
records nothing; a product that cannot be used (unknown SKU, missing stock
figure) is skipped and reported while the rest of the read
is recorded and the cursor advances -- the next full read re-reads it. A
full read that yields nothing usable is refused (never a mass zeroing);
when it was a periodic one, incremental reads go on and the full read is
retried after :data:`FULL_RETRY` seconds rather than on every poll.

The shared "needs to be synched" queues (``stock/bulk/false``,
``v2/stockmutation/get``) are never read: other integrations on the same
account drain them (G4). Each poll is one request, whatever the catalog size.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from syncd.clock import Clock
from syncd.config.sections import ActiveAntsSourceSection
from syncd.http.client import ApiClient, response_json
from syncd.http.errors import HttpError
from syncd.ledger.errors import LedgerError
from syncd.ledger.store import Ledger
from syncd.model import Catalog
from syncd.sources.activeants_book import BulkPlan, plan_bulk
from syncd.sources.activeants_parse import BulkRead, ProductStock, parse_bulk
from syncd.sources.base import PollResult
from syncd.sources.freshness import decode_instant, encode_instant, find_feed
from syncd.sources.problems import MalformedPage, SkipLog

_log = structlog.get_logger(__name__)

FULL_RETRY = 900.0
"""Seconds before a refused periodic full read is tried again (incremental reads go on)."""
BULK_PATH = "v2/stock/bulk"
"""Relative to the API root, ``v2/`` prefix as the seed writes it (L2854, brief 2.1)."""
LAST_FULL_KEY = "last_full_at"


class ActiveAntsStockSource:
    """The ``activeants`` feed: warehouse stock booked as ``available`` on one location."""

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: ActiveAntsSourceSection,
        *,
        clock: Clock,
        name: str = "activeants",
    ) -> None:
        self.name = name
        self.locations: tuple[str, ...] = (section.location,)
        self.stale_after = section.stale_after
        self.poll_interval = section.poll_interval
        self._client = client
        self._clock = clock
        self._section = section
        self._mapping = {
            v.activeants_sku: v.sku for v in catalog.variants.values() if v.activeants_sku
        }
        self._skips = SkipLog(name, clock)
        self._last_full: datetime | None = None
        self._full_retry_at: datetime | None = None
        self._loaded = False

    async def aclose(self) -> None:
        """Nothing to release: the API client is shared and closed by its owner."""

    async def poll(self, ledger: Ledger) -> PollResult:
        """One read: full when none was made or one is due, else incremental.

        Raises the HTTP layer's errors, `MalformedPage` or a ledger error
        after marking the feed as failing; nothing is recorded then.
        """
        try:
            return await self._poll(ledger)
        except (HttpError, MalformedPage, LedgerError) as exc:
            _log.error("source.poll_failed", source=self.name, error=str(exc))
            await ledger.mark_feed(
                self.name,
                error=f"{type(exc).__name__}: {exc}",
                error_at=self._clock.now(),
            )
            raise

    async def _poll(self, ledger: Ledger) -> PollResult:
        now = self._clock.now()
        if not self._loaded:
            state = find_feed(await ledger.feed_states(), self.name)
            self._last_full = decode_instant(state.extra, LAST_FULL_KEY) if state else None
            self._loaded = True
        cursor = await ledger.cursor(self.name)
        full = cursor is None or self._full_due(now)
        params = {"all_products": "true"} if full else {"all_products": "false", "from": cursor}
        response = await self._client.request("GET", BULK_PATH, params=params)
        read = parse_bulk(response_json(response, api=self._client.name), self._section.stock_field)
        plan = plan_bulk(
            read,
            full=full,
            mapping=self._mapping,
            source=self.name,
            location=self._section.location,
            stock_field=self._section.stock_field,
            observed_at=now,
        )
        self._skips.begin_poll()
        for skipped in plan.skipped:
            self._skips.skip(skipped)
        summary = self._skips.finish_poll()
        recorded = await ledger.record_snapshot(plan.draft) if plan.draft is not None else False
        if full and plan.refused is None:
            self._last_full, self._full_retry_at = now, None
        elif full and cursor is not None:
            # A refused periodic full read is retried later, not on every poll:
            # the read is "intensive" (L2685) and the incremental feed still works.
            wait = min(FULL_RETRY, self._section.full_reconcile_interval)
            self._full_retry_at = now + timedelta(seconds=wait)
        below_zero = [p for p in read.products if p.below_zero is not None]
        if below_zero:
            _log.warning(
                "source.stock_below_zero",
                source=self.name,
                items={p.aa_sku: p.below_zero for p in below_zero[:20]},
                count=len(below_zero),
                recorded_as=0,
            )
        result = PollResult(
            feed=self.name,
            recorded=int(recorded),
            skipped=summary.count,
            requests=1,
            caught_up=True,
            complete=plan.complete,
            cursor=read.to,
            problems=plan.problems + summary.problems + _below_zero_problems(below_zero),
        )
        extra = {**self._extra(read, plan), **summary.extra()}
        if plan.refused is not None:
            _log.error("source.read_refused", source=self.name, reason=plan.refused)
            await ledger.mark_feed(self.name, error=plan.refused, error_at=now, extra=extra)
            return result
        await ledger.mark_feed(self.name, success_at=now, extra=extra)
        busy = full or result.recorded or result.skipped
        (_log.info if busy else _log.debug)(
            "source.polled",
            source=self.name,
            mode="full" if full else "incremental",
            listed=read.listed,
            recorded=result.recorded,
            skipped=result.skipped,
            complete=result.complete,
            to=read.to,
        )
        return result

    def _full_due(self, now: datetime) -> bool:
        if self._full_retry_at is not None and now < self._full_retry_at:
            return False
        if self._last_full is None:
            return True
        elapsed = (now - self._last_full).total_seconds()
        return elapsed >= self._section.full_reconcile_interval

    def _extra(self, read: BulkRead, plan: BulkPlan) -> dict[str, str]:
        extra = {
            "mode": "full" if plan.full else "incremental",
            "checked_to": read.to,
            "listed_last_poll": str(read.listed),
            "stock_field": self._section.stock_field,
        }
        if plan.full:
            extra["full_read_coverage"] = f"{plan.covered}/{plan.mapped}"
        if self._last_full is not None:
            extra[LAST_FULL_KEY] = encode_instant(self._last_full)
        return extra


def _below_zero_problems(products: list[ProductStock]) -> list[str]:
    """One line for `syncd status`: backordered products, recorded as 0 (brief G21)."""
    if not products:
        return []
    shown = ", ".join(f"{p.aa_sku} ({p.below_zero})" for p in products[:5])
    more = f" and {len(products) - 5} more" if len(products) > 5 else ""
    return [f"{len(products)} item(s) below zero at the warehouse, recorded as 0: {shown}{more}"]
