"""FashionTrade orders and order lines to parsed orders: pure, no I/O.

Line statuses (seed 002 L608-615; brief seed-fashiontrade 4.2):

* ``SUBMITTED``, ``ACKNOWLEDGED``, ``CONFIRMED`` and ``PARTIALLY_SHIPPED``
  reserve. No field says how much of a ``PARTIALLY_SHIPPED`` line has
  shipped (L394-486), so the whole line keeps reserving until it is
  ``SHIPPED``: syncd may undersell it for a while, never oversell.
* ``SHIPPED`` and ``REJECTED`` reserve nothing.
* An order overview's ``MIXED`` (L698) means its lines differ: the lines decide.

Line identity: a ``PRODUCT`` line (also ``VARIANT``, the description's
spelling, L484-486) is ``quantity`` units of the variant whose barcode it
carries. A ``PREPACK`` line is ``quantity`` packs of a catalog prepack,
matched by barcode then ``product_id``; each pack reserves the prepack's
``lines`` (the composition is not in the API, L481-486). Matching:
:mod:`syncd.sources.orders_catalog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.model import Sku
from syncd.sources.jsonvalues import opaque_id
from syncd.sources.orders_catalog import OrderCatalog
from syncd.sources.orders_model import (
    LINE_TWICE,
    Listing,
    ParsedOrder,
    add_lines,
    as_object,
    count,
    larger_of,
    units,
)

RESERVING = frozenset({"SUBMITTED", "ACKNOWLEDGED", "CONFIRMED", "PARTIALLY_SHIPPED"})
RELEASED = frozenset({"SHIPPED", "REJECTED"})
MIXED = "MIXED"
OPEN_OVERVIEW = RESERVING | {MIXED}
"""Overview statuses whose lines must be read (an open order)."""
PRODUCT_TYPES = frozenset({"PRODUCT", "VARIANT"})
PREPACK = "PREPACK"


def parse_overview(raw: Any, listing: Listing) -> tuple[str, str] | None:
    """``(order_number, status)`` of an ``OrderOverviewResponse`` (L670-698), or None."""
    overview = as_object(raw)
    number = opaque_id(overview.get("order_number")) if overview else None
    status = overview.get("status") if overview else None
    if number is None or not isinstance(status, str):
        listing.skip("order ?", "overview without order_number or status")
        return None
    return number, status


def parse_order(number: str, raw: Any, catalog: OrderCatalog, listing: Listing) -> ParsedOrder:
    """An ``Order`` (L348-392) read with ``GET /orders/{orderNumber}``."""
    order = as_object(raw) or {}
    where = f"order {number}"
    lines = order.get("order_lines")
    parsed = ParsedOrder(order_ref=number, status=str(order.get("status")))
    if not isinstance(lines, list):
        listing.skip(where, "no order_lines: keeping its previous reservation")
        parsed.keep_all = True
        return parsed
    statuses: set[str] = set()
    by_id: dict[str, ParsedOrder] = {}
    for raw_line in lines:
        line = as_object(raw_line)
        line_id = opaque_id(line.get("line_id")) if line else None
        if line is None or line_id is None:
            listing.skip(f"{where} line ?", "line without line_id: keeping previous lines")
            parsed.keep_all = True
            continue
        status = line.get("status")
        statuses.add(str(status))
        part = ParsedOrder(order_ref=number, status=str(status))
        _add_line(
            part, line, str(status), f"{where} line {line_id}", catalog=catalog, listing=listing
        )
        if line_id in by_id:
            # One line_id, one line ("the order line number", seed 002 L424-428): see larger_of.
            listing.skip(f"{where} line {line_id}", LINE_TWICE)
            part = larger_of(by_id[line_id], part)
        by_id[line_id] = part
    for part in by_id.values():
        add_lines(parsed, part)
    if parsed.status not in RESERVING | RELEASED | {MIXED}:
        parsed.status = statuses.pop() if len(statuses) == 1 else MIXED
    return parsed


def _units(
    line: Mapping[str, Any], where: str, catalog: OrderCatalog, listing: Listing
) -> dict[Sku, int] | None:
    """Units per SKU one ordered unit (or pack) of ``line`` stands for; None if unknown."""
    kind = line.get("type")
    barcode = opaque_id(line.get("barcode"))
    if kind in PRODUCT_TYPES:
        sku = catalog.barcode(barcode)
        if sku is None:
            listing.skip(where, f"barcode {barcode!r} is not in the catalog")
            return None
        return {sku: 1}
    if kind == PREPACK:
        prepack = catalog.prepack(barcode, opaque_id(line.get("product_id")))
        if prepack is None:
            listing.skip(
                where, f"prepack {barcode!r} / {line.get('product_id')!r} is not in the catalog"
            )
            return None
        return dict(prepack.lines)
    listing.skip(where, f"unknown line type {kind!r}")
    return None


def _add_line(
    order: ParsedOrder,
    line: Mapping[str, Any],
    status: str,
    where: str,
    *,
    catalog: OrderCatalog,
    listing: Listing,
) -> None:
    if status in RELEASED:
        return
    per_unit = _units(line, where, catalog, listing)
    if per_unit is None:
        return
    quantity = count(line.get("quantity"))
    reason: str | None = None
    totals: dict[Sku, int] = {}
    if quantity is None:
        reason = "no valid quantity"
    elif status not in RESERVING:
        reason = f"unknown status {status!r}"
    else:
        for sku, per_pack in per_unit.items():
            total = units(quantity, per_pack)
            if total is None:
                reason = "quantity out of range"
                break
            totals[sku] = total
    if reason is not None:
        listing.skip(where, f"{reason}: keeping its previous reservation")
        order.keep_skus.update(per_unit)
        return
    for sku, total in totals.items():
        order.add(sku, total)
