"""Pure rules of the Ankorstore channel: what number to send, how, and who was refused.

No I/O and no clock: :mod:`syncd.channels.ankorstore` does the talking.

**What ``stockQuantity`` means.** It is the *total* in stock, available plus
reserved: the documented sample shows ``availableQuantity`` 125,
``reservedQuantity`` 25, ``stockQuantity`` 150 (seed 000 L1180-1190,
L1605-1607, L1806-1811), and the published spec describes it as "Total
number of units in stock (available + reserved)". So syncd writes the
sellable quantity plus what Ankorstore's own open orders took off the pool,
and Ankorstore, subtracting its ``reservedQuantity``, shows the sellable
number (:mod:`syncd.allocation`, step 5). Sending the sellable number alone
would subtract those orders a second time (brief seed-ankorstore-catalog 8.5).

**Units, not packs.** ``stockQuantity`` counts units (pieces): the spec says
"units", and order items reserve ``multipliedQuantity`` pieces, i.e. packs x
the product's ``unitMultiplier`` (seed 000 L795-798; spec Order Item). A
product sold in cases of 6 can only be ordered 6 at a time, so allocation
rounds to whole packs of units with the product's ``unitMultiplier``: 20
sellable units in cases of 6 publish 18. Rounding is always down, so it can
only undersell.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

VARIANT_TYPE = "product-variants"
"""The resource type the spec and every response use (specs/SOURCES.md: send this one)."""
OPERATIONS_PATH = "/api/v1/operations"
"""Bulk stock update (seed 000 L642)."""
VARIANTS_PATH = "/api/v1/product-variants"
"""List product variants with stock (seed 000 L1270-1448)."""
MAX_OPERATIONS = 50
"""Operations per bulk request (seed 000 L638, L12866)."""

_OPERATION_INDEX = re.compile(r"atomic:operations(?:/|\.|\[)(\d+)")


@dataclass(frozen=True, slots=True)
class Listing:
    """One product variant as Ankorstore last showed it (seed 000 L1303-1378)."""

    variant_id: str
    sku: str | None
    stock: int | None
    """``stockQuantity``: units, null when always in stock."""
    reserved: int
    """``reservedQuantity``: units held by Ankorstore's open orders."""
    available: int | None
    """``availableQuantity``: what retailers can order now, in units."""
    always_in_stock: bool
    unit_multiplier: int | None
    """The product's ``unitMultiplier`` when the read included it."""
    fetched_at: float
    """Monotonic time of the read, for the freshness of ``reserved``."""

    def written(self, stock: int) -> Listing:
        """The listing as Ankorstore computes it after syncd wrote ``stock``."""
        return replace(self, stock=stock, available=stock - self.reserved, always_in_stock=False)


def update_operation(variant_id: str, stock: int) -> dict[str, Any]:
    """One ``update`` operation setting an absolute ``stockQuantity`` (seed 000 L644-667)."""
    return {
        "op": "update",
        "data": {"type": VARIANT_TYPE, "id": variant_id, "attributes": {"stockQuantity": stock}},
    }


def operations_document(operations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The bulk body: the key really is ``atomic:operations`` (seed 000 L645)."""
    if not 1 <= len(operations) <= MAX_OPERATIONS:
        raise ValueError(f"a bulk request carries 1 to {MAX_OPERATIONS} operations")
    return {"atomic:operations": list(operations)}


def unconfirmed_reason(document: object, variant_ids: Sequence[str]) -> str | None:
    """None when a 200 answer confirms every operation sent; else why it does not.

    The documented answer is ``{"atomic:results": [{"data": {"type", "id",
    "attributes"}}, ...]}`` (seed 000 L12890-12918; brief seed-ankorstore-catalog
    4.6), one result per operation as in the JSON:API Atomic extension the
    names come from. What ``attributes`` holds, the ``type`` spelling and the
    order of the results are not documented, so none of them is checked; an
    entry without ``data`` (the extension allows ``{}``) is accepted. What is
    required: a JSON object whose ``atomic:results`` is a list of one object
    per operation, and every id a result names is one syncd sent. Anything
    else (an HTML page, ``OK``, a truncated or empty document) proves nothing
    landed, and absolute values make sending the batch again harmless.
    """
    if not isinstance(document, dict):
        return f"the answer is a JSON {_json_kind(document)}, not an object"
    results = document.get("atomic:results")
    if not isinstance(results, list):
        return "the answer carries no atomic:results list"
    if len(results) != len(variant_ids):
        return f"{len(results)} atomic:results for {len(variant_ids)} operation(s)"
    sent = {variant_id.lower() for variant_id in variant_ids}
    for index, entry in enumerate(results):
        if not isinstance(entry, dict):
            return f"atomic:results/{index} is a JSON {_json_kind(entry)}, not an object"
        data = entry.get("data")
        if data is None:
            continue
        if not isinstance(data, dict):
            return f"atomic:results/{index}/data is not an object"
        named = data.get("id")
        if named is not None and (not isinstance(named, str) or named.lower() not in sent):
            return f"atomic:results/{index} names {str(named)[:60]!r}, which syncd did not send"
    return None


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def attributed_errors(details: Sequence[str], count: int) -> dict[int, str]:
    """Operation index -> reason, for errors whose pointer names an operation.

    Pointers seen: ``/atomic:operations/3/data/attributes/stockQuantity``
    (JSON pointer) and the dotted form of the documented example
    (``data.attributes.field``, which names no operation and is ignored
    here). ``details`` are the HTTP layer's ``"422 detail (pointer)"`` lines.
    """
    found: dict[int, str] = {}
    for line in details:
        match = _OPERATION_INDEX.search(line)
        if match is None:
            continue
        index = int(match.group(1))
        if 0 <= index < count:
            found.setdefault(index, line)
    return found


def refusal_kind(line: str) -> str:
    """An error line with its operation index blanked, to tell "same refusal for all" apart."""
    return _OPERATION_INDEX.sub("atomic:operations/*", line)


def unit_multipliers(included: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Product id -> ``unitMultiplier`` from an ``include=product`` compound document."""
    found: dict[str, int] = {}
    for resource in included:
        attributes = resource.get("attributes")
        if resource.get("type") not in ("products", "product") or not isinstance(attributes, dict):
            continue
        value = _count(attributes.get("unitMultiplier"))
        product_id = resource.get("id")
        if isinstance(product_id, str) and value is not None and value >= 1:
            found[product_id] = value
    return found


def parse_listing(
    resource: Mapping[str, Any], multipliers: Mapping[str, int], fetched_at: float
) -> Listing | None:
    """A :class:`Listing` from a variant resource, or None when it carries no usable id.

    ``stockQuantity`` and ``availableQuantity`` may be null (always in
    stock, seed 000 L1348-1361); null is kept as None, never read as 0.
    """
    variant_id = resource.get("id")
    attributes = resource.get("attributes")
    if not isinstance(variant_id, str) or not variant_id or not isinstance(attributes, dict):
        return None
    product = resource.get("relationships", {})
    product_id = None
    if isinstance(product, dict):
        data = product.get("product", {})
        data = data.get("data") if isinstance(data, dict) else None
        product_id = data.get("id") if isinstance(data, dict) else None
    sku = attributes.get("sku")
    return Listing(
        variant_id=variant_id,
        sku=sku if isinstance(sku, str) and sku else None,
        stock=_count(attributes.get("stockQuantity")),
        reserved=_count(attributes.get("reservedQuantity")) or 0,
        available=_signed(attributes.get("availableQuantity")),
        always_in_stock=attributes.get("isAlwaysInStock") is True,
        unit_multiplier=multipliers.get(product_id) if isinstance(product_id, str) else None,
        fetched_at=fetched_at,
    )


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _signed(value: object) -> int | None:
    # availableQuantity may go below zero under the ``continue`` policy (spec).
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value
