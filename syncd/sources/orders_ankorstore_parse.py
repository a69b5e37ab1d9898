"""Ankorstore internal orders (JSON:API) to parsed orders: pure, no I/O.

A listing page is ``GET /api/v1/orders?filter[status]=S&include=orderItems.productVariant``
(seed 000 L4801-4840, L3258). Orders carry no item attributes themselves
(brief seed-ankorstore-orders 0): each order's ``relationships.orderItems``
names ``order-items`` resources in ``included``, and each item's
``productVariant`` relationship names the variant. Relationships are
matched to ``included`` by (type, id) with the type spellings normalised,
because the documents disagree on them (``orders``/``order``,
``product-variants``/``productVariant``; brief 8.1 #2).

Quantities: an item's ``quantity`` counts packs and ``multipliedQuantity``
pieces (seed 000 L5936; spec Order Item Resource). syncd reserves pieces:
``multipliedQuantity``, or ``quantity`` x the catalog's ``pack_size`` when
the former is missing.

Order identity is the order's ``reference`` (seed 000 L4865-4868: "the
order reference used on shipping labels, communication etc"), the number a
warehouse receives with the order (see :mod:`syncd.sources.handover`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from syncd.sources.jsonvalues import opaque_id
from syncd.sources.orders_catalog import OrderCatalog
from syncd.sources.orders_model import Listing, ParsedOrder, as_object, count, units

_log = structlog.get_logger(__name__)

HOLDING_STATUSES = ("ankor_confirmed", "brand_confirmed", "shipping_labels_generated")
"""Accepted (or awaiting acceptance) and not yet shipped: the goods are still in the
brand's warehouse (brief seed-ankorstore-orders 2.3). Listed in flow order, so an order
moving forward while the listing runs is seen twice (the later wins), not missed.

``fulfillment_requested`` is deliberately absent: those goods leave Ankorstore's own
fulfilment centre (seed 000 L3279, L3496-3502), whose ASTRAL stock already counts them
as reserved (``available`` is net of ``reserved``), so reserving them on the brand's
warehouse as well would subtract them twice."""

STATUSES = frozenset(
    {
        "ankor_confirmed",
        "rejected",
        "brand_confirmed",
        "shipping_labels_generated",
        "fulfillment_requested",
        "shipped",
        "reception_refused",
        "received",
        "invoiced",
        "brand_paid",
        "cancelled",
    }
)
"""The ``status`` enum (seed 000 L4816)."""

_ITEM = "orderitem"
_VARIANT = "productvariant"


def _kind(value: Any) -> str:
    """A JSON:API type with its spelling variants folded (``product-variants`` = ``productVariant``)."""
    if not isinstance(value, str):
        return ""
    folded = value.lower().replace("-", "").replace("_", "")
    return folded[:-1] if folded.endswith("s") else folded


def index_included(
    included: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, str], Mapping[str, Any]]:
    """``included`` by (folded type, id)."""
    index: dict[tuple[str, str], Mapping[str, Any]] = {}
    for resource in included:
        ident = opaque_id(resource.get("id"))
        if ident is not None:
            index[(_kind(resource.get("type")), ident)] = resource
    return index


def _related(resource: Mapping[str, Any], *names: str) -> Any:
    relationships = as_object(resource.get("relationships")) or {}
    for name in names:
        relation = as_object(relationships.get(name))
        if relation is not None and "data" in relation:
            return relation["data"]
    return None


def parse_order(
    resource: Mapping[str, Any],
    included: Mapping[tuple[str, str], Mapping[str, Any]],
    catalog: OrderCatalog,
    listing: Listing,
) -> ParsedOrder | None:
    """One order resource; ``None`` (and an incomplete listing) when it cannot be identified."""
    ident = opaque_id(resource.get("id")) or "?"
    attributes = as_object(resource.get("attributes"))
    reference = opaque_id(attributes.get("reference")) if attributes else None
    if attributes is None or reference is None:
        listing.incomplete(f"order {ident}", "no reference: the order cannot be identified")
        return None
    status = attributes.get("status")
    order = ParsedOrder(order_ref=reference, status=str(status))
    where = f"order {reference}"
    if status not in STATUSES:
        listing.skip(where, f"unknown status {status!r}: keeping its previous reservation")
        order.keep_all = True
        return order
    if status not in HOLDING_STATUSES:
        return order  # shipped, cancelled, rejected... reserves nothing
    items = _related(resource, "orderItems")
    if not isinstance(items, list):
        listing.skip(where, "no orderItems relationship: keeping its previous reservation")
        order.keep_all = True
        return order
    seen: set[str] = set()
    for ref in items:
        item_id = opaque_id(ref.get("id")) if isinstance(ref, dict) else None
        if item_id is None or item_id in seen:
            reason = "duplicate item" if item_id else "item reference without id"
            listing.skip(f"{where} item {item_id or '?'}", reason)
            continue
        seen.add(item_id)
        _add_item(
            order,
            included.get((_ITEM, item_id)),
            f"{where} item {item_id}",
            included=included,
            catalog=catalog,
            listing=listing,
        )
    return order


def _add_item(
    order: ParsedOrder,
    item: Mapping[str, Any] | None,
    where: str,
    *,
    included: Mapping[tuple[str, str], Mapping[str, Any]],
    catalog: OrderCatalog,
    listing: Listing,
) -> None:
    if item is None:
        listing.skip(where, "item not in included: keeping the order's previous reservation")
        order.keep_all = True
        return
    relation = as_object(_related(item, "productVariant", "productVariants", "product-variant"))
    variant_id = opaque_id(relation.get("id")) if relation else None
    if variant_id is None:
        listing.skip(where, "item has no product variant: keeping the order's previous reservation")
        order.keep_all = True
        return
    variant = included.get((_VARIANT, variant_id)) or {}
    variant_sku = opaque_id((as_object(variant.get("attributes")) or {}).get("sku"))
    sku = catalog.ankorstore(variant_id, variant_sku)
    if sku is None:
        listing.skip(where, f"variant {variant_id} (sku {variant_sku!r}) is not in the catalog")
        return
    attributes = as_object(item.get("attributes")) or {}
    packs = count(attributes.get("quantity"))
    pieces = count(attributes.get("multipliedQuantity"))
    expected = None if packs is None else units(packs, catalog.pack_size(sku))
    if pieces is None:
        pieces = expected
    elif expected is not None and pieces != expected:
        _log.warning(
            "source.pack_size_mismatch",
            source="ankorstore_orders",
            item=where,
            sku=sku,
            quantity=packs,
            multiplied_quantity=pieces,
            catalog_pack_size=catalog.pack_size(sku),
        )
    if pieces is None:
        listing.skip(where, f"{sku}: no valid quantity: keeping its previous reservation")
        order.keep_skus.add(sku)
        return
    order.add(sku, pieces)
