"""Parsing ASTRAL JSON:API documents: postings pages and stock-state resources. Pure.

Shapes (seed 000 L13173-13753, brief seed-astral 3.2 and 3.5):

* a **posting** is ``{type, id, attributes: {locationId, productVariantId,
  locationStatus, quantity, movementType, unitMultiplier, lotNumber?,
  expiryDate?}}`` -- ``quantity`` a signed delta in **batches** (L13591-13595),
  ``unitMultiplier`` the units per batch "at the time of this posting"
  (L13601-13605);
* a **stock state** is ``{type: "stock-state", id: <productVariantId>,
  attributes: {quantities: [{quantity, locationId, status, lot?,
  unitMultiplier}]}}`` -- ``quantity`` an absolute balance in batches
  (L13257-13272). ``lot`` is ``{number|lotNumber, expiryDate}`` (brief A10:
  both spellings seen), or flat ``lotNumber``/``expiryDate`` as in included
  state.

Lot identity is "a lot number + an optional expiry date" (L13119), so the
ledger's lot is ``number`` or ``number|expiry`` (:func:`lot_key`), the same
string whichever endpoint it came from.

``onHand`` is derived (available + reserved + damaged + qualityControl +
blocked, L13151) and ``void`` is never stock (L13157): neither is ever read
as a balance. A whole document that cannot be used raises `MalformedPage`;
a posting or quantity row that cannot be used is returned as `Skipped`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.model import StockStatus
from syncd.sources.jsonvalues import (
    MAX_MULTIPLIER,
    coerce_int,
    describe_number,
    in_range,
    opaque_id,
)
from syncd.sources.problems import MalformedPage, Skipped

STATE_STATUSES: tuple[StockStatus, ...] = (
    StockStatus.AVAILABLE,
    StockStatus.RESERVED,
    StockStatus.DAMAGED,
    StockStatus.QUALITY_CONTROL,
    StockStatus.BLOCKED,
    StockStatus.INCOMING,
)
"""Every location status that holds a balance, asked for explicitly (L13185-13189);
``onHand`` is left out so nothing is counted twice."""
_BALANCE = {status.value: status for status in STATE_STATUSES}
_POSTING = {**_BALANCE, StockStatus.VOID.value: StockStatus.VOID}
_DERIVED = frozenset({"onHand", StockStatus.VOID.value})


def lot_key(number: Any, expiry: Any) -> str:
    """The ledger's lot for ASTRAL stock: ``""``, ``number`` or ``number|expiry``."""
    text = str(number).strip() if isinstance(number, str | int) else ""
    date = str(expiry).strip() if isinstance(expiry, str) else ""
    if not text and not date:
        return ""
    return f"{text}|{date}" if date else text


@dataclass(frozen=True, slots=True)
class FeedPosting:
    """One usable posting of the feed."""

    id: str
    variant_id: str
    location_id: str
    status: StockStatus
    batches: int
    unit_multiplier: int
    movement: str
    lot: str

    @property
    def units(self) -> int:
        """units = batches x unitMultiplier (L13107-13109)."""
        return self.batches * self.unit_multiplier


@dataclass(frozen=True, slots=True)
class PostingsPage:
    postings: tuple[FeedPosting, ...]
    skipped: tuple[Skipped, ...]
    listed: int
    cursor: str | None
    """``meta.page.to``: the opaque ``uuid<,timestamp>`` after the page's last item."""
    has_more: bool


@dataclass(frozen=True, slots=True)
class StateLevel:
    """One absolute balance of the stock state."""

    variant_id: str
    location_id: str
    status: StockStatus
    lot: str
    batches: int
    unit_multiplier: int

    @property
    def units(self) -> int:
        return self.batches * self.unit_multiplier


@dataclass(frozen=True, slots=True)
class StateEntity:
    """One stock-state resource: a variant and its balances (possibly none)."""

    variant_id: str
    levels: tuple[StateLevel, ...]
    skipped: tuple[Skipped, ...] = ()


def parse_postings_page(document: Any) -> PostingsPage:
    """A postings page; raises `MalformedPage` when it cannot be used as a whole."""
    data, meta, links = _listing(document, "postings")
    page = _page_meta(meta)
    cursor = page.get("to")
    cursor = cursor if isinstance(cursor, str) and cursor else None
    if data and cursor is None:
        raise MalformedPage("postings page has items but no meta.page.to cursor (L13656-13676)")
    has_more = page.get("hasMore")
    if not isinstance(has_more, bool):
        # hasMore is required but nullable pagination is common (brief 6.1.19).
        next_link = links.get("next")
        has_more = isinstance(next_link, str) and bool(next_link)
    postings: list[FeedPosting] = []
    skipped: list[Skipped] = []
    for index, raw in enumerate(data):
        parsed = parse_posting(raw, index=index)
        if isinstance(parsed, Skipped):
            skipped.append(parsed)
        else:
            postings.append(parsed)
    return PostingsPage(
        postings=tuple(postings),
        skipped=tuple(skipped),
        listed=len(data),
        cursor=cursor,
        has_more=bool(has_more) and bool(data),
    )


def parse_head(document: Any) -> str | None:
    """The cursor of the first item of a page (the newest, sorted descending); None if empty."""
    data, meta, _ = _listing(document, "postings")
    if not data:
        return None
    page = _page_meta(meta)
    for key in ("from", "to"):
        value = page.get(key)
        if isinstance(value, str) and value:
            return value
    raise MalformedPage("postings page has items but no meta.page cursor (L13656-13676)")


def parse_posting(raw: Any, *, index: int) -> FeedPosting | Skipped:
    if not isinstance(raw, Mapping):
        return Skipped(f"#{index}", "posting is not an object")
    posting_id = opaque_id(raw.get("id"))
    if posting_id is None:
        return Skipped(f"#{index}", "posting has no id")
    attributes = raw.get("attributes")
    if not isinstance(attributes, Mapping):
        return Skipped(posting_id, "posting has no attributes")
    variant_id = opaque_id(attributes.get("productVariantId"))
    location_id = opaque_id(attributes.get("locationId"))
    if variant_id is None or location_id is None:
        return Skipped(posting_id, "missing productVariantId or locationId")
    status = _POSTING.get(str(attributes.get("locationStatus")))
    if status is None:
        return Skipped(posting_id, f"unknown locationStatus {attributes.get('locationStatus')!r}")
    batches = coerce_int(attributes.get("quantity"))
    if batches is None:
        return Skipped(posting_id, "quantity is missing or not an integer")
    multiplier = coerce_int(attributes.get("unitMultiplier"))
    if multiplier is None or multiplier < 1:
        return Skipped(posting_id, "unitMultiplier is missing or below 1")
    if problem := _out_of_range(batches, multiplier):
        return Skipped(posting_id, problem)
    movement = attributes.get("movementType")
    if not isinstance(movement, str) or not movement:
        return Skipped(posting_id, "missing movementType")
    return FeedPosting(
        id=posting_id,
        variant_id=variant_id,
        location_id=location_id,
        status=status,
        batches=batches,
        unit_multiplier=multiplier,
        movement=movement,
        lot=lot_key(attributes.get("lotNumber"), attributes.get("expiryDate")),
    )


def parse_state_entity(raw: Any, *, index: int) -> StateEntity | Skipped:
    """One stock-state resource; rows that cannot be used are skipped, not the entity."""
    if not isinstance(raw, Mapping):
        return Skipped(f"#{index}", "stock state is not an object")
    variant_id = opaque_id(raw.get("id"))
    if variant_id is None:
        return Skipped(f"#{index}", "stock state has no id")
    attributes = raw.get("attributes")
    quantities = attributes.get("quantities") if isinstance(attributes, Mapping) else None
    if not isinstance(quantities, list):
        return Skipped(variant_id, "stock state has no quantities list")
    levels: list[StateLevel] = []
    skipped: list[Skipped] = []
    for row in quantities:
        parsed = _state_level(variant_id, row)
        if isinstance(parsed, Skipped):
            skipped.append(parsed)
        elif parsed is not None:
            levels.append(parsed)
    return StateEntity(variant_id=variant_id, levels=tuple(levels), skipped=tuple(skipped))


def _state_level(variant_id: str, row: Any) -> StateLevel | Skipped | None:
    """One quantity row; None for rows that are not balances (onHand, void)."""
    if not isinstance(row, Mapping):
        return Skipped(variant_id, "quantity row is not an object")
    raw_status = str(row.get("status"))
    if raw_status in _DERIVED:
        return None
    status = _BALANCE.get(raw_status)
    if status is None:
        return Skipped(variant_id, f"unknown status {row.get('status')!r}")
    location_id = opaque_id(row.get("locationId"))
    if location_id is None:
        return Skipped(variant_id, f"{raw_status} row has no locationId")
    batches = coerce_int(row.get("quantity"))
    if batches is None:
        return Skipped(variant_id, f"{raw_status} quantity is missing or not an integer")
    if batches < 0:
        return Skipped(variant_id, f"negative {raw_status} quantity ({batches})")
    multiplier = coerce_int(row.get("unitMultiplier"))
    if multiplier is None or multiplier < 1:
        return Skipped(variant_id, f"{raw_status} row: unitMultiplier is missing or below 1")
    if problem := _out_of_range(batches, multiplier):
        return Skipped(variant_id, f"{raw_status} row: {problem}")
    lot = row.get("lot")
    if isinstance(lot, Mapping):
        key = lot_key(lot.get("number", lot.get("lotNumber")), lot.get("expiryDate"))
    else:
        key = lot_key(row.get("lotNumber"), row.get("expiryDate"))
    return StateLevel(
        variant_id=variant_id,
        location_id=location_id,
        status=status,
        lot=key,
        batches=batches,
        unit_multiplier=multiplier,
    )


def _out_of_range(batches: int, multiplier: int) -> str | None:
    """Why a batch count cannot be a real quantity (corrupt or hostile input), or None."""
    if multiplier > MAX_MULTIPLIER:
        return f"unitMultiplier out of range ({describe_number(multiplier)})"
    if not in_range(batches * multiplier):
        return f"quantity out of range ({describe_number(batches)} x {multiplier})"
    return None


def _page_meta(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    page = meta.get("page")
    return page if isinstance(page, Mapping) else {}


def _listing(document: Any, what: str) -> tuple[list[Any], Mapping[str, Any], Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        raise MalformedPage(f"{what} page is not a JSON object")
    data = document.get("data")
    if not isinstance(data, list):
        raise MalformedPage(f"{what} page has no data array (L12936)")
    meta = document.get("meta")
    links = document.get("links")
    return (
        data,
        meta if isinstance(meta, Mapping) else {},
        links if isinstance(links, Mapping) else {},
    )
