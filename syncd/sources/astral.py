"""ASTRAL stock: a state baseline, then the postings feed, checked by periodic state reads.

The procedure (brief seed-astral 5.1-5.3; seed 000 L13173-13753):

1. **Bootstrap** (no cursor yet): note the feed's head (the newest posting,
   ``sort=-transaction.createdAt&page[limit]=1``), read the whole stock
   state (every balance status asked for explicitly, ``page[limit]`` set --
   the default is 10, L13202-13206), then check that nothing was posted
   after that head. If so, the state and the head describe the same moment:
   the state is recorded as the baseline, the head as the cursor, in one
   commit. If postings keep arriving, the read is retried; after the last
   attempt the baseline is recorded anyway and a reconciliation is
   scheduled at once to correct what moved meanwhile.
2. **Follow** ``GET stock/postings?sort=transaction.createdAt&page[after]=<cursor>``
   page by page (L13517-13529); each page is one ledger transaction that
   commits the page's ``meta.page.to`` as the new cursor (the cursor is an
   opaque ``uuid<,timestamp>`` string, stored whole and sent back verbatim,
   L13520). Postings are keyed by UUID, so a replay changes nothing. A poll
   with nothing new costs one request whatever the catalog size.
3. **Reconcile** every ``reconcile_interval``: once caught up, read the whole
   state again, follow the feed once more, and record the state as absolute
   levels for every variant that had no posting since the state read began.
   A transaction committed late with an older ``createdAt`` sorts *before*
   the cursor and is never delivered by the feed (brief 5.3); the
   reconciliation books its effect as an adjustment against ``void``.

Reads are limited to ``warehouse`` and ``brand`` locations: stock that
reached a retailer location (``order_received``) is not the brand's to sell.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from syncd.clock import Clock
from syncd.config.sections import AstralSourceSection
from syncd.http.client import ApiClient, QueryValue, response_json
from syncd.http.errors import HttpError
from syncd.http.jsonapi import paginate
from syncd.ledger.errors import ConflictingPostingError, LedgerError
from syncd.ledger.store import Ledger
from syncd.model import Catalog, CursorUpdate, TransactionDraft, TransactionKind
from syncd.sources.astral_book import VOID_SUFFIX, StatePlan, plan_page, plan_state
from syncd.sources.astral_parse import (
    STATE_STATUSES,
    PostingsPage,
    StateEntity,
    parse_head,
    parse_postings_page,
    parse_state_entity,
)
from syncd.sources.base import PollResult
from syncd.sources.freshness import decode_instant, encode_instant, find_feed
from syncd.sources.problems import MalformedPage, SkipLog, Skipped

_log = structlog.get_logger(__name__)

POSTINGS_PATH = "/api/astral/v1/stock/postings"
STATE_PATH = "/api/astral/v1/stock/state"
"""Paths of the ASTRAL spec (brief seed-astral 1.1; the seed's example link lacks /stock/, A1)."""
LOCATION_TYPES = ("warehouse", "brand")
START = "start"
"""The cursor of a feed that was empty at bootstrap: read it from its first posting."""
LAST_RECONCILE_KEY = "last_reconcile_at"
MAX_PAGES_PER_POLL = 50
"""A poll stops after this many feed pages and says it has not caught up."""
BOOTSTRAP_ATTEMPTS = 3
CONFLICTING_POSTING = "posting id already recorded with another account or quantity; left out"


@dataclass(slots=True)
class _Progress:
    """What the current poll has done so far."""

    requests: int = 0
    recorded: int = 0
    complete: bool = False
    caught_up: bool = True
    refused: str | None = None
    problems: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)


class AstralStockSource:
    """The ``astral`` feed: ASTRAL balances per location and status, in units."""

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: AstralSourceSection,
        *,
        clock: Clock,
        name: str = "astral",
        location_types: Sequence[str] = LOCATION_TYPES,
        max_pages_per_poll: int = MAX_PAGES_PER_POLL,
    ) -> None:
        if max_pages_per_poll < 1:
            raise ValueError("max_pages_per_poll must be at least 1")
        self.name = name
        self.locations: tuple[str, ...] = (f"{section.location_prefix}:*",)
        self.stale_after = section.stale_after
        self.poll_interval = section.poll_interval
        self._client = client
        self._clock = clock
        self._keys = clock.rng(f"{name}.keys")
        """Makes each recorded state or cursor move's key unique (replayable under a seed)."""
        self._section = section
        self._prefix = section.location_prefix
        self._location_types = tuple(location_types)
        self._max_pages = max_pages_per_poll
        self._mapping = {
            v.astral_variant_id: v.sku for v in catalog.variants.values() if v.astral_variant_id
        }
        self._skips = SkipLog(name, clock)
        self._last_reconcile: datetime | None = None
        self._loaded = False

    async def aclose(self) -> None:
        """Nothing to release: the Ankorstore client is shared and closed by its owner."""

    async def poll(self, ledger: Ledger) -> PollResult:
        """Bootstrap, or follow the feed and reconcile when due.

        Raises the HTTP layer's errors, `MalformedPage` or a ledger error
        after marking the feed as failing; what was committed before the
        failure (whole pages, each with its cursor) stays committed.
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
        now = self._now()
        if not self._loaded:
            state = find_feed(await ledger.feed_states(), self.name)
            self._last_reconcile = (
                decode_instant(state.extra, LAST_RECONCILE_KEY) if state else None
            )
            self._loaded = True
        self._skips.begin_poll()
        progress = _Progress()
        cursor = await ledger.cursor(self.name)
        if cursor is None:
            await self._bootstrap(ledger, progress, now)
        else:
            caught_up, cursor, _ = await self._follow(ledger, cursor, progress)
            progress.caught_up = caught_up
            if caught_up and self._reconcile_due(now):
                await self._reconcile(ledger, cursor, progress, now)
        summary = self._skips.finish_poll()
        cursor = await ledger.cursor(self.name)
        result = PollResult(
            feed=self.name,
            recorded=progress.recorded,
            skipped=summary.count,
            requests=progress.requests,
            caught_up=progress.caught_up,
            complete=progress.complete,
            cursor=cursor,
            problems=progress.problems + summary.problems,
        )
        extra = {**progress.extra, **summary.extra(), "cursor": cursor or ""}
        # "" when a reconciliation is due now, so a restart does not read an older time.
        last = self._last_reconcile
        extra[LAST_RECONCILE_KEY] = encode_instant(last) if last is not None else ""
        if progress.refused is not None:
            _log.error("source.read_refused", source=self.name, reason=progress.refused)
            await ledger.mark_feed(self.name, error=progress.refused, error_at=now, extra=extra)
            return result
        await ledger.mark_feed(self.name, success_at=now, extra=extra)
        busy = result.recorded or result.skipped or not result.caught_up
        (_log.info if busy else _log.debug)(
            "source.polled",
            source=self.name,
            recorded=result.recorded,
            skipped=result.skipped,
            requests=result.requests,
            caught_up=result.caught_up,
            cursor=cursor,
        )
        return result

    # --- the three steps ----------------------------------------------------------

    async def _bootstrap(self, ledger: Ledger, progress: _Progress, now: datetime) -> None:
        head: str | None = None
        entities: list[StateEntity | Skipped] = []
        consistent = False
        for attempt in range(1, BOOTSTRAP_ATTEMPTS + 1):
            head = await self._head(progress)
            entities = await self._read_state(progress)
            consistent = await self._nothing_after(head, progress)
            if consistent:
                break
            _log.warning("source.bootstrap_raced", source=self.name, attempt=attempt)
        plan = await self._plan_state(
            ledger,
            entities,
            now,
            reason="bootstrap",
            cursor=CursorUpdate(feed=self.name, value=head or START),
        )
        if plan.refused is not None:
            progress.refused = plan.refused
            progress.problems += plan.problems
            return
        await self._record_state(ledger, plan, progress)
        if consistent:
            self._last_reconcile = now
        else:
            # The baseline may count or miss what was posted during the read:
            # reconcile on the next poll (which leaves moving variants out).
            self._last_reconcile = None
            progress.caught_up = False
            progress.problems.append(
                "postings kept arriving during the baseline state read; recorded it as of"
                " the head seen before the read and scheduled a reconciliation"
            )

    async def _follow(
        self, ledger: Ledger, cursor: str, progress: _Progress
    ) -> tuple[bool, str, set[str]]:
        """Record feed pages after ``cursor``; (caught up, new cursor, SKUs touched)."""
        touched: set[str] = set()
        for _ in range(self._max_pages):
            page = await self._postings_page(cursor, progress)
            plan = plan_page(
                page,
                self._mapping,
                source=self.name,
                prefix=self._prefix,
                after=None if cursor == START else cursor,
                observed_at=self._now(),
            )
            for skipped in plan.skipped:
                self._skips.skip(skipped)
            touched |= plan.touched
            if plan.draft is not None and page.cursor is not None:
                if page.cursor == cursor:
                    raise MalformedPage(f"postings page after {cursor} did not move the cursor")
                if _goes_back(cursor, page.cursor):
                    # A server ignoring page[after] serves old postings again; those
                    # before the baseline have no id in the ledger and would count twice.
                    raise MalformedPage(
                        f"postings page after {cursor} ends at {page.cursor}, before it"
                    )
                await self._record_page(ledger, plan.draft, page.cursor, progress)
                cursor = page.cursor
            if not page.has_more:
                return True, cursor, touched
        return False, cursor, touched

    async def _reconcile(
        self, ledger: Ledger, cursor: str, progress: _Progress, now: datetime
    ) -> None:
        entities = await self._read_state(progress)
        caught_up, _, touched = await self._follow(ledger, cursor, progress)
        if not caught_up:
            progress.caught_up = False
            progress.problems.append(
                "the feed did not catch up after the state read; reconciliation postponed"
            )
            return
        plan = await self._plan_state(
            ledger, entities, now, reason="reconciliation", exclude=frozenset(touched)
        )
        # A refused reconciliation counts as one: it is retried after the
        # interval, not on every poll (the feed itself is still being followed).
        self._last_reconcile = now
        if plan.refused is not None:
            _log.warning("source.reconcile_refused", source=self.name, reason=plan.refused)
            progress.problems += plan.problems
            progress.extra["last_reconcile_result"] = f"refused: {plan.refused}"
            return
        await self._record_state(ledger, plan, progress)
        progress.extra["last_reconcile_result"] = "ok"
        progress.extra["last_reconcile_adjusted"] = str(plan.differences)
        if plan.differences:
            _log.warning(
                "source.reconciled",
                source=self.name,
                adjusted=plan.differences,
                left_out=len(touched),
            )

    # --- ledger --------------------------------------------------------------------

    async def _plan_state(
        self,
        ledger: Ledger,
        entities: Sequence[StateEntity | Skipped],
        now: datetime,
        *,
        reason: str,
        exclude: frozenset[str] = frozenset(),
        cursor: CursorUpdate | None = None,
    ) -> StatePlan:
        skus = {
            self._mapping[e.variant_id]
            for e in entities
            if isinstance(e, StateEntity) and e.variant_id in self._mapping
        }
        balances = await ledger.balances(skus) if skus else {}
        return plan_state(
            entities,
            self._mapping,
            balances,
            source=self.name,
            prefix=self._prefix,
            key=f"state:{reason}:{self._key()}",
            observed_at=now,
            exclude=exclude,
            cursor=cursor,
            reason=reason,
        )

    async def _record_state(self, ledger: Ledger, plan: StatePlan, progress: _Progress) -> None:
        for skipped in plan.skipped:
            self._skips.skip(skipped)
        progress.problems += plan.problems
        for snapshot in plan.snapshots:
            progress.recorded += int(await ledger.record_snapshot(snapshot))
        if plan.cursor_only is not None:
            progress.recorded += int(await ledger.record(plan.cursor_only))
        progress.complete = plan.complete
        progress.extra["state_coverage"] = f"{plan.covered}/{plan.mapped}"

    async def _record_page(
        self, ledger: Ledger, draft: TransactionDraft, to: str, progress: _Progress
    ) -> None:
        try:
            recorded = await ledger.record(draft)
        except ConflictingPostingError as exc:
            # A UUID the ledger holds with another account or quantity (a
            # corrupt replay, or a variant remapped in the catalog since):
            # leave those postings out and report them, record the rest --
            # otherwise one posting would stop the feed for good.
            recorded = await ledger.record(self._without(draft, exc.external_ids))
        if recorded:
            progress.recorded += 1
            return
        # The same page was recorded before (its key exists): the cursor it
        # committed may have been moved back since, so commit it again.
        if await ledger.cursor(self.name) != to:
            await ledger.record(
                TransactionDraft(
                    kind=TransactionKind.CURSOR,
                    source=self.name,
                    key=f"cursor:{to}:{self._key()}",
                    observed_at=self._now(),
                    metadata={"reason": "page replayed"},
                    cursor=CursorUpdate(feed=self.name, value=to),
                )
            )

    def _without(self, draft: TransactionDraft, external_ids: Sequence[str]) -> TransactionDraft:
        """``draft`` minus the postings (both halves) named in ``external_ids``, each reported."""
        bad = {external_id.removesuffix(VOID_SUFFIX) for external_id in external_ids}
        for posting_id in sorted(bad):
            self._skips.skip(Skipped(posting_id, CONFLICTING_POSTING))
        kept = tuple(
            posting
            for posting in draft.postings
            if (posting.external_id or "").removesuffix(VOID_SUFFIX) not in bad
        )
        return replace(draft, postings=kept)

    # --- requests --------------------------------------------------------------------

    def _filters(self) -> list[tuple[str, QueryValue]]:
        return [("filter[locationTypes][]", value) for value in self._location_types]

    async def _postings_page(self, cursor: str, progress: _Progress) -> PostingsPage:
        params: list[tuple[str, QueryValue]] = [
            ("sort", "transaction.createdAt"),
            ("page[limit]", self._section.page_size),
            ("include", "lot"),
            *self._filters(),
        ]
        if cursor != START:
            params.append(("page[after]", cursor))
        progress.requests += 1
        response = await self._client.request("GET", POSTINGS_PATH, params=params)
        return parse_postings_page(response_json(response, api=self._client.name))

    async def _head(self, progress: _Progress) -> str | None:
        """The cursor of the newest posting, or None when the feed is empty."""
        params: list[tuple[str, QueryValue]] = [
            ("sort", "-transaction.createdAt"),
            ("page[limit]", 1),
            *self._filters(),
        ]
        progress.requests += 1
        response = await self._client.request("GET", POSTINGS_PATH, params=params)
        return parse_head(response_json(response, api=self._client.name))

    async def _nothing_after(self, head: str | None, progress: _Progress) -> bool:
        params: list[tuple[str, QueryValue]] = [
            ("sort", "transaction.createdAt"),
            ("page[limit]", 1),
            *self._filters(),
        ]
        if head is not None:
            params.append(("page[after]", head))
        progress.requests += 1
        response = await self._client.request("GET", POSTINGS_PATH, params=params)
        return parse_head(response_json(response, api=self._client.name)) is None

    async def _read_state(self, progress: _Progress) -> list[StateEntity | Skipped]:
        """Every stock-state entity, every page (a short read raises, never truncates)."""
        params: list[tuple[str, QueryValue]] = [
            ("page[limit]", self._section.page_size),
            *[("filter[status][]", status.value) for status in STATE_STATUSES],
            *self._filters(),
        ]
        entities: list[StateEntity | Skipped] = []
        async for page in paginate(self._client, STATE_PATH, params=params):
            progress.requests += 1
            for raw in page.data:
                entities.append(parse_state_entity(raw, index=len(entities)))
            for _ in range(page.dropped):
                entities.append(parse_state_entity(None, index=len(entities)))
        return entities

    # --- time -------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock.now()

    def _key(self) -> str:
        """32 hex digits, as a UUID4 would give, from the clock's stream."""
        return uuid.UUID(int=self._keys.getrandbits(128), version=4).hex

    def _reconcile_due(self, now: datetime) -> bool:
        if self._last_reconcile is None:
            return True
        elapsed = (now - self._last_reconcile).total_seconds()
        return elapsed >= self._section.reconcile_interval


def _cursor_time(cursor: str) -> float | None:
    """The timestamp part of a ``uuid,timestamp`` cursor (L13520), when it has a readable one.

    Only for a sanity check: the cursor itself is sent back whole, never rebuilt.
    """
    _, comma, stamp = cursor.partition(",")
    if not comma:
        return None
    try:
        value = float(stamp)
    except ValueError:
        try:
            value = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return value if math.isfinite(value) else None


def _goes_back(cursor: str, to: str) -> bool:
    """Whether a page asked for after ``cursor`` ends at an earlier time: the feed is
    sorted ascending by ``transaction.createdAt``, so that page cannot be right."""
    before, after = _cursor_time(cursor), _cursor_time(to)
    return before is not None and after is not None and after < before
