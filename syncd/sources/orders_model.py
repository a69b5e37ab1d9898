"""Channel orders as the order feeds parse them, before they reach the ledger.

Pure data and pure rules shared by the three order sources
(``ankorstore_orders``, ``fabric_orders``, ``fashiontrade``):

* a :class:`Listing` is what one poll read: parsed orders, the items left
  out (:class:`Skip`), and whether it covers every open order of the channel
  (``complete``) -- only then may the ledger release the open orders it
  did not contain (``record_orders(complete=True)``);
* a line that cannot be read but whose order is known never *lowers* a
  reservation: the order carries the SKUs (or, when even they are unknown,
  all of its lines) whose previous open quantity the ledger keeps
  (:func:`finish_lines`). Bad input loses nothing: at worst syncd keeps
  reserving for a while, which can undersell but never oversell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from syncd.model import Sku
from syncd.sources.jsonvalues import MAX_UNITS
from syncd.sources.problems import Skipped


@dataclass(slots=True)
class ParsedOrder:
    """One channel order: its open units per SKU and what to keep from before."""

    order_ref: str
    status: str
    open_lines: dict[Sku, int] = field(default_factory=dict)
    keep_skus: set[Sku] = field(default_factory=set)
    """SKUs with an unreadable line: the ledger's previous quantity is kept (never lowered)."""
    keep_all: bool = False
    """A line whose SKU is unknown could not be read: keep every previous line of the order."""

    def add(self, sku: Sku, units: int) -> None:
        self.open_lines[sku] = self.open_lines.get(sku, 0) + units

    @property
    def reserving(self) -> bool:
        """Whether the order may hold stock (open units, or lines whose reservation is kept)."""
        return any(self.open_lines.values()) or self.keep_all or bool(self.keep_skus)


@dataclass(slots=True)
class Listing:
    """What one poll of a channel's orders read."""

    orders: dict[str, ParsedOrder] = field(default_factory=dict)
    skips: list[Skipped] = field(default_factory=list)
    """Orders and lines left out, e.g. ``order 3434000001 item 9f1c...``, and why."""
    complete: bool = True
    """Every open order of the channel is in ``orders`` (a full, successful listing)."""
    error: str | None = None
    """Why the poll failed part-way (the listing is then never complete)."""
    requests: int = 0
    more: bool = False
    """Work left for the next poll (a per-poll request budget ran out)."""

    def skip(self, item: str, reason: str) -> None:
        self.skips.append(Skipped(item, reason))

    def fail(self, error: str) -> None:
        """A request failed: what was read stays usable, but proves nothing about the rest."""
        self.error = error
        self.complete = False

    def incomplete(self, item: str, reason: str) -> None:
        """An entry that cannot even be identified: the listing no longer covers everything."""
        self.skip(item, reason)
        self.complete = False


@dataclass(slots=True)
class RepeatGuard:
    """Stops a listing whose pages bring nothing new: a server looping on its cursor.

    The paginators already stop on a ``next`` seen before, but a server can hand
    out a fresh cursor with every page while serving the same orders again;
    only a cap of 100 000 pages would end that. A page of orders that were all
    listed before in the same listing is that loop (a set shifting under page
    numbers moves a few orders, never a whole page), so the listing stops
    there as failed: it is partial, and releases nothing.
    """

    seen: set[str] = field(default_factory=set)

    def repeats(self, refs: list[str]) -> bool:
        """Note one page's order refs; True when it listed some and every one was seen."""
        fresh = [ref for ref in refs if ref not in self.seen]
        self.seen.update(refs)
        return bool(refs) and not fresh


REPEATED_PAGE = "a page listed only orders already listed: the listing never ends"


def larger_of(first: ParsedOrder, second: ParsedOrder) -> ParsedOrder:
    """Two copies of one order (or one order line) in one read: the larger reservation.

    An order's identity is its id (order reference, line id), so two copies
    in one read are one order seen twice -- a page boundary that moved
    while the listing ran, an order that changed status between two status
    listings -- not two orders. For an order feed the *larger* reservation
    is the lower published figure: per SKU the larger open quantity counts,
    and whatever either copy keeps from before is kept. At worst that
    reserves a few units more until the next poll lists the order once (an
    undersell); keeping only one copy could release units the other still
    holds (an oversell). The status is the later copy's (the newer view).
    Lines with different ids for the same SKU are separate lines and add up
    (:meth:`ParsedOrder.add`), never merged here.
    """
    merged = ParsedOrder(order_ref=first.order_ref, status=second.status)
    for sku in sorted({*first.open_lines, *second.open_lines}):
        merged.open_lines[sku] = max(first.open_lines.get(sku, 0), second.open_lines.get(sku, 0))
    merged.keep_skus = first.keep_skus | second.keep_skus
    merged.keep_all = first.keep_all or second.keep_all
    return merged


def add_lines(order: ParsedOrder, part: ParsedOrder) -> None:
    """Fold one line's parse (``part``) into its order: units add up, keeps carry over."""
    for sku, units in part.open_lines.items():
        order.add(sku, units)
    order.keep_skus |= part.keep_skus
    order.keep_all = order.keep_all or part.keep_all


LISTED_TWICE = "listed twice in one read: the larger reservation of each SKU counts"
LINE_TWICE = "line id listed twice in one order: the larger open quantity counts"


def finish_lines(order: ParsedOrder, previous: Mapping[Sku, int]) -> dict[Sku, int]:
    """The open lines to record for ``order``, given what the ledger held before.

    For every SKU the order could not read (or all of its previous SKUs when
    a line's SKU itself is unknown) the larger of the new and the previous
    quantity is kept, so an unreadable line never releases stock.
    """
    lines = dict(order.open_lines)
    keep = set(previous) if order.keep_all else order.keep_skus
    for sku in keep:
        before = previous.get(sku, 0)
        if before > lines.get(sku, 0):
            lines[sku] = before
    return {sku: units for sku, units in sorted(lines.items()) if units > 0}


def count(value: Any) -> int | None:
    """A quantity as an ``int >= 0``; ``None`` for anything else (bool, float, text, < 0,
    or beyond `MAX_UNITS`: corrupt or hostile, never a real order)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UNITS:
        return None
    return value


def units(count: int, per_count: int) -> int | None:
    """``count`` packs of ``per_count`` units, or None when that is beyond `MAX_UNITS`."""
    total = count * per_count
    return total if 0 <= total <= MAX_UNITS else None


def as_object(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
