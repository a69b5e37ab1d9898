"""The Ankorstore channel: absolute stock through ``POST /api/v1/operations``.

One request carries up to ``operations_per_request`` (<= 50) ``update``
operations on ``product-variants`` (seed 000 L636-669, L12856-12918;
specs/SOURCES.md for the type), each setting ``stockQuantity`` to the value
allocation computed: whole packs of the sellable quantity plus the units of
Ankorstore's own open orders the ledger subtracted (:mod:`syncd.allocation`,
step 5). Ankorstore subtracts its own ``reservedQuantity`` from that
(``availableQuantity = stockQuantity - reservedQuantity``, seed 000
L1180-1190, L1806-1810), so retailers see syncd's number, and the push needs
no ``reservedQuantity`` read: an order syncd has not seen yet is subtracted by
Ankorstore alone, and one cancelled before syncd saw it gives back only its
own units.

Per push:

1. (the planner, :mod:`syncd.engine.plan`, never hands over a value outside
   ``0 .. MAX_UNITS``: a negative one is parked there);
2. SKUs whose catalog row has no Ankorstore variant id are looked up by SKU;
3. variants Ankorstore marks ``isAlwaysInStock`` are parked with a reason
   when ``always_in_stock = "leave"`` -- writing a quantity would switch the
   flag off (seed 000 L602) -- so the outbox stops retrying them and the
   status shows why; ``"manage"`` writes the quantity like any other. The
   flag is known from the last read of the variant: the start-up read-back
   reads them all, the periodic one refreshes them, and a variant never
   read in this process, or flagged when last read, is read (50 per request)
   before it is written. A flag switched on by hand is therefore seen within
   ``readback_interval``; a write of that variant before then switches it
   off again;
4. a value computed with another pack size than the product's current
   ``unitMultiplier`` fails (it stays pending): the engine takes the new pack
   from :meth:`AnkorstoreChannel.pack_sizes` and computes it again, so what is
   sent is always whole packs of what Ankorstore sells;
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

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import httpx
import structlog

from syncd.channels.ankorstore_listings import DEFAULT_PAGE_SIZE, ListingCache
from syncd.channels.ankorstore_ops import (
    MAX_OPERATIONS,
    OPERATIONS_PATH,
    Listing,
    attributed_errors,
    operations_document,
    refusal_kind,
    unconfirmed_reason,
    update_operation,
)
from syncd.channels.base import LiveValue, PushResult, larger_shown
from syncd.channels.updates import PlannedUpdate
from syncd.clock import Clock
from syncd.config.sections import AnkorstoreChannelSection
from syncd.http.client import ApiClient, response_json
from syncd.http.errors import ApiError, HttpError, InvalidResponse, RateLimited
from syncd.model import Catalog

_log = structlog.get_logger(__name__)

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
    adds_own_orders = True
    """Ankorstore subtracts its own open orders from ``stockQuantity`` itself."""
    lowers_on_order = False
    """An order raises ``reservedQuantity``; the ``stockQuantity`` syncd wrote stays."""

    def __init__(
        self,
        client: ApiClient,
        catalog: Catalog,
        section: AnkorstoreChannelSection,
        *,
        clock: Clock,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        if not 1 <= section.operations_per_request <= MAX_OPERATIONS:
            raise ValueError(f"operations_per_request must be 1..{MAX_OPERATIONS}")
        self.per_request = section.operations_per_request
        self._client = client
        self._clock = clock
        self._catalog = catalog
        self._always = section.always_in_stock
        self._pack_rounding = section.pack_rounding
        self._reserve = 1.0 - section.budget_share
        self._listings = ListingCache(
            client, clock=clock, reserve=self._reserve, page_size=page_size, channel=self.name
        )
        self._endpoint_ok = False
        self._packs: dict[str, int] = {}
        self._packs_version = -1
        self._packs_given: dict[str, int] = {}
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
        """Requests the channel may spend now, leaving ``1 - budget_share`` to sources."""
        return self._client.limiter.available(reserve=self._reserve)

    async def budget_available(self) -> None:
        """Wait until a request fits this channel's share of the budget."""
        await self._client.limiter.wait_for_slot(reserve=self._reserve)

    def pack_sizes(self) -> Mapping[str, int]:
        """Units per pack Ankorstore sells each SKU in (the product's ``unitMultiplier``).

        Known for the variants read so far; they win over the catalog's
        ``pack_size`` in allocation (seed 000 L795-798, L2786-2789). The same
        mapping object is returned until a read changes a multiplier, so the
        engine can tell cheaply whether to compute anything again. A push
        refuses values computed with other packs than the last mapping given
        out here (see the module docstring, step 4).
        """
        self._packs_given = self._current_packs()
        return self._packs_given

    def _must_read(self, variant_id: str) -> bool:
        listing = self._listings.get(variant_id)
        if listing is None:
            return True
        return listing.always_in_stock and self._always == "leave"

    def _pack_used(self, sku: str, given: Mapping[str, int]) -> int:
        """The pack allocation rounded ``sku`` to: Ankorstore's as last given, else the catalog's."""
        if sku in given:
            return given[sku]
        variant = self._catalog.variants.get(sku)
        return variant.pack_size if variant is not None and self._pack_rounding else 1

    def _current_packs(self) -> dict[str, int]:
        if self._listings.multipliers_version != self._packs_version:
            packs: dict[str, int] = {}
            for listing in self._listings.listings():
                sku = self._sku_for(listing)
                if sku is not None and listing.unit_multiplier is not None:
                    packs[sku] = listing.unit_multiplier
            self._packs = packs
            self._packs_version = self._listings.multipliers_version
        return self._packs

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult:
        result = PushResult()
        if not batch:
            return result
        if len(batch) > self.per_request:
            raise ValueError(f"{len(batch)} updates exceed {self.per_request} per request")
        # Quantities were validated once, by the planner (syncd.engine.plan): a
        # value outside 0..MAX_UNITS never reaches a channel.
        resolved = await self._resolve(list(batch), result)
        unread = [i for _, i in resolved if self._must_read(i)]
        if unread:
            # Never read in this process (the start-up read-back reads them all), its
            # always-in-stock flag and pack are unknown; flagged when last read, it may
            # have been switched off since (then unparked): read them first.
            try:
                _, spent = await self._listings.refresh_ids(unread)
                result.requests += spent
            except HttpError as exc:
                reason = f"could not read the Ankorstore variant: {exc}"
                missing = set(unread)
                result.failed += [(u, reason) for u, i in resolved if i in missing]
                resolved = [(u, i) for u, i in resolved if i not in missing]
        if not resolved:
            return result
        ops = self._operations(resolved, result)
        if ops:
            await self._send(ops, result)
        return result

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]:
        """What Ankorstore shows now: ``availableQuantity`` and the ``stockQuantity`` written.

        None for ``isAlwaysInStock`` variants (no number is shown). The read
        also refreshes the pack sizes (:meth:`pack_sizes`). With ``skus``,
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
            live[sku] = larger_shown(
                live.get(sku),
                LiveValue(
                    sku=sku,
                    sellable=None if listing.always_in_stock else listing.available,
                    written=None if listing.always_in_stock else listing.stock,
                    reserved=listing.reserved,
                    raw={
                        "variantId": listing.variant_id,
                        "stockQuantity": listing.stock,
                        "reservedQuantity": listing.reserved,
                        "availableQuantity": listing.available,
                        "isAlwaysInStock": listing.always_in_stock,
                        "unitMultiplier": listing.unit_multiplier,
                    },
                ),
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

    def _operations(
        self, resolved: Sequence[tuple[PlannedUpdate, str]], result: PushResult
    ) -> list[_Op]:
        ops: list[_Op] = []
        packs = self._current_packs()
        given = self._packs_given
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
            pack = packs.get(update.sku)
            if pack is not None and pack != self._pack_used(update.sku, given):
                # Computed before this product's unitMultiplier was read (or changed):
                # the engine computes it again with the new pack; no part-pack goes out.
                reason = f"Ankorstore sells {update.sku} in packs of {pack}: computed again"
                result.failed.append((update, reason))
                continue
            ops.append(_Op(update=update, variant_id=variant_id, stock=update.quantity))
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
