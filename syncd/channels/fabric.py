"""The fabric channel: absolute inventory writes at the configured rate, confirmed in bulk.

syncd's user is a *supplier* on fabric Marketplace (Dropship), and the
supplier-side write is not in the seed, which documents only the retailer
reads (seed 003 L4859-4957; brief seed-fabric 0). fabric's public docs point
to ``PATCH /v1/brands/{brand_id}/inventory/{id}/`` with an absolute
``inventory`` (brief fabric-supplier-api 0, 3). So the whole write is kept
behind this adapter and every part of it comes from config
(``[channels.fabric]`` ``write_method``, ``write_path``, ``write_body``,
``list_path``): when fabric confirms the real call, only the config changes.

**No bulk write, so writes go out side by side.** fabric's bulk inventory
paths are files (EDI 846 over SFTP, CSV imports), not REST (brief
fabric-supplier-api 7): each variant is one write. A push call takes a
batch of up to ``per_request`` updates (as many as the rate window holds,
at most :data:`MAX_BATCH`) and sends their writes concurrently, at most
:data:`MAX_IN_FLIGHT` at a time, each only once the rate limiter has a slot
for it, one class of move after the other (every decrease is answered before
the first increase leaves) -- so the configured rate is used in full and never exceeded, and a
first sync of N SKUs takes about N / rate minutes. ``requests_available``
counts such batches.

Per update:

1. a negative quantity is parked and never sent (fabric would silently
   store 0, brief fabric-supplier-api 4);
2. the SKU is mapped to fabric's inventory-item id
   (:mod:`syncd.channels.fabric_inventory_map`; a miss re-reads the list);
   a SKU fabric does not list is parked;
3. the write is sent as idempotent (the value is absolute): the HTTP layer
   waits out 429s as ``Retry-After`` says and retries 5xx and timeouts;
   a 404 means the cached id went stale, so the map is re-read and the
   write retried once with the new id;
4. with ``readback = true`` the update is acknowledged only when fabric
   shows the value written. The whole batch is confirmed by **one list
   read** of the items fabric changed since just before the first write,
   newest first (``updated_at_gte``, ``order_by=-inventory_updated_at``,
   seed 003 L4866-4874), which stops as soon as every written item was
   seen -- one page for a batch, instead of one GET per item. An item that
   slice does not show is read on its own (GET on the item, the supplier's
   documented read, brief fabric-supplier-api 1). A different value is
   reported as failed with ``readback_mismatch`` -- usually an order fabric
   decremented in between (managed inventory, brief fabric-supplier-api 4),
   which the engine must ingest before it sends more. Without read-back,
   the write's own answer is checked when it carries the field.

A 400/422 refusal parks the SKU only once a write has succeeded on this
channel: before that, a refusal more likely means the configured body or
path is wrong, and parking every SKU for it would hide the real problem.

**Read-back for drift** (:meth:`FabricChannel.read_live`) reads the whole
list at start and then once a day (:data:`FULL_READ_EVERY_S`); in between,
only the items fabric changed since the last read (from a margin before
it), merged into the map -- at 100 000 variants a few requests an hour
instead of ``items / page size``. No page-size parameter is documented for
fabric's lists (brief seed-fabric 2.4), so syncd sends none and follows
``next``.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import anyio
import httpx
import structlog

from syncd.channels.base import LiveValue, PushResult
from syncd.channels.fabric_inventory_map import (
    DEFAULT_MIN_REFRESH_INTERVAL,
    InventoryItem,
    InventoryMap,
    parse_item,
)
from syncd.channels.fabric_values import (
    batch_size,
    field_value,
    live_values,
    pace_window,
)
from syncd.channels.updates import PlannedUpdate
from syncd.clock import Clock
from syncd.config.sections import FabricChannelSection
from syncd.http.client import ApiClient
from syncd.http.errors import ApiError, HttpError, RateLimited
from syncd.http.ratelimit import RateLimiter
from syncd.model import Catalog

_log = structlog.get_logger(__name__)

READBACK_MISMATCH = "readback_mismatch"
"""Prefix of the failure reason when fabric shows another value than the one written."""

MAX_IN_FLIGHT = 8
"""Most writes in flight at once: enough to use a rate of a few per second over a
slow connection, few enough to be polite to an API that documents no limit."""
CLOCK_MARGIN_S = 120.0
"""``updated_at_gte`` asks from this much before syncd's own clock: fabric's may lag."""
FULL_READ_EVERY_S = 86_400.0
"""A drift read-back reads the whole list when the last full read is older than this."""

_REFUSALS = frozenset({400, 422})
"""Answers about the value or the item (DRF ``{field: [message]}``, brief seed-fabric 2.6)."""
_REPLY_CHARS = 300


_NO_PACKS: Mapping[str, int] = MappingProxyType({})


@dataclass(slots=True)
class _Written:
    """A write fabric answered with 2xx, waiting to be confirmed."""

    update: PlannedUpdate
    item: InventoryItem
    response: httpx.Response


class FabricChannel:
    """Publishes sellable units to fabric, one write per variant (module docstring)."""

    name = "fabric"
    adds_own_orders = False
    lowers_on_order = True
    """fabric lowers its managed inventory itself when an order arrives (brief
    fabric-supplier-api 4): increases wait until syncd has read its orders."""

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: FabricChannelSection,
        *,
        brand_id: str,
        retailer_id: str | None,
        clock: Clock,
        min_map_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
    ) -> None:
        self._client = client
        self._clock = clock
        self._brand_id = brand_id
        self.retailer_id = retailer_id
        """Kept for retailer-side reads; the supplier list and GET need only the brand."""
        self._method = section.write_method
        self._write_path = section.write_path
        self._field = section.write_body
        self._readback = section.readback
        self._reserve = 1.0 - section.budget_share
        self._pace = (
            RateLimiter(
                (pace_window(section.requests_per_minute),), clock=clock, name="fabric-channel"
            )
            if section.requests_per_minute is not None
            else None
        )
        self.per_request = batch_size(
            client.limiter.windows,
            self._reserve,
            self._pace.windows if self._pace is not None else (),
            confirming_reads=1 if self._readback else 0,
        )
        """Updates per push call (not per HTTP request: each update is its own write)."""
        self._map = InventoryMap(
            client,
            section.list_path.format(brand_id=brand_id),
            clock=clock,
            reserve=self._reserve,
            min_refresh_interval=min_map_refresh_interval,
            channel=self.name,
        )
        self._write_seen_ok = False
        self._map_lock = anyio.Lock()
        # fabric knows the brand's SKU as ``brand_identifier``: ``fabric_sku``
        # when the catalog names one, else syncd's own SKU.
        self._identifier = {
            sku: variant.fabric_sku or sku for sku, variant in catalog.variants.items()
        }
        self._sku_by_identifier = {ident: sku for sku, ident in self._identifier.items()}

    # --- Channel protocol -----------------------------------------------------

    def requests_available(self) -> int:
        """Batches (push calls) to plan now: each is ``per_request`` writes and, with
        ``readback``, one confirming list read.

        At least one as soon as one request fits: the batch's writes then go
        out as the window frees slots (each waits for its own), so planning
        never waits for a whole batch's worth of room.
        """
        available = self._free_slots()
        if available <= 0:
            return 0
        return max(1, available // (self.per_request + (1 if self._readback else 0)))

    async def budget_available(self) -> None:
        """Return once a request fits this channel's share and pace."""
        while self._free_slots() <= 0:
            await self._client.limiter.wait_for_slot(reserve=self._reserve)
            if self._pace is not None:
                await self._pace.wait_for_slot()

    def pack_sizes(self) -> Mapping[str, int]:
        """fabric sells single units: no pack of its own."""
        return _NO_PACKS

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        result = PushResult()
        targets = await self._resolve_all(batch, result)
        # fabric stamps each write on its own clock; ask from a margin before ours.
        since = self._clock.wall() - CLOCK_MARGIN_S
        written: list[_Written] = []
        # Side by side within a class of move only: every decrease is answered before
        # the first increase leaves (the planner's order protects against overselling).
        for _, group in itertools.groupby(targets, key=lambda target: target[0].move):
            written += await self._write_all(list(group), result)
        await self._confirm_all(written, since, result)
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        """What fabric shows now (its managed ``inventory``, in units) per SKU.

        None for items with ``inventory_policy`` ``unmanaged`` (fabric shows
        999 for them whatever the brand sends, brief fabric-supplier-api 4).
        Reads the whole supplier list (which also refreshes the SKU map) when
        all SKUs are asked for or the last full read is older than
        :data:`FULL_READ_EVERY_S`; otherwise only the items fabric changed
        since the last read, merged into the map. SKUs fabric does not list
        are absent from the result.
        """
        items: Iterable[InventoryItem]
        read_wall = self._map.read_wall
        if skus is not None and read_wall is not None and self._map.read_within(FULL_READ_EVERY_S):
            _, _, consistent = await self._map.read_updated_since(read_wall - CLOCK_MARGIN_S)
            if not consistent:  # an item re-created or duplicated: only a full read can tell
                await self._map.refresh()
            items = list(self._map.items())
        else:
            items, _ = await self._map.refresh()
        return live_values(items, self._sku_by_identifier, skus)

    async def aclose(self) -> None:
        """Nothing to release: the fabric client is shared and closed by its owner."""

    # --- a batch: resolve, write side by side, confirm together -----------------

    async def _resolve_all(
        self, batch: Sequence[PlannedUpdate], result: PushResult
    ) -> list[tuple[PlannedUpdate, InventoryItem]]:
        """Each update's fabric item, one after the other: a miss re-reads the list once."""
        targets: list[tuple[PlannedUpdate, InventoryItem]] = []
        for update in batch:
            if update.quantity < 0:
                self._park(result, update, f"refused: negative quantity {update.quantity}")
                continue
            identifier = self._identifier.get(update.sku, update.sku)
            try:
                item, spent = await self._map.resolve(identifier)
                result.requests += spent
            except HttpError as exc:
                self._fail(result, update, f"could not read the fabric inventory list: {exc}", exc)
                continue
            if item is None:
                claimed = self._map.ambiguous(identifier)
                self._park(
                    result,
                    update,
                    f"ambiguous: fabric lists {len(claimed)} inventory items with "
                    f"brand_identifier {identifier!r} (ids {', '.join(map(str, claimed))}); "
                    "none is written"
                    if claimed
                    else f"fabric lists no inventory item with brand_identifier {identifier!r}",
                )
                continue
            targets.append((update, item))
        return targets

    async def _write_all(
        self, targets: Sequence[tuple[PlannedUpdate, InventoryItem]], result: PushResult
    ) -> list[_Written]:
        """Send the writes concurrently, in batch order, each once the budget has a slot."""
        written: list[_Written] = []
        in_flight = anyio.Semaphore(MAX_IN_FLIGHT)
        try:
            async with anyio.create_task_group() as group:
                for update, item in targets:
                    await in_flight.acquire()
                    # Start each write only when it can go out now, so the writes leave in
                    # the planner's order (decreases first) rather than racing for slots.
                    await self.budget_available()
                    group.start_soon(self._write_one, update, item, result, written, in_flight)
        except BaseExceptionGroup as failures:
            # What escapes a write (not an HTTP error: those are results) ends the batch
            # as it would have one write at a time: the caller sees that error, not a group.
            raise _first_leaf(failures) from None
        return written

    async def _write_one(
        self,
        update: PlannedUpdate,
        item: InventoryItem,
        result: PushResult,
        written: list[_Written],
        in_flight: anyio.Semaphore,
    ) -> None:
        try:
            identifier = self._identifier.get(update.sku, update.sku)
            for attempt in (1, 2):
                try:
                    response = await self._write(item.inventory_id, update.quantity, result)
                except ApiError as exc:
                    if exc.status == 404 and attempt == 1 and not isinstance(exc, RateLimited):
                        fresh = await self._re_resolve(identifier, item, update, result)
                        if fresh is None:
                            return
                        item = fresh
                        continue
                    self._refused(result, update, exc)
                    return
                except HttpError as exc:
                    self._fail(result, update, str(exc), exc)
                    return
                self._write_seen_ok = True
                written.append(_Written(update, item, response))
                return
        finally:
            in_flight.release()

    async def _re_resolve(
        self, identifier: str, stale: InventoryItem, update: PlannedUpdate, result: PushResult
    ) -> InventoryItem | None:
        """After a 404: the id changed? Re-read the list; park when fabric still has no item."""
        async with self._map_lock:  # several 404s in one batch: one re-read serves them all
            current = self._map.get(identifier)
            item: InventoryItem | None
            if current is not None and current.inventory_id != stale.inventory_id:
                item = current
            else:
                self._map.forget(identifier)
                try:
                    item, spent = await self._map.resolve(identifier, force=True)
                    result.requests += spent
                except HttpError as exc:
                    self._fail(
                        result, update, f"could not read the fabric inventory list: {exc}", exc
                    )
                    return None
        if item is None or item.inventory_id == stale.inventory_id:
            self._park(
                result,
                update,
                f"fabric answers 404 for inventory item {stale.inventory_id} "
                f"(brand_identifier {identifier!r})",
            )
            return None
        _log.info(
            "channel.inventory_id_changed",
            channel=self.name,
            sku=update.sku,
            old=stale.inventory_id,
            new=item.inventory_id,
        )
        return item

    async def _write(self, inventory_id: int, quantity: int, result: PushResult) -> httpx.Response:
        if quantity < 0:  # guarded by the caller; kept so no path can ever send one
            raise ValueError(f"refusing to send a negative inventory ({quantity})")
        path = self._item_path(inventory_id)
        await self._paced()
        result.requests += 1
        response = await self._client.request(
            self._method,
            path,
            json={self._field: quantity},
            idempotent=True,
            reserve=self._reserve,
        )
        request_id = response.request.headers.get("x-request-id", "")
        if request_id:
            result.request_ids.append(request_id)
        return response

    async def _confirm_all(
        self, written: Sequence[_Written], since: float, result: PushResult
    ) -> None:
        """Acknowledge only what fabric shows back; report a different value."""
        if not written:
            return
        if not self._readback:
            for entry in written:
                self._judge(entry, field_value(entry.response, self._field), result)
            return
        ids = {entry.item.inventory_id for entry in written}
        try:
            await self._paced()
            shown, spent, _ = await self._map.read_updated_since(since, until_seen=ids)
            result.requests += spent
        except HttpError as exc:
            for entry in written:
                self._fail(result, entry.update, f"written but not confirmed: {exc}", exc)
            return
        for entry in written:
            fresh = shown.get(entry.item.inventory_id)
            if fresh is None:  # not in the slice (clock far off, list shifted): read it alone
                try:
                    fresh = await self._read_item(entry.item.inventory_id, result)
                except HttpError as exc:
                    self._fail(result, entry.update, f"written but not confirmed: {exc}", exc)
                    continue
                if fresh is not None:
                    self._map.remember(fresh)
            if fresh is None or fresh.inventory is None:
                self._fail(
                    result, entry.update, "written but the read-back carries no inventory", None
                )
                continue
            self._judge(entry, fresh.inventory, result)

    def _judge(self, entry: _Written, shown: int | None, result: PushResult) -> None:
        update = entry.update
        if shown is not None and shown != update.quantity:
            reason = (
                f"{READBACK_MISMATCH}: fabric shows {shown} after syncd wrote {update.quantity} "
                f"(inventory item {entry.item.inventory_id})"
            )
            _log.warning(
                "channel.readback_mismatch",
                channel=self.name,
                sku=update.sku,
                written=update.quantity,
                shown=shown,
            )
            self._fail(result, update, reason, None)
            return
        result.acknowledged.append(update)
        result.reply = f"{entry.response.status_code} inventory {update.quantity}"
        _log.info(
            "channel.pushed",
            channel=self.name,
            sku=update.sku,
            inventory=update.quantity,
            confirmed=self._readback,
        )

    async def _read_item(
        self, inventory_id: int, result: PushResult | None = None
    ) -> InventoryItem | None:
        await self._paced()
        if result is not None:
            result.requests += 1
        document = await self._client.get_json(self._item_path(inventory_id), reserve=self._reserve)
        return parse_item(document) if isinstance(document, dict) else None

    # --- helpers ----------------------------------------------------------------

    def _free_slots(self) -> int:
        available = self._client.limiter.available(reserve=self._reserve)
        if self._pace is not None:
            available = min(available, self._pace.available())
        return available

    def _item_path(self, inventory_id: int) -> str:
        return self._write_path.format(brand_id=self._brand_id, inventory_id=inventory_id)

    async def _paced(self) -> None:
        if self._pace is not None:
            await self._pace.acquire(reserve=0.0)

    def _refused(self, result: PushResult, update: PlannedUpdate, exc: ApiError) -> None:
        if exc.status in _REFUSALS and self._write_seen_ok:
            self._park(result, update, f"fabric refused: {_clip(f'{exc.status} {exc.body}')}")
            return
        self._fail(result, update, str(exc), exc)

    def _fail(
        self, result: PushResult, update: PlannedUpdate, reason: str, exc: HttpError | None
    ) -> None:
        if exc is not None and exc.request_id:
            result.request_ids.append(exc.request_id)
        reason = _clip(reason)
        result.failed.append((update, reason))
        result.reply = reason
        _log.warning("channel.push_failed", channel=self.name, sku=update.sku, error=reason)

    def _park(self, result: PushResult, update: PlannedUpdate, reason: str) -> None:
        result.parked.append((update, reason))
        _log.warning("channel.parked", channel=self.name, sku=update.sku, reason=reason)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _clip(text: str) -> str:
    return text[:_REPLY_CHARS]
