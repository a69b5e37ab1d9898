"""fabric purchase orders to parsed orders: pure, no I/O.

An order line reserves its ``quantity_open`` (seed 003 L5153): it starts
equal to ``quantity`` and falls as units ship (``quantity_shipped``, L5154)
or are cancelled (``quantity_canceled``, L5156), so shipments and
cancellations release exactly what they cover -- syncd reads the order's
open quantities rather than replaying its ``shipments`` and ``cancels``
(whose lines carry no line id and sometimes an empty ``order_line_number``,
brief seed-fabric 10.17). When ``quantity_open`` is missing it is derived
from the other three. Lines (or orders) whose ``status`` is ``closed`` or
``canceled`` reserve nothing (only ``open`` is documented, L5106, L5177;
the others are the simulator's and fabric's shipment vocabulary, L5903).

Order identity is fabric's order ``id`` (integer, unique on the platform,
L4994); SKU mapping: :mod:`syncd.sources.orders_catalog`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
)

CLOSED = frozenset({"closed", "canceled", "cancelled"})


def parse_order(raw: Any, catalog: OrderCatalog, listing: Listing) -> ParsedOrder | None:
    """One order of a listing page; ``None`` (and an incomplete listing) if unidentifiable."""
    order = as_object(raw)
    ident = opaque_id(order.get("id")) if order else None
    if order is None or ident is None:
        listing.incomplete("order ?", "no order id: the order cannot be identified")
        return None
    status = order.get("status")
    parsed = ParsedOrder(order_ref=ident, status=str(status))
    where = f"order {ident}"
    if status in CLOSED:
        return parsed
    lines = order.get("order_lines")
    if not isinstance(lines, list):
        listing.skip(where, "no order_lines: keeping its previous reservation")
        parsed.keep_all = True
        return parsed
    by_id: dict[str, ParsedOrder] = {}
    for raw_line in lines:
        line = as_object(raw_line)
        line_id = opaque_id(line.get("id")) if line else None
        if line is None or line_id is None:
            listing.skip(f"{where} line ?", "line without id: keeping previous lines")
            parsed.keep_all = True
            continue
        part = ParsedOrder(order_ref=ident, status=parsed.status)
        _add_line(part, line, f"{where} line {line_id}", catalog, listing)
        if line_id in by_id:
            # One line id, one line (seed 003 L5148-5153): see larger_of.
            listing.skip(f"{where} line {line_id}", LINE_TWICE)
            part = larger_of(by_id[line_id], part)
        by_id[line_id] = part
    for part in by_id.values():
        add_lines(parsed, part)
    return parsed


def _add_line(
    order: ParsedOrder,
    line: Mapping[str, Any],
    where: str,
    catalog: OrderCatalog,
    listing: Listing,
) -> None:
    variant = as_object(line.get("variant"))
    if variant is None:
        listing.skip(where, "line has no variant: keeping the order's previous reservation")
        order.keep_all = True
        return
    brand_identifier = opaque_id(variant.get("brand_identifier"))
    upc = opaque_id(variant.get("upc"))
    sku = catalog.fabric(brand_identifier, upc)
    if sku is None:
        listing.skip(where, f"variant {brand_identifier!r} (upc {upc!r}) is not in the catalog")
        return
    if line.get("status") in CLOSED:
        return
    units = _open_units(line)
    if units is None:
        listing.skip(where, f"{sku}: no valid open quantity: keeping its previous reservation")
        order.keep_skus.add(sku)
        return
    order.add(sku, units)


def _open_units(line: Mapping[str, Any]) -> int | None:
    """``quantity_open``, or ``quantity - shipped - canceled``; None if invalid or inconsistent."""
    ordered = count(line.get("quantity"))
    open_units = count(line.get("quantity_open"))
    if open_units is None and "quantity_open" not in line:
        shipped = count(line.get("quantity_shipped"))
        canceled = count(line.get("quantity_canceled"))
        if ordered is None or shipped is None or canceled is None:
            return None
        open_units = ordered - shipped - canceled
        if open_units < 0:
            return None
    if open_units is not None and ordered is not None and open_units > ordered:
        return None
    return open_units
