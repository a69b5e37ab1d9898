"""fabric's inventory items as syncd needs them: the SKU -> inventory-id map and the levels.

fabric's supplier write is keyed by its own inventory-item id, "automatically
generated when new inventory is created" -- not the variant id and not the
brand's SKU (brief fabric-supplier-api 1), so syncd must learn the id of
every SKU it publishes. The map is read from the supplier inventory list
(``list_path``, default ``/v1/brands/{brand_id}/inventory/``; unverified,
brief fabric-supplier-api 1, 9.2), a DRF ``{count, next, previous,
results}`` listing whose absolute ``next`` is followed verbatim (seed 003
L64-68).

Items are keyed on ``variant.brand_identifier``, the brand's own SKU:
``identifier`` becomes the *retailer's* SKU once one is mapped (seed 003
L2566 vs L2127; brief seed-fabric 10.3), so it is never used.

Two items claiming one ``brand_identifier`` make that SKU ambiguous: which
item fabric sells from cannot be told, and writing to a guessed one could
publish stock on the wrong listing while the real one keeps its old number.
Such an identifier is left out of the map and reported
(``channel.inventory_map_ambiguous``; :meth:`InventoryMap.ambiguous`), so
the channel parks the SKU with the ids until the duplicate is resolved in
fabric.

The map is cached. A SKU missing from it triggers one re-read of the list --
unless the map was read less than ``min_refresh_interval`` seconds ago, in
which case the miss is genuine and re-reading would only burn requests.

**Reading only what changed.** The inventory list filters on
``updated_at_gte`` (epoch seconds UTC, on ``inventory_updated_at``) and sorts
by ``order_by=-inventory_updated_at``, newest first (seed 003 L4866-4874, the
retailer list; the supplier list is assumed to mirror it, as the sandbox
does). fabric stamps ``inventory_updated_at`` on every change of the figure,
the brand's writes and its own decrements on orders alike (brief
fabric-supplier-api 4). :meth:`InventoryMap.read_updated_since` reads that
slice: the channel confirms a batch of writes with it (usually one page
instead of one GET per item) and refreshes the map between full reads. The
filter compares fabric's clock, so callers ask from a margin before their
own time; an item the slice misses (a clock further off than the margin, an
item that moved between pages) is simply not in the answer, and callers read
it on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from syncd.clock import Clock
from syncd.http.client import ApiClient, QueryValue
from syncd.http.jsonapi import paginate_next_url

_log = structlog.get_logger(__name__)

DEFAULT_MIN_REFRESH_INTERVAL = 60.0
"""A miss against a map younger than this is not worth another full read."""

_INTEGER = re.compile(r"-?\d+")


@dataclass(frozen=True, slots=True)
class InventoryItem:
    """One fabric inventory position (seed 003 L4881-4915; supplier view adds ``id``)."""

    inventory_id: int
    brand_identifier: str
    inventory: int | None
    """What fabric shows now (managed: lowered by fabric itself on each order)."""
    inventory_policy: str | None
    variant_id: int | None
    inventory_updated_at: str | None
    sellable: str | None


def parse_quantity(value: object) -> int | None:
    """An inventory number: an int, or a string of one ("150" in fabric's own example).

    fabric's published example types ``inventory`` as a string while the v2
    schema says integer (brief fabric-supplier-api 2); both are accepted.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return None


def parse_item(document: Mapping[str, Any]) -> InventoryItem | None:
    """An :class:`InventoryItem`, or None when the object lacks an id or a brand SKU."""
    inventory_id = parse_quantity(document.get("id"))
    variant = document.get("variant")
    if inventory_id is None or not isinstance(variant, Mapping):
        return None
    brand_identifier = variant.get("brand_identifier")
    if not isinstance(brand_identifier, str) or not brand_identifier:
        return None
    policy = document.get("inventory_policy")
    updated = document.get("inventory_updated_at")
    sellable = document.get("sellable")
    return InventoryItem(
        inventory_id=inventory_id,
        brand_identifier=brand_identifier,
        inventory=parse_quantity(document.get("inventory")),
        inventory_policy=policy if isinstance(policy, str) else None,
        variant_id=parse_quantity(variant.get("id")),
        inventory_updated_at=updated if isinstance(updated, str) else None,
        sellable=sellable if isinstance(sellable, str) else None,
    )


def split_ambiguous(
    items: Iterable[InventoryItem],
) -> tuple[list[InventoryItem], dict[str, tuple[int, ...]]]:
    """Items whose ``brand_identifier`` is listed once; the others' ids by identifier.

    The same item listed twice (same inventory id, e.g. on two pages while
    the list shifted) is not ambiguous: the later copy is kept.
    """
    by_identifier: dict[str, dict[int, InventoryItem]] = {}
    for item in items:
        by_identifier.setdefault(item.brand_identifier, {})[item.inventory_id] = item
    unique: list[InventoryItem] = []
    ambiguous: dict[str, tuple[int, ...]] = {}
    for identifier, by_id in by_identifier.items():
        if len(by_id) == 1:
            unique.extend(by_id.values())
        else:
            ambiguous[identifier] = tuple(sorted(by_id))
    return unique, ambiguous


class InventoryMap:
    """brand_identifier -> inventory item, read from the supplier list and cached."""

    def __init__(
        self,
        client: ApiClient,
        list_path: str,
        *,
        clock: Clock,
        reserve: float,
        min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
        channel: str = "fabric",
    ) -> None:
        self._client = client
        self._path = list_path
        self._clock = clock
        self._reserve = reserve
        self._min_interval = min_refresh_interval
        self._channel = channel
        self._items: dict[str, InventoryItem] = {}
        self._ambiguous: dict[str, tuple[int, ...]] = {}
        self._read_at: float | None = None
        self._read_wall: float | None = None
        self.page_count = 0
        """Pages the last full read took: what another one would cost."""

    def __len__(self) -> int:
        return len(self._items)

    def get(self, brand_identifier: str) -> InventoryItem | None:
        return self._items.get(brand_identifier)

    def items(self) -> Iterable[InventoryItem]:
        return self._items.values()

    def ambiguous(self, brand_identifier: str) -> tuple[int, ...]:
        """The inventory ids of every item the last read listed for ``brand_identifier``
        when there were several (empty when there was at most one)."""
        return self._ambiguous.get(brand_identifier, ())

    def forget(self, brand_identifier: str) -> None:
        """Drop an entry fabric no longer recognises (its id answered 404)."""
        self._items.pop(brand_identifier, None)

    def remember(self, item: InventoryItem) -> None:
        if item.brand_identifier not in self._ambiguous:
            self._items[item.brand_identifier] = item

    @property
    def read_wall(self) -> float | None:
        """Wall-clock time (epoch s) the last full or partial read started."""
        return self._read_wall

    def read_within(self, seconds: float) -> bool:
        return self._read_at is not None and self._clock.monotonic() - self._read_at <= seconds

    async def refresh(self) -> tuple[list[InventoryItem], int]:
        """Read the whole list; returns the unambiguous items and the requests spent.

        The map is replaced only once the last page arrived, so a read that
        fails half-way keeps the previous map rather than a truncated one.
        Identifiers listed more than once are left out (see the module docstring).
        """
        started = self._clock.monotonic()
        started_wall = self._clock.wall()
        items: list[InventoryItem] = []
        pages = 0
        async for page in paginate_next_url(self._client, self._path, reserve=self._reserve):
            pages += 1
            for document in page.results:
                item = parse_item(document) if isinstance(document, Mapping) else None
                if item is not None:
                    items.append(item)
        unique, ambiguous = split_ambiguous(items)
        self._items = {item.brand_identifier: item for item in unique}
        self._ambiguous = ambiguous
        self._read_at = started
        self._read_wall = started_wall
        self.page_count = pages
        for identifier, ids in sorted(ambiguous.items()):
            _log.warning(
                "channel.inventory_map_ambiguous",
                channel=self._channel,
                brand_identifier=identifier,
                inventory_ids=list(ids),
            )
        _log.info(
            "channel.inventory_map_read",
            channel=self._channel,
            items=len(items),
            ambiguous=len(ambiguous),
            requests=pages,
        )
        return unique, pages

    async def resolve(
        self, brand_identifier: str, *, force: bool = False
    ) -> tuple[InventoryItem | None, int]:
        """The item for ``brand_identifier``, re-reading the list on a miss; and the cost.

        ``force`` re-reads even a young map (the cached id was refused).
        """
        item = self._items.get(brand_identifier)
        if item is not None and not force:
            return item, 0
        if not force and self.read_within(self._min_interval):
            return None, 0
        _, spent = await self.refresh()
        return self._items.get(brand_identifier), spent

    async def read_updated_since(
        self, since: float, *, until_seen: Collection[int] | None = None
    ) -> tuple[dict[int, InventoryItem], int, bool]:
        """Items fabric changed at or after ``since`` (epoch s, fabric's clock), newest first.

        Returns the items by inventory id, the requests spent, and whether
        the map could take them in: an item whose brand SKU the map knows
        under *another* id (a duplicate or a re-created item) makes it False,
        and the caller must read the whole list again rather than trust a
        slice. With ``until_seen``, paging stops once every one of those ids
        was returned (they are the newest, so usually on the first page).
        """
        started_wall = self._clock.wall()
        params: list[tuple[str, QueryValue]] = [
            ("updated_at_gte", max(0, math.floor(since))),
            ("order_by", "-inventory_updated_at"),
        ]
        missing = set(until_seen) if until_seen is not None else None
        found: dict[int, InventoryItem] = {}
        pages = 0
        listing = paginate_next_url(self._client, self._path, params=params, reserve=self._reserve)
        async for page in listing:
            pages += 1
            for document in page.results:
                item = parse_item(document) if isinstance(document, Mapping) else None
                if item is not None and item.inventory_id not in found:
                    # Newest first: a second copy (the list shifted) is older.
                    found[item.inventory_id] = item
            if missing is not None:
                missing -= found.keys()
                if not missing:
                    break
        close = getattr(listing, "aclose", None)
        if close is not None:  # stopped early: let the generator finish now, not at GC
            await close()
        consistent = True
        for item in found.values():
            known = self._items.get(item.brand_identifier)
            if item.brand_identifier in self._ambiguous:
                continue
            if known is not None and known.inventory_id != item.inventory_id:
                consistent = False
            else:
                self._items[item.brand_identifier] = item
        if until_seen is None and consistent:
            self._read_wall = started_wall
        _log.debug(
            "channel.inventory_changes_read",
            channel=self._channel,
            items=len(found),
            requests=pages,
            since=math.floor(since),
        )
        return found, pages, consistent
