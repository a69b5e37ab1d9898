"""Parsing Active Ants ``GET v2/stock/bulk`` responses (seed 001 L2852-2952). Pure.

The response is the ShopApi envelope ``{messageCode, message, result}``
(L154-168); ``messageCode`` must be ``OK`` whatever the HTTP status (brief
seed-activeants G16). ``result`` holds two objects whose names the seed's
rendering dropped (L2884, L2895; brief A13): the ``from``/``to`` period and
the product array. They are found by shape -- the object carrying ``to`` and
the array -- so a live key name that differs from syncd's guess still reads.

Per product only three things matter to syncd: the SKU (an opaque string,
even when the JSON is numeric, G14), the configured stock field
(``availableStock`` by default: the only quantity defined by formula, L2743;
``stock`` changes meaning per product, L2648/L2910, and is never used) and
the lot/best-before list, which sums to *physical* stock, not available
stock (L2914, G3), and is therefore kept for the record only.

A response that cannot be used as a whole raises `MalformedPage`; a product
that cannot be used is returned in ``skipped`` with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.sources.jsonvalues import coerce_int, describe_number, in_range, opaque_id
from syncd.sources.problems import MalformedPage, Skipped

PERIOD_KEY = "period"
"""syncd's guess for the unnamed period object (L2884); found by shape otherwise."""
PRODUCTS_KEY = "products"
"""syncd's guess for the unnamed product array (L2895); found by shape otherwise."""
LOT_KEYS = ("thts", "lots")
"""The lot list is named ``thts`` only in ``v2/stock/get`` (L2836)."""


@dataclass(frozen=True, slots=True)
class Lot:
    number: str
    best_before: str | None
    quantity: int


@dataclass(frozen=True, slots=True)
class ProductStock:
    """One product of a bulk read: Active Ants SKU and the chosen stock figure (units)."""

    aa_sku: str
    quantity: int
    lots: tuple[Lot, ...] = ()
    below_zero: int | None = None
    """The figure Active Ants reported when it was negative (``quantity`` is then 0)."""


@dataclass(frozen=True, slots=True)
class BulkRead:
    """A usable ``v2/stock/bulk`` answer."""

    to: str
    """Where the next incremental read starts: "should be used as from value in the
    successive request" (L2890-2893). Opaque; sent back verbatim."""
    period_from: str | None
    products: tuple[ProductStock, ...]
    skipped: tuple[Skipped, ...]
    listed: int
    """Products the response listed, usable or not."""


def parse_bulk(document: Any, stock_field: str) -> BulkRead:
    """Validate a ``v2/stock/bulk`` body; raises `MalformedPage` when unusable as a whole."""
    result = _envelope_result(document)
    period = _find_period(result)
    to = period.get("to")
    if not isinstance(to, str) or not to.strip():
        raise MalformedPage("v2/stock/bulk: the period has no 'to' to continue from (L2890-2893)")
    raw_from = period.get("from")
    listing = _find_products(result)
    products: list[ProductStock] = []
    skipped: list[Skipped] = []
    for index, raw in enumerate(listing):
        parsed = parse_product(raw, stock_field, index=index)
        if isinstance(parsed, Skipped):
            skipped.append(parsed)
        else:
            products.append(parsed)
    return BulkRead(
        to=to,
        period_from=raw_from if isinstance(raw_from, str) else None,
        products=tuple(products),
        skipped=tuple(skipped),
        listed=len(listing),
    )


def parse_product(raw: Any, stock_field: str, *, index: int) -> ProductStock | Skipped:
    """One product, or why it cannot be used (never a negative quantity)."""
    if not isinstance(raw, Mapping):
        return Skipped(f"#{index}", "product is not an object")
    sku = opaque_id(raw.get("sku"))
    if sku is None:
        return Skipped(f"#{index}", "missing sku")
    if stock_field not in raw or raw[stock_field] is None:
        return Skipped(sku, f"missing {stock_field}")
    quantity = coerce_int(raw[stock_field])
    if quantity is None:
        return Skipped(sku, f"{stock_field} is not an integer: {raw[stock_field]!r}"[:200])
    if not in_range(quantity):
        return Skipped(sku, f"{stock_field} out of range ({describe_number(quantity)})")
    if quantity < 0:
        # Backorders drive free/available stock below zero (L461, brief A8,
        # G21): the warehouse has nothing to sell. Recording 0 is the truth;
        # skipping would keep the last positive level and oversell. syncd
        # never records a negative sellable balance, and reports the figure.
        return ProductStock(aa_sku=sku, quantity=0, lots=_lots(raw), below_zero=quantity)
    return ProductStock(aa_sku=sku, quantity=quantity, lots=_lots(raw))


def _envelope_result(document: Any) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise MalformedPage("v2/stock/bulk: the body is not a JSON object")
    code = document.get("messageCode")
    if code != "OK":
        message = str(document.get("message") or "")[:300]
        raise MalformedPage(f"v2/stock/bulk answered messageCode={code!r}: {message}")
    result = document.get("result")
    if not isinstance(result, Mapping):
        raise MalformedPage("v2/stock/bulk: 'result' is not an object (L2878-2884)")
    return result


def _find_period(result: Mapping[str, Any]) -> Mapping[str, Any]:
    named = result.get(PERIOD_KEY)
    if isinstance(named, Mapping):
        return named
    for value in result.values():
        if isinstance(value, Mapping) and "to" in value:
            return value
    raise MalformedPage("v2/stock/bulk: no from/to period in 'result' (L2884-2893)")


def _find_products(result: Mapping[str, Any]) -> list[Any]:
    named = result.get(PRODUCTS_KEY)
    if isinstance(named, list):
        return named
    lists = [value for value in result.values() if isinstance(value, list)]
    if len(lists) == 1:
        return lists[0]
    if not lists and PRODUCTS_KEY in result and named is None:
        return []
    raise MalformedPage("v2/stock/bulk: no single product array in 'result' (L2895)")


def _lots(raw: Mapping[str, Any]) -> tuple[Lot, ...]:
    """The lot/THT list (L2912-2922); entries that make no sense are left out."""
    listing = next((raw[k] for k in LOT_KEYS if isinstance(raw.get(k), list)), None)
    if listing is None:
        return ()
    lots: list[Lot] = []
    for entry in listing:
        if not isinstance(entry, Mapping):
            continue
        quantity = coerce_int(entry.get("quantity"))
        if quantity is None or not in_range(quantity):
            continue
        number = entry.get("lotNumber")
        tht = entry.get("tht")
        lots.append(
            Lot(
                number=str(number) if number not in (None, "") else "",
                best_before=str(tht) if tht not in (None, "") else None,
                quantity=quantity,
            )
        )
    return tuple(lots)
