"""The Ankorstore channel: absolute stock through ``POST /api/v1/operations``.

One request carries up to ``operations_per_request`` (<= 50) ``update``
operations on ``product-variants`` (seed 000 L636-669, L12856-12918;
specs/SOURCES.md for the type), each setting ``stockQuantity`` so that
Ankorstore's ``availableQuantity`` equals the sellable units syncd computed
(:mod:`syncd.channels.ankorstore_ops` explains the sum and the packs).

Per push:

1. a negative quantity is parked, never sent;
2. SKUs whose catalog row has no Ankorstore variant id are looked up by SKU;
3. ``reservedQuantity`` is re-read for the batch's variants whose cached
   listing is older than ``reserved_max_age``, or older than the order
   listing syncd's numbers were computed from (:meth:`AnkorstoreChannel.orders_observed`)
   -- one ``filter[id][]`` request per batch at most. Why pay for it: the
   ledger already subtracts every open order syncd has seen, so the reserved
   figure added back must count those same orders. A stale, *larger* figure
   (an order cancelled since) would publish that many units too many; a
   stale, *smaller* one (an order placed since) would subtract the new order
   twice -- and, the order being ingested, nothing would correct it until the
   SKU changed again. If that read fails the batch fails and stays pending:
   guessing could oversell;
4. a variant whose ``reservedQuantity`` is beyond any real stock (more than
   ``MAX_UNITS``, e.g. ``10**30``) is parked with the figure, never added to
   what is sent; variants Ankorstore marks ``isAlwaysInStock`` are parked with a reason
   when ``always_in_stock = "leave"`` -- writing a quantity would switch the
   flag off (seed 000 L602) -- so the outbox stops retrying them and the
   status shows why; ``"manage"`` writes the quantity like any other;
5. the request is sent as an absolute (idempotent) write: the HTTP layer
   waits out 429s and retries 5xx and timeouts with the same body; once it
   gives up, the batch is returned as failed;
6. a 200 acknowledges the batch only when its body is the documented
   ``atomic:results`` answer, one result per operation
   (:func:`~syncd.channels.ankorstore_ops.unconfirmed_reason`, seed 000
   L12890-12918). An HTML page, ``OK`` or a cut or empty document with status
   200 proves nothing landed: the batch fails, stays pending and is resent.

**Partial refusal.** The documents do not say whether a bulk request is
all-or-nothing (brief 4.6, 9.3). Either way the answer is handled the same:
operations named by an error pointer (``/atomic:operations/3/...``) are
parked with the error, and the others are sent again -- harmless if they were
already applied, since the values are absolute. An error naming no operation
is narrowed down by splitting the batch in halves; a lone operation refused
with 422 is parked.

Parking is sticky (until an operator unparks), so nothing is parked on
evidence that may concern the request rather than the variant. Until the
endpoint has answered 200 once, a 404 naming no operation fails the batch
(a wrong base URL must fail loudly, not park the catalog), and several
operations refused for the very same reason are not parked at once: the
others are sent first, and the refused ones are parked only when they are
refused again after a write has landed. If every operation is refused alike,
the batch fails and stays pending.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
import structlog

from syncd.channels.ankorstore_listings import DEFAULT_PAGE_SIZE, ListingCache
from syncd.channels.ankorstore_ops import (
    MAX_OPERATIONS,
    OPERATIONS_PATH,
    Listing,
    attributed_errors,
    operations_document,
    plausible_reserved,
    refusal_kind,
    stock_quantity,
    unconfirmed_reason,
    update_operation,
    whole_pack_units,
)
from syncd.channels.base import LiveValue, PushResult
from syncd.channels.planner import PlannedUpdate
from syncd.config.sections import AnkorstoreChannel as AnkorstoreChannelConfig
from syncd.http.client import ApiClient, response_json
from syncd.http.clock import Clock
from syncd.http.errors import ApiError, HttpError, InvalidResponse, RateLimited
from syncd.model import Catalog
from syncd.sources.jsonvalues import MAX_UNITS, describe_number

_log = structlog.get_logger(__name__)

DEFAULT_RESERVED_MAX_AGE = 60.0
"""Seconds a cached ``reservedQuantity`` is trusted before a push re-reads it."""

ALWAYS_IN_STOCK_REASON = "always_in_stock"
"""Prefix of the park reason for variants left alone (``always_in_stock = "leave"``)."""

_SPLITTABLE = frozenset({404, 422})
"""Statuses that may concern one operation of a batch (documented for bulk, brief 7.1)."""
_REPLY_CHARS = 300


@dataclass(frozen=True, slots=True)
class _Op:
    update: PlannedUpdate
    variant_id: str
    stock: int


class AnkorstoreChannel:
    """Publishes sellable units to Ankorstore (see the module docstring)."""

    name = "ankorstore"
    order_feed = "ankorstore_orders"
    """The source whose orders Ankorstore reserves itself (``reservedQuantity``)."""

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: AnkorstoreChannelConfig,
        *,
        clock: Clock,
        reserved_max_age: float = DEFAULT_RESERVED_MAX_AGE,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if not 1 <= section.operations_per_request <= MAX_OPERATIONS:
            raise ValueError(f"operations_per_request must be 1..{MAX_OPERATIONS}")
        if reserved_max_age < 0:
            raise ValueError("reserved_max_age cannot be negative")
        self.per_request = section.operations_per_request
        self._client = client
        self._clock = clock
        self._catalog = catalog
        self._always = section.always_in_stock
        self._reserve = 1.0 - section.budget_share
        self._max_age = reserved_max_age
        self._listings = ListingCache(
            client, clock=clock, reserve=self._reserve, page_size=page_size, channel=self.name
        )
        self._endpoint_ok = False
        self._orders_seen: float | None = None
        """Monotonic time of the order listing syncd last computed from (see orders_observed)."""
        # Reverse maps for reading back: by variant id when the catalog has it,
        # else by the Ankorstore SKU (``ankorstore_sku``, defaulting to the SKU).
        self._sku_by_id: dict[str, str] = {}
        self._sku_by_remote_sku: dict[str, str] = {}
        for sku, variant in catalog.variants.items():
            if variant.ankorstore_variant_id:
                self._sku_by_id[variant.ankorstore_variant_id] = sku
            else:
                self._sku_by_remote_sku[variant.ankorstore_sku or sku] = sku

    # --- Channel protocol -----------------------------------------------------

    def requests_available(self) -> int:
        """Requests the channel may spend now, leaving ``1 - budget_share`` to sources.

        While the reserved figures are older than ``reserved_max_age`` each
        batch may need a read first, so the budget counts two per batch.
        """
        available = self._client.limiter.available(reserve=self._reserve)
        if self._listings.fully_read_within(self._max_age, since=self._orders_seen):
            return available
        return available // 2

    def orders_observed(self, at: datetime) -> None:
        """syncd's numbers now include every Ankorstore order open at ``at`` (wall time).

        The engine calls this with the last successful Ankorstore order poll
        before pushing; reserved figures read before ``at`` no longer match
        the orders the ledger subtracts and are re-read before use.
        """
        seen = self._clock.monotonic() - max(0.0, self._clock.wall() - at.timestamp())
        if self._orders_seen is None or seen > self._orders_seen:
            self._orders_seen = seen

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        result = PushResult()
        if not batch:
            return result
        if len(batch) > self.per_request:
            raise ValueError(f"{len(batch)} updates exceed {self.per_request} per request")
        wanted: list[PlannedUpdate] = []
        for update in batch:
            if update.quantity < 0:
                self._park(result, update, f"refused: negative quantity {update.quantity}")
            else:
                wanted.append(update)
        resolved = await self._resolve(wanted, result)
        if not resolved:
            return result
        try:
            stale = [
                i
                for _, i in resolved
                if not self._listings.is_fresh(i, self._max_age, since=self._orders_seen)
            ]
            if stale:
                _, spent = await self._listings.refresh_ids(stale)
                result.requests += spent
        except HttpError as exc:
            reason = f"could not read reservedQuantity: {exc}"
            result.failed += [(update, reason) for update, _ in resolved]
            return result
        ops = self._operations(resolved, result)
        if ops:
            await self._send(ops, result)
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        """What Ankorstore shows now, in sellable units: ``availableQuantity``.

        None for ``isAlwaysInStock`` variants (no number is shown). The read
        also refreshes the reserved figures pushes rely on. With ``skus``,
        only those variants are read when that costs fewer requests than the
        whole list. SKUs Ankorstore does not list are absent from the result.
        """
        if skus is not None:
            ids = {v for v in (self._variant_id(s) for s in skus) if v is not None}
            by_id_cost = -(-len(ids) // MAX_OPERATIONS)
            full_cost = -(-max(len(self._listings), len(self._sku_by_id)) // DEFAULT_PAGE_SIZE)
            if ids and by_id_cost < full_cost:
                listings, _ = await self._listings.refresh_ids(ids)
            else:
                listings, _ = await self._listings.refresh_all()
        else:
            listings, _ = await self._listings.refresh_all()
        wanted = set(skus) if skus is not None else None
        live: dict[str, LiveValue] = {}
        for listing in listings:
            sku = self._sku_for(listing)
            if sku is None or (wanted is not None and sku not in wanted):
                continue
            live[sku] = LiveValue(
                sku=sku,
                sellable=None if listing.always_in_stock else listing.available,
                raw={
                    "variantId": listing.variant_id,
                    "stockQuantity": listing.stock,
                    "reservedQuantity": listing.reserved,
                    "availableQuantity": listing.available,
                    "isAlwaysInStock": listing.always_in_stock,
                    "unitMultiplier": listing.unit_multiplier,
                },
            )
        return live

    async def aclose(self) -> None:
        """Nothing to release: the Ankorstore client is shared and closed by its owner."""

    # --- identities -------------------------------------------------------------

    def _variant_id(self, sku: str) -> str | None:
        variant = self._catalog.variants.get(sku)
        if variant is not None and variant.ankorstore_variant_id:
            return variant.ankorstore_variant_id
        return self._listings.id_for_sku(self._ankorstore_sku(sku))

    def _ankorstore_sku(self, sku: str) -> str:
        variant = self._catalog.variants.get(sku)
        return (variant.ankorstore_sku if variant is not None else None) or sku

    def _sku_for(self, listing: Listing) -> str | None:
        sku = self._sku_by_id.get(listing.variant_id)
        if sku is None and listing.sku is not None:
            sku = self._sku_by_remote_sku.get(listing.sku)
        return sku

    async def _resolve(
        self, updates: Sequence[PlannedUpdate], result: PushResult
    ) -> list[tuple[PlannedUpdate, str]]:
        """(update, variant id) pairs; SKUs Ankorstore does not know are parked."""
        unknown = [u for u in updates if self._variant_id(u.sku) is None]
        if unknown:
            try:
                _, spent = await self._listings.find_skus(
                    {self._ankorstore_sku(u.sku) for u in unknown}
                )
                result.requests += spent
            except HttpError as exc:
                reason = f"could not look up the Ankorstore variant: {exc}"
                result.failed += [(u, reason) for u in unknown]
                updates = [u for u in updates if u not in unknown]
        resolved: list[tuple[PlannedUpdate, str]] = []
        for update in updates:
            variant_id = self._variant_id(update.sku)
            if variant_id is None:
                self._park(
                    result,
                    update,
                    f"no Ankorstore variant: the catalog has no ankorstore_variant_id and "
                    f"Ankorstore lists no SKU {self._ankorstore_sku(update.sku)!r}",
                )
            else:
                resolved.append((update, variant_id))
        return resolved

    # --- building and sending ---------------------------------------------------

    def shown_for(self, sku: str, quantity: int) -> int:
        """What Ankorstore shows as available once ``quantity`` units were acknowledged.

        Whole packs: for drift checks (:func:`syncd.channels.drift.find_drift`).
        """
        variant_id = self._variant_id(sku)
        listing = self._listings.get(variant_id) if variant_id is not None else None
        return whole_pack_units(max(0, quantity), self._pack(sku, listing, warn=False))

    def _pack(self, sku: str, listing: Listing | None, *, warn: bool = True) -> int:
        """Units per pack: Ankorstore's own ``unitMultiplier`` wins over the catalog's.

        Ankorstore sells in its own packs; flooring to any multiplier never publishes more.
        """
        variant = self._catalog.variants.get(sku)
        catalog_pack = variant.pack_size if variant is not None else 1
        if listing is None or listing.unit_multiplier is None:
            return catalog_pack
        if warn and listing.unit_multiplier != catalog_pack:
            _log.warning(
                "channel.pack_size_differs",
                channel=self.name,
                sku=sku,
                catalog=catalog_pack,
                ankorstore=listing.unit_multiplier,
            )
        return listing.unit_multiplier

    def _operations(
        self, resolved: Sequence[tuple[PlannedUpdate, str]], result: PushResult
    ) -> list[_Op]:
        ops: list[_Op] = []
        for update, variant_id in resolved:
            listing = self._listings.get(variant_id)
            if listing is not None and listing.always_in_stock and self._always == "leave":
                self._park(
                    result,
                    update,
                    f"{ALWAYS_IN_STOCK_REASON}: Ankorstore shows the variant as always in stock "
                    'and always_in_stock = "leave"; writing a quantity would clear the flag',
                )
                continue
            # Unknown to the read (never listed): send without reservations, which
            # can only publish less; Ankorstore's answer to the write decides.
            reserved = listing.reserved if listing is not None else 0
            if not plausible_reserved(reserved):
                self._park(
                    result,
                    update,
                    f"Ankorstore shows reservedQuantity {describe_number(reserved)} for variant "
                    f"{variant_id}, beyond any real stock (more than {MAX_UNITS} units): "
                    "no stockQuantity is built on it",
                )
                continue
            stock = stock_quantity(
                update.quantity, reserved=reserved, pack=self._pack(update.sku, listing)
            )
            ops.append(_Op(update=update, variant_id=variant_id, stock=stock))
        return ops

    async def _send(self, ops: list[_Op], result: PushResult) -> None:
        """Send ``ops``, parking what Ankorstore refuses and re-sending the rest."""
        queue: list[list[_Op]] = [ops]
        while queue:
            chunk = queue.pop(0)
            body = operations_document([update_operation(op.variant_id, op.stock) for op in chunk])
            result.requests += 1
            try:
                response = await self._client.request(
                    "POST", OPERATIONS_PATH, json=body, idempotent=True, reserve=self._reserve
                )
            except RateLimited as exc:
                self._fail(result, chunk, exc)
                continue
            except ApiError as exc:
                result.request_ids.append(exc.request_id)
                result.reply = _clip(f"{exc.status} {'; '.join(exc.details) or exc.body}")
                queue += self._refused(chunk, exc, result)
                continue
            except HttpError as exc:
                self._fail(result, chunk, exc)
                continue
            self._answered(chunk, response, result)

    def _answered(self, chunk: Sequence[_Op], response: httpx.Response, result: PushResult) -> None:
        """A 2xx: acknowledged only when the body confirms the operations (else failed)."""
        request_id = response.request.headers.get("x-request-id", "")
        if request_id:
            result.request_ids.append(request_id)
        try:
            document = response_json(response, api=self.name)
        except InvalidResponse as exc:
            why: str | None = str(exc)
        else:
            why = unconfirmed_reason(document, [op.variant_id for op in chunk])
        if why is not None:
            self._unconfirmed(chunk, response, why, result)
            return
        self._endpoint_ok = True
        self._accepted(chunk, response, result)

    def _unconfirmed(
        self, chunk: Sequence[_Op], response: httpx.Response, why: str, result: PushResult
    ) -> None:
        """A 2xx that proves nothing (a proxy's page, ``OK``, a cut body): the batch failed.

        It stays pending and is sent again next round -- harmless, the values
        being absolute. The endpoint is not taken as working on such evidence.
        """
        reason = _clip(f"{response.status_code} answer does not confirm the write: {why}")
        result.reply = reason
        result.failed += [(op.update, reason) for op in chunk]
        _log.warning(
            "channel.push_unconfirmed",
            channel=self.name,
            operations=len(chunk),
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            request_id=response.request.headers.get("x-request-id", ""),
            reason=_clip(why),
        )

    def _accepted(self, chunk: Sequence[_Op], response: httpx.Response, result: PushResult) -> None:
        request_id = response.request.headers.get("x-request-id", "")
        result.reply = _clip(f"{response.status_code} {len(chunk)} operations applied")
        for op in chunk:
            self._listings.record_written(op.variant_id, op.stock)
            result.acknowledged.append(op.update)
        _log.info(
            "channel.pushed",
            channel=self.name,
            operations=len(chunk),
            status=response.status_code,
            request_id=request_id,
        )

    def _refused(self, chunk: list[_Op], exc: ApiError, result: PushResult) -> list[list[_Op]]:
        """Park what the error names; return the chunks still worth sending."""
        if exc.status not in _SPLITTABLE:
            self._fail(result, chunk, exc)
            return []
        named = attributed_errors(exc.details, len(chunk))
        if named:
            rest = [op for index, op in enumerate(chunk) if index not in named]
            uniform = len({refusal_kind(reason) for reason in named.values()}) == 1
            if len(named) > 1 and uniform and not self._endpoint_ok:
                # The same refusal for several operations before any write ever
                # worked may be about the request, not the variants: send the
                # others first; once one lands, the refusals are about the items.
                if not rest:
                    self._fail(result, chunk, exc)
                    return []
                return [rest, [chunk[index] for index in sorted(named)]]
            for index, reason in sorted(named.items()):
                self._park(result, chunk[index].update, f"Ankorstore refused: {reason}")
            return [rest] if rest else []
        if exc.status == 404 and not self._endpoint_ok:
            self._fail(result, chunk, exc)
            return []
        if len(chunk) == 1:
            detail = "; ".join(exc.details) or exc.body or str(exc.status)
            self._park(result, chunk[0].update, f"Ankorstore refused: {_clip(detail)}")
            return []
        middle = len(chunk) // 2
        _log.info(
            "channel.batch_split", channel=self.name, operations=len(chunk), status=exc.status
        )
        return [chunk[:middle], chunk[middle:]]

    def _fail(self, result: PushResult, chunk: Sequence[_Op], exc: HttpError) -> None:
        if exc.request_id:
            result.request_ids.append(exc.request_id)
        reason = _clip(str(exc))
        result.reply = reason
        result.failed += [(op.update, reason) for op in chunk]
        _log.warning("channel.push_failed", channel=self.name, operations=len(chunk), error=reason)

    def _park(self, result: PushResult, update: PlannedUpdate, reason: str) -> None:
        result.parked.append((update, reason))
        _log.warning("channel.parked", channel=self.name, sku=update.sku, reason=reason)


def _clip(text: str) -> str:
    return text[:_REPLY_CHARS]
