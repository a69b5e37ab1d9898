"""Handover: a channel order the warehouse already holds stops reserving stock.

Once Active Ants holds an order, its units are allocated there and its
``availableStock`` already excludes them (seed 001 L2743; brief
seed-activeants 4.3). Keeping the channel's reservation as well would
subtract the order twice. The reverse mistake -- releasing a reservation
before the warehouse figure reflects the order -- would count it zero times
and oversell.

**Matching rule** (``[handover] match = "external_reference"``): a channel
order ``R`` is held when Active Ants has an order whose
``externalOrderNumber`` (the "order number of external system", seed 001
L437-441, the join key shipments and returns use too, L1009-1012) equals
``reference_templates[channel]`` with ``{order_ref}`` replaced by ``R``.
The refs are the channel's own order numbers: Ankorstore's order
``reference`` (the number on labels and communication, seed 000
L4865-4868), fabric's order ``id`` and FashionTrade's ``order_number``.
``match = "none"`` disables this module: every order keeps reserving until
its channel reports it shipped, cancelled or rejected.

**Ankorstore's own orders are never handed over.** Ankorstore subtracts its
open orders from the ``stockQuantity`` syncd writes until it ships them, so
syncd writes the sellable quantity *plus* those orders' units
(:mod:`syncd.allocation`, step 5). Releasing one when the warehouse takes
it would drop it from that sum while Ankorstore still subtracts it, and when
Ankorstore then ships it (lowering ``stockQuantity`` itself) no recompute
would follow; keeping it makes the warehouse and syncd both subtract it for
that window -- an undersell until Ankorstore ships it, never an oversell
should Ankorstore cancel it meanwhile.

**The lookup.** The seed has no order read (brief seed-activeants 4.3), so
syncd asks Active Ants' v3 orders listing, filtered with the seed's v3
filter syntax (L2647): ``GET v3/orders?filter[externalOrderNumber][in]=a,b``
([EXT], modelled by the sandbox, ``syncd/sandbox/activeants_v3.py``).
References are asked in batches of ``batch_size`` and a poll spends at most
``max_requests`` requests; orders left unasked keep their previous state.

**Brand-protecting choices.**

* Only a positive answer makes an order held. An order never confirmed, or
  whose lookup failed, keeps reserving: that can undersell for a while,
  never oversell.
* A failed lookup keeps the *previous known* state of the orders it covered
  (a confirmed order stays held): an outage neither double-counts nor drops
  a reservation.
* An order confirmed held only stops reserving once the warehouse stock feed
  (``settle_feed``, the ``activeants`` source) has succeeded *after* the
  confirmation, i.e. once the ledger's warehouse figure includes the
  order's allocation. Until then both subtract it (a brief undersell)
  rather than neither (an oversell).
* The state is kept in memory: after a restart every order reserves again
  until it is re-confirmed and the warehouse has been read once more.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from syncd.clock import Clock
from syncd.http.client import ApiClient
from syncd.http.errors import HttpError
from syncd.http.jsonapi import paginate
from syncd.ledger.store import Ledger
from syncd.sources.jsonvalues import opaque_id
from syncd.sources.orders_model import as_object

_log = structlog.get_logger(__name__)

ORDERS_PATH = "v3/orders"
"""Active Ants' v3 order listing ([EXT]; seed 001 names v3 orders only for writes, L432)."""
PAGE_SIZE = 100
DEFAULT_BATCH_SIZE = 50
"""References per lookup: keeps the query string short (about 2 kB) and within one page."""
DEFAULT_MAX_REQUESTS = 20
"""Lookups per poll per channel; orders beyond them keep their previous state."""
WAREHOUSE_FEED = "activeants"

OrderKey = tuple[str, str]
"""(channel, order_ref)."""


@dataclass(slots=True)
class HandoverState:
    """Which channel orders the warehouse confirmed, and since when (pure)."""

    confirmed: dict[OrderKey, float] = field(default_factory=dict)
    """When each confirmation was seen, on the monotonic clock."""

    def record(
        self, channel: str, asked: Iterable[str], found: Collection[str], at: float
    ) -> tuple[list[str], list[str]]:
        """Apply one successful lookup; returns (newly confirmed, withdrawn) refs."""
        added: list[str] = []
        withdrawn: list[str] = []
        for ref in asked:
            key = (channel, ref)
            if ref in found:
                if key not in self.confirmed:
                    self.confirmed[key] = at
                    added.append(ref)
            elif self.confirmed.pop(key, None) is not None:
                withdrawn.append(ref)
        return added, withdrawn

    def prune(self, channel: str, open_refs: Collection[str]) -> None:
        """Forget orders of ``channel`` that are no longer open (only after a complete listing)."""
        for key in [k for k in self.confirmed if k[0] == channel and k[1] not in open_refs]:
            del self.confirmed[key]

    def is_confirmed(self, channel: str, ref: str) -> bool:
        return (channel, ref) in self.confirmed

    def held(
        self,
        channel: str,
        refs: Iterable[str],
        *,
        gated: bool,
        warehouse_read_at: float | None,
    ) -> frozenset[str]:
        """Refs that stop reserving: confirmed, and (when ``gated``) read by the warehouse feed since."""
        held: set[str] = set()
        for ref in refs:
            since = self.confirmed.get((channel, ref))
            if since is None:
                continue
            if not gated or (warehouse_read_at is not None and warehouse_read_at > since):
                held.add(ref)
        return frozenset(held)


@dataclass(frozen=True, slots=True)
class HandoverResult:
    held: frozenset[str]
    """Order refs the warehouse holds: record them with ``held_by_warehouse=True``."""
    requests: int = 0
    problems: tuple[str, ...] = ()


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Handover:
    """Asks Active Ants which channel orders it holds (see the module docstring)."""

    def __init__(
        self,
        client: ApiClient,
        templates: Mapping[str, str],
        *,
        clock: Clock,
        settle_feed: str | None = WAREHOUSE_FEED,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        orders_path: str = ORDERS_PATH,
    ) -> None:
        if not 1 <= batch_size <= PAGE_SIZE:
            raise ValueError(f"batch_size must be within 1..{PAGE_SIZE}")
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self._client = client
        self._templates = dict(templates)
        self._clock = clock
        self._settle_feed = settle_feed
        self._batch_size = batch_size
        self._max_requests = max_requests
        self._orders_path = orders_path
        self.state = HandoverState()

    def reference(self, channel: str, order_ref: str) -> str | None:
        """The warehouse's ``externalOrderNumber`` for a channel order (None: no template)."""
        template = self._templates.get(channel)
        if template is None:
            return None
        # Plain replacement: an order ref containing braces cannot inject anything.
        return template.replace("{order_ref}", order_ref)

    async def resolve(
        self, ledger: Ledger, channel: str, order_refs: Collection[str], *, prune: bool
    ) -> HandoverResult:
        """Which of ``order_refs`` the warehouse holds now (previous state where unknown).

        ``prune`` forgets confirmations of orders absent from ``order_refs``;
        pass it only for a complete listing of the channel's open orders.
        """
        references = self._references(channel, order_refs)
        requests, problems = await self._ask(channel, references)
        if prune:
            self.state.prune(channel, order_refs)
        warehouse_read_at = await self._warehouse_read_at(ledger)
        held = self.state.held(
            channel,
            order_refs,
            gated=self._settle_feed is not None,
            warehouse_read_at=warehouse_read_at,
        )
        return HandoverResult(held=held, requests=requests, problems=tuple(problems))

    def _references(self, channel: str, order_refs: Collection[str]) -> dict[str, str]:
        """Warehouse reference per order ref, for the refs that can be asked about."""
        references: dict[str, str] = {}
        for ref in sorted(order_refs):
            reference = self.reference(channel, ref)
            if reference is None:
                continue
            if "," in reference:
                # The filter's list separator: such a reference cannot be asked for.
                _log.warning(
                    "handover.unaskable", channel=channel, order_ref=ref, reason="comma in ref"
                )
                continue
            references[ref] = reference
        return references

    async def _ask(self, channel: str, references: Mapping[str, str]) -> tuple[int, list[str]]:
        """Look ``references`` up in batches within the budget; returns (requests, problems)."""
        # Monotonic: "read after the confirmation" must not depend on where the
        # wall clock was stepped in between (see _warehouse_read_at).
        now = self._clock.monotonic()
        # Orders still reserving are asked first: a confirmation releases stock sooner.
        ordered = sorted(references, key=lambda r: (self.state.is_confirmed(channel, r), r))
        requests = 0
        asked = 0
        for batch in _chunks(ordered, self._batch_size):
            budget = self._max_requests - requests
            if budget < 1:
                break
            try:
                found, used = await self._lookup([references[r] for r in batch], budget)
            except _LookupFailed as failure:
                _log.warning(
                    "handover.lookup_failed",
                    channel=channel,
                    orders=len(batch),
                    error=str(failure.error),
                )
                return requests + failure.requests, [f"handover lookup failed: {failure.error}"]
            requests += used
            asked += len(batch)
            hits = {ref for ref in batch if references[ref] in found}
            added, withdrawn = self.state.record(channel, batch, hits, now)
            for ref in added:
                _log.info(
                    "handover.confirmed", channel=channel, order_ref=ref, reference=references[ref]
                )
            for ref in withdrawn:
                _log.warning(
                    "handover.withdrawn", channel=channel, order_ref=ref, reference=references[ref]
                )
        if asked < len(ordered):
            left = len(ordered) - asked
            return requests, [f"handover: {left} orders not asked this poll (request budget)"]
        return requests, []

    async def _lookup(self, references: Sequence[str], budget: int) -> tuple[set[str], int]:
        """The references Active Ants knows, and the requests that took."""
        found: set[str] = set()
        pages = 0
        params = {
            "filter[externalOrderNumber][in]": ",".join(references),
            "page[size]": str(PAGE_SIZE),
        }
        try:
            async for page in paginate(
                self._client, self._orders_path, params=params, max_pages=budget
            ):
                pages += 1
                for resource in page.data:
                    attributes = as_object(resource.get("attributes")) or {}
                    number = opaque_id(attributes.get("externalOrderNumber"))
                    if number is not None:
                        found.add(number)
        except HttpError as exc:
            raise _LookupFailed(exc, pages + 1) from exc
        return found, pages

    async def _warehouse_read_at(self, ledger: Ledger) -> float | None:
        """When the warehouse feed last succeeded in this process, on the monotonic clock.

        Comparing wall times would let a clock stepped back keep a handed-over
        order reserved until the wall caught up (an undersell for as long as
        the step), and one stepped forward release it before the warehouse
        read that excludes it (an oversell). None: not read since the start.
        """
        if self._settle_feed is None:
            return None
        age = ledger.freshness.age(self._settle_feed)
        return None if age is None else self._clock.monotonic() - age


class _LookupFailed(Exception):
    def __init__(self, error: HttpError, requests: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.requests = requests
