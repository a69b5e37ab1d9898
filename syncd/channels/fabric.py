"""The fabric channel: one absolute inventory write per SKU, confirmed by reading it back.

syncd's user is a *supplier* on fabric Marketplace (Dropship), and the
supplier-side write is not in the seed, which documents only the retailer
reads (seed 003 L4859-4957; brief seed-fabric 0). fabric's public docs point
to ``PATCH /v1/brands/{brand_id}/inventory/{id}/`` with an absolute
``inventory`` (brief fabric-supplier-api 0, 3). So the whole write is kept
behind this adapter and every part of it comes from config
(``[channels.fabric]`` ``write_method``, ``write_path``, ``write_body``,
``list_path``): when fabric confirms the real call, only the config changes.

**No bulk.** fabric's bulk inventory paths are files (EDI 846 over SFTP,
CSV imports), not REST (brief fabric-supplier-api 7), so this channel sends
one request per variant: ``per_request`` is 1 and the planner's batches are
single updates.

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
4. with ``readback = true`` the item is read back (GET on the same path,
   the supplier's documented read, brief fabric-supplier-api 1) and the
   update is acknowledged only when fabric shows the value written. A
   different value is reported as failed with ``readback_mismatch`` --
   usually an order fabric decremented in between (managed inventory,
   brief fabric-supplier-api 4), which the engine must ingest before it
   sends more. Without read-back, the write's own answer is checked when it
   carries the field.

A 400/422 refusal parks the SKU only once a write has succeeded on this
channel: before that, a refusal more likely means the configured body or
path is wrong, and parking every SKU for it would hide the real problem.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import httpx
import structlog

from syncd.channels.base import LiveValue, PushResult, larger_shown
from syncd.channels.fabric_inventory_map import (
    DEFAULT_MIN_REFRESH_INTERVAL,
    InventoryItem,
    InventoryMap,
    parse_item,
    parse_quantity,
)
from syncd.channels.updates import PlannedUpdate
from syncd.clock import Clock
from syncd.config.sections import FabricChannelSection
from syncd.http.budget import Window
from syncd.http.client import ApiClient, response_json
from syncd.http.errors import ApiError, HttpError, RateLimited
from syncd.http.ratelimit import RateLimiter
from syncd.model import Catalog

_log = structlog.get_logger(__name__)

READBACK_MISMATCH = "readback_mismatch"
"""Prefix of the failure reason when fabric shows another value than the one written."""

_REFUSALS = frozenset({400, 422})
"""Answers about the value or the item (DRF ``{field: [message]}``, brief seed-fabric 2.6)."""
_REPLY_CHARS = 300


def _pace_window(per_minute: float) -> Window:
    """A channel's own write pace as one rate window (fractions become longer windows)."""
    if per_minute >= 1:
        return Window(math.floor(per_minute), 60.0)
    return Window(1, 60.0 / per_minute)


_NO_PACKS: Mapping[str, int] = MappingProxyType({})


class FabricChannel:
    """Publishes sellable units to fabric, one variant per request (module docstring)."""

    name = "fabric"
    per_request = 1
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
                (_pace_window(section.requests_per_minute),), clock=clock, name="fabric-channel"
            )
            if section.requests_per_minute is not None
            else None
        )
        self._map = InventoryMap(
            client,
            section.list_path.format(brand_id=brand_id),
            clock=clock,
            reserve=self._reserve,
            min_refresh_interval=min_map_refresh_interval,
            channel=self.name,
        )
        self._write_seen_ok = False
        # fabric knows the brand's SKU as ``brand_identifier``: ``fabric_sku``
        # when the catalog names one, else syncd's own SKU.
        self._identifier = {
            sku: variant.fabric_sku or sku for sku, variant in catalog.variants.items()
        }
        self._sku_by_identifier = {ident: sku for sku, ident in self._identifier.items()}

    # --- Channel protocol -----------------------------------------------------

    def requests_available(self) -> int:
        """Updates that fit now: each costs a write, plus a read when ``readback`` is on."""
        available = self._client.limiter.available(reserve=self._reserve)
        if self._pace is not None:
            available = min(available, self._pace.available())
        return available // (2 if self._readback else 1)

    def pack_sizes(self) -> Mapping[str, int]:
        """fabric sells single units: no pack of its own."""
        return _NO_PACKS

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        result = PushResult()
        for update in batch:
            await self._push_one(update, result)
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        """What fabric shows now (its managed ``inventory``, in units) per SKU.

        None for items with ``inventory_policy`` ``unmanaged`` (fabric shows
        999 for them whatever the brand sends, brief fabric-supplier-api 4).
        Reads the whole supplier list (which also refreshes the SKU map), or
        only the given SKUs' items when that takes fewer requests. SKUs fabric
        does not list are absent from the result.
        """
        items: list[InventoryItem]
        known = (
            [item for s in skus if (item := self._map.get(self._identifier.get(s, s)))]
            if skus is not None
            else []
        )
        if skus is not None and known and len(known) < max(1, self._map.page_count):
            items = []
            for item in known:
                fresh = await self._read_item(item.inventory_id)
                if fresh is not None:
                    self._map.remember(fresh)
                    items.append(fresh)
        else:
            items, _ = await self._map.refresh()
        wanted = set(skus) if skus is not None else None
        live: dict[str, LiveValue] = {}
        for item in items:
            sku = self._sku_by_identifier.get(item.brand_identifier)
            if sku is None or (wanted is not None and sku not in wanted):
                continue
            unmanaged = item.inventory_policy == "unmanaged"
            live[sku] = larger_shown(
                live.get(sku),
                LiveValue(
                    sku=sku,
                    sellable=None if unmanaged else item.inventory,
                    written=None if unmanaged else item.inventory,
                    raw={
                        "inventoryId": item.inventory_id,
                        "inventory": item.inventory,
                        "inventory_policy": item.inventory_policy,
                        "inventory_updated_at": item.inventory_updated_at,
                        "sellable": item.sellable,
                    },
                ),
            )
        return live

    async def aclose(self) -> None:
        """Nothing to release: the fabric client is shared and closed by its owner."""

    # --- one update -------------------------------------------------------------

    async def _push_one(self, update: PlannedUpdate, result: PushResult) -> None:
        if update.quantity < 0:
            self._park(result, update, f"refused: negative quantity {update.quantity}")
            return
        identifier = self._identifier.get(update.sku, update.sku)
        try:
            item, spent = await self._map.resolve(identifier)
            result.requests += spent
        except HttpError as exc:
            self._fail(result, update, f"could not read the fabric inventory list: {exc}", exc)
            return
        if item is None:
            claimed = self._map.ambiguous(identifier)
            self._park(
                result,
                update,
                f"ambiguous: fabric lists {len(claimed)} inventory items with brand_identifier "
                f"{identifier!r} (ids {', '.join(map(str, claimed))}); none is written"
                if claimed
                else f"fabric lists no inventory item with brand_identifier {identifier!r}",
            )
            return
        for attempt in (1, 2):
            try:
                response = await self._write(item.inventory_id, update.quantity, result)
            except ApiError as exc:
                if exc.status == 404 and attempt == 1 and not isinstance(exc, RateLimited):
                    item = await self._re_resolve(identifier, item, update, result)
                    if item is None:
                        return
                    continue
                self._refused(result, update, exc)
                return
            except HttpError as exc:
                self._fail(result, update, str(exc), exc)
                return
            self._write_seen_ok = True
            await self._confirm(update, item, response, result)
            return

    async def _re_resolve(
        self, identifier: str, stale: InventoryItem, update: PlannedUpdate, result: PushResult
    ) -> InventoryItem | None:
        """After a 404: the id changed? Re-read the list; park when fabric still has no item."""
        self._map.forget(identifier)
        try:
            item, spent = await self._map.resolve(identifier, force=True)
            result.requests += spent
        except HttpError as exc:
            self._fail(result, update, f"could not read the fabric inventory list: {exc}", exc)
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

    async def _confirm(
        self,
        update: PlannedUpdate,
        item: InventoryItem,
        response: httpx.Response,
        result: PushResult,
    ) -> None:
        """Acknowledge only what fabric shows back; report a different value."""
        shown: int | None
        if self._readback:
            try:
                fresh = await self._read_item(item.inventory_id, result)
            except HttpError as exc:
                self._fail(result, update, f"written but not confirmed: {exc}", exc)
                return
            shown = fresh.inventory if fresh is not None else None
            if fresh is not None:
                self._map.remember(fresh)
            if shown is None:
                self._fail(result, update, "written but the read-back carries no inventory", None)
                return
        else:
            shown = _field_value(response, self._field)
        if shown is not None and shown != update.quantity:
            reason = (
                f"{READBACK_MISMATCH}: fabric shows {shown} after syncd wrote {update.quantity} "
                f"(inventory item {item.inventory_id})"
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
        result.reply = f"{response.status_code} inventory {update.quantity}"
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


def _field_value(response: httpx.Response, field: str) -> int | None:
    """The written field in the write's own answer, when it is a JSON object carrying it."""
    try:
        document: Any = response_json(response)
    except HttpError:
        return None
    return parse_quantity(document.get(field)) if isinstance(document, dict) else None


def _clip(text: str) -> str:
    return text[:_REPLY_CHARS]
