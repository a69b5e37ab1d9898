"""What Ankorstore shows per product variant, read through the shared client and cached.

The Ankorstore channel needs each variant's id, its ``isAlwaysInStock`` flag
and its product's ``unitMultiplier`` (the pack allocation rounds to); the
read-back also compares ``stockQuantity`` and ``reservedQuantity``. All of it
comes from ``GET /api/v1/product-variants`` (seed 000 L1270-1448) with
``include=product`` (the multiplier lives on the product, L795-798):

- :meth:`ListingCache.refresh_all` reads the whole list, following
  ``links.next`` (it is paginated although no page parameter is documented,
  brief seed-ankorstore-catalog 8.9) -- ``ceil(N / page_size)`` requests, done
  by the read-back;
- :meth:`ListingCache.refresh_ids` reads only given variants with
  ``filter[id][]`` (spec), 50 per request -- for a read-back of a few SKUs;
- :meth:`ListingCache.find_skus` resolves SKUs the catalog has no variant id
  for with ``filter[sku]=A,B`` (seed 000 L1277-1281).

Every read passes the caller's ``reserve`` so the channel never eats the
headroom the sources need. A failed read raises; the cache keeps what it had.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace

import structlog

from syncd.channels.ankorstore_ops import (
    MAX_OPERATIONS,
    VARIANTS_PATH,
    Listing,
    parse_listing,
    unit_multipliers,
)
from syncd.clock import Clock
from syncd.http.client import ApiClient, QueryValue
from syncd.http.jsonapi import paginate

_log = structlog.get_logger(__name__)

DEFAULT_PAGE_SIZE = 100
"""``page[limit]`` of full reads: the largest ``perPage`` in any documented sample (L3106)."""


class ListingCache:
    """Variant listings by id and by Ankorstore SKU, with the time each was read."""

    def __init__(
        self,
        client: ApiClient,
        *,
        clock: Clock,
        reserve: float,
        page_size: int = DEFAULT_PAGE_SIZE,
        channel: str = "ankorstore",
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._client = client
        self._clock = clock
        self._reserve = reserve
        self._page_size = page_size
        self._channel = channel
        self._by_id: dict[str, Listing] = {}
        self._by_sku: dict[str, str] = {}
        self._multipliers_version = 0

    # --- lookups --------------------------------------------------------------

    def get(self, variant_id: str) -> Listing | None:
        return self._by_id.get(variant_id)

    def id_for_sku(self, sku: str) -> str | None:
        return self._by_sku.get(sku)

    def __len__(self) -> int:
        return len(self._by_id)

    def listings(self) -> Iterable[Listing]:
        return self._by_id.values()

    @property
    def multipliers_version(self) -> int:
        """Bumped whenever a read changes (or first learns) a product's ``unitMultiplier``."""
        return self._multipliers_version

    def record_written(self, variant_id: str, stock: int) -> None:
        """What Ankorstore shows once a write of ``stock`` was confirmed."""
        listing = self._by_id.get(variant_id)
        if listing is not None:
            self._by_id[variant_id] = listing.written(stock)

    # --- reads ----------------------------------------------------------------

    async def refresh_all(self) -> tuple[list[Listing], int]:
        """Read every variant; returns them and the requests spent.

        The cache is replaced only once the last page arrived: a listing that
        fails half-way leaves the previous state, never a truncated one.
        """
        listings, requests = await self._read(
            [("include", "product"), ("page[limit]", self._page_size)]
        )
        previous = self._by_id
        self._by_id = {}
        self._by_sku = {}
        self._store(listings, previous)
        if previous.keys() - self._by_id.keys():
            self._multipliers_version += 1  # products gone: their packs no longer apply
        _log.info(
            "channel.listings_read",
            channel=self._channel,
            variants=len(listings),
            requests=requests,
        )
        return listings, requests

    async def refresh_ids(self, variant_ids: Collection[str]) -> tuple[list[Listing], int]:
        """Re-read ``variant_ids`` (``filter[id][]``, 50 per request); returns them and the cost.

        An id Ankorstore does not return is dropped from the cache: what it
        showed before can no longer be trusted.
        """
        wanted = sorted(set(variant_ids))
        found: list[Listing] = []
        requests = 0
        for chunk in _chunks(wanted, MAX_OPERATIONS):
            params: list[tuple[str, QueryValue]] = [("filter[id][]", i) for i in chunk]
            params += [("include", "product"), ("page[limit]", MAX_OPERATIONS)]
            listings, spent = await self._read(params)
            requests += spent
            returned = {listing.variant_id for listing in listings}
            for missing in set(chunk) - returned:
                self._drop(missing)
            self._store(listings)
            found += listings
        return found, requests

    async def find_skus(self, skus: Collection[str]) -> tuple[list[Listing], int]:
        """Look variants up by Ankorstore SKU (``filter[sku]``, comma-separated, L1279).

        A SKU containing a comma cannot be filtered this way (brief 8.10) and
        is skipped: the caller reports it unresolved.
        """
        usable = sorted(s for s in set(skus) if "," not in s and s)
        found: list[Listing] = []
        requests = 0
        for chunk in _chunks(usable, MAX_OPERATIONS):
            params: list[tuple[str, QueryValue]] = [
                ("filter[sku]", ",".join(chunk)),
                ("include", "product"),
                ("page[limit]", MAX_OPERATIONS),
            ]
            listings, spent = await self._read(params)
            requests += spent
            self._store(listings)
            found += listings
        return found, requests

    # --- internals ------------------------------------------------------------

    async def _read(self, params: list[tuple[str, QueryValue]]) -> tuple[list[Listing], int]:
        listings: list[Listing] = []
        requests = 0
        async for page in paginate(
            self._client, VARIANTS_PATH, params=params, reserve=self._reserve
        ):
            requests += 1
            now = self._clock.monotonic()
            multipliers = unit_multipliers(page.included)
            for resource in page.data:
                listing = parse_listing(resource, multipliers, now)
                if listing is not None:
                    listings.append(listing)
        return listings, requests

    def _store(
        self, listings: Iterable[Listing], previous: dict[str, Listing] | None = None
    ) -> None:
        before = self._by_id if previous is None else previous
        for read in listings:
            old = before.get(read.variant_id)
            kept = read
            if read.unit_multiplier is None and old is not None:
                # A read without the product keeps the multiplier learnt before.
                kept = replace(read, unit_multiplier=old.unit_multiplier)
            if old is None or old.unit_multiplier != kept.unit_multiplier:
                self._multipliers_version += 1
            self._by_id[kept.variant_id] = kept
            if kept.sku is not None:
                self._by_sku[kept.sku] = kept.variant_id

    def _drop(self, variant_id: str) -> None:
        listing = self._by_id.pop(variant_id, None)
        if listing is not None and listing.unit_multiplier is not None:
            self._multipliers_version += 1
        if listing is not None and listing.sku is not None:
            self._by_sku.pop(listing.sku, None)


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
