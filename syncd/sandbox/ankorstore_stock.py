"""Ankorstore product variants and their stock rules, as the simulator keeps them.

Stock model per product variant (seed 000 L1303-1378, L1605-1607; spec
``ProductVariantStockUpdateSetStockQuantity``):

- ``stockQuantity`` is the **total** in stock, available + reserved, counted
  in **units** (pieces). The seed says "items" (L1537) and leaves units vs
  packs open (brief seed-ankorstore-catalog 9.2); the published spec reads
  "Total number of units in stock (available + reserved)", and order items
  reserve ``multipliedQuantity`` pieces, so the simulator counts pieces.
  A pack-sold variant (``unitMultiplier`` 6) therefore sells in steps of 6
  and syncd must publish whole packs (ARCHITECTURE "Semantics").
- ``reservedQuantity`` is what open orders hold (see ankorstore_orders).
- ``availableQuantity = stockQuantity - reservedQuantity``, never below 0
  unless the variant's ``inventoryPolicy`` is ``continue`` (spec).
- ``isAlwaysInStock`` makes both quantities ``null``; writing a quantity
  switches it off and writing it resets the quantity (L602, L620).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from syncd.sandbox.jsonapi_sim import ApiError, iso_micro

VARIANT_TYPE = "product-variants"
"""The resource type the spec uses everywhere (SOURCES.md: send ``product-variants``)."""
TYPE_ALIASES = frozenset({"productVariants", "productVariant"})
"""Spellings found in the seed's prose and samples (L649, L1593); accepted only on request."""
CREATED_AT = 1_672_531_200.0
"""2023-01-01: when the sandbox catalog "was created"."""


@dataclass(slots=True, eq=False)
class SimListing:
    """One Ankorstore product variant as the simulator holds it."""

    id: str
    sku: str
    name: str
    product_id: str
    unit_multiplier: int
    ian: str | None
    stock_quantity: int | None
    reserved_quantity: int = 0
    always_in_stock: bool = False
    inventory_policy: str = "deny"
    fulfillable_id: str | None = None
    wholesale_price: int = 500
    updated_at: float = CREATED_AT

    @property
    def available_quantity(self) -> int | None:
        if self.always_in_stock or self.stock_quantity is None:
            return None
        available = self.stock_quantity - self.reserved_quantity
        return available if self.inventory_policy == "continue" else max(0, available)

    def can_reserve(self, pieces: int) -> bool:
        if self.always_in_stock or self.inventory_policy == "continue":
            return True
        return (self.available_quantity or 0) >= pieces

    def to_resource(self) -> dict[str, Any]:
        return {
            "type": VARIANT_TYPE,
            "id": self.id,
            "attributes": {
                "name": self.name,
                "sku": self.sku,
                "ian": self.ian,
                "createdAt": iso_micro(CREATED_AT),
                "updatedAt": iso_micro(self.updated_at),
                "archivedAt": None,
                "retailPrice": self.wholesale_price * 2,
                "wholesalePrice": self.wholesale_price,
                "originalWholesalePrice": self.wholesale_price,
                "availableQuantity": self.available_quantity,
                "reservedQuantity": self.reserved_quantity,
                "stockQuantity": None if self.always_in_stock else self.stock_quantity,
                "isAlwaysInStock": self.always_in_stock,
                "inventoryPolicy": self.inventory_policy,
                "fulfillableId": self.fulfillable_id,
                "availableAt": None,
                "images": [],
            },
            "relationships": {"product": {"data": {"type": "products", "id": self.product_id}}},
        }

    def product_resource(self) -> dict[str, Any]:
        """The product carries ``unitMultiplier`` (seed 000 L795-798), not the variant."""
        return {
            "type": "products",
            "id": self.product_id,
            "attributes": {
                "name": self.name,
                "unitMultiplier": self.unit_multiplier,
                "active": True,
                "archived": False,
                "outOfStock": (self.available_quantity or 0) <= 0 and not self.always_in_stock,
                "wholesalePrice": self.wholesale_price,
                "retailPrice": self.wholesale_price * 2,
                "originalWholesalePrice": self.wholesale_price,
                "createdAt": iso_micro(CREATED_AT),
                "updatedAt": iso_micro(self.updated_at),
            },
        }

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sku": self.sku,
            "unitMultiplier": self.unit_multiplier,
            "stockQuantity": None if self.always_in_stock else self.stock_quantity,
            "reservedQuantity": self.reserved_quantity,
            "availableQuantity": self.available_quantity,
            "isAlwaysInStock": self.always_in_stock,
            "inventoryPolicy": self.inventory_policy,
        }


@dataclass(frozen=True, slots=True)
class StockChange:
    """One validated stock write (PATCH body or one bulk operation)."""

    listing_id: str
    stock: int | None
    """The new total; ``None`` with ``always=False`` keeps a tracked quantity."""
    always: bool
    policy: str | None


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def parse_stock_data(
    data: object,
    base: str,
    *,
    known: Mapping[str, SimListing],
    path_id: str | None = None,
    accept_aliases: bool = False,
) -> tuple[StockChange | None, list[ApiError]]:
    """Validate one stock update resource (seed 000 L1640-1652, L12868-12885).

    ``base`` is the JSON pointer of the resource (``/data`` or
    ``/atomic:operations/3/data``) so every error points at its field.
    Rules: ``type`` is ``product-variants``; ``stockQuantity`` is an integer
    >= 0; either ``stockQuantity`` or ``isAlwaysInStock`` is given, and
    ``stockQuantity`` together with ``isAlwaysInStock: true`` is refused
    because each resets the other (L602, L620). ``isAlwaysInStock: false``
    with a quantity is the seed's own sample (L1784-1785) and is accepted.
    """
    if not isinstance(data, dict):
        return None, [ApiError(422, "The data field must be an object.", pointer=base)]
    errors: list[ApiError] = []
    kind = data.get("type")
    allowed = {VARIANT_TYPE, *TYPE_ALIASES} if accept_aliases else {VARIANT_TYPE}
    if kind not in allowed:
        errors.append(ApiError(422, f"The type must be '{VARIANT_TYPE}'.", pointer=f"{base}/type"))
    listing_id = data.get("id")
    if not _is_uuid(listing_id):
        errors.append(ApiError(422, "The id must be a uuid.", pointer=f"{base}/id"))
    elif path_id is not None and listing_id != path_id:
        errors.append(ApiError(422, "The id does not match the URL.", pointer=f"{base}/id"))
    attributes = data.get("attributes")
    stock: int | None = None
    always = False
    policy: str | None = None
    if not isinstance(attributes, dict):
        errors.append(
            ApiError(422, "The attributes field is required.", pointer=f"{base}/attributes")
        )
    else:
        pointer = f"{base}/attributes"
        has_stock = "stockQuantity" in attributes
        raw_stock = attributes.get("stockQuantity")
        raw_always = attributes.get("isAlwaysInStock")
        if has_stock:
            if isinstance(raw_stock, bool) or not isinstance(raw_stock, int):
                errors.append(
                    ApiError(
                        422,
                        "The stockQuantity must be an integer.",
                        pointer=f"{pointer}/stockQuantity",
                    )
                )
            elif raw_stock < 0:
                errors.append(
                    ApiError(
                        422,
                        "The stockQuantity must be at least 0.",
                        pointer=f"{pointer}/stockQuantity",
                    )
                )
            else:
                stock = raw_stock
        if "isAlwaysInStock" in attributes and not isinstance(raw_always, bool):
            errors.append(
                ApiError(
                    422,
                    "The isAlwaysInStock must be a boolean.",
                    pointer=f"{pointer}/isAlwaysInStock",
                )
            )
        if not has_stock and "isAlwaysInStock" not in attributes:
            errors.append(
                ApiError(
                    422, "The stockQuantity or isAlwaysInStock field is required.", pointer=pointer
                )
            )
        if has_stock and raw_always is True:
            errors.append(
                ApiError(
                    422,
                    "The stockQuantity cannot be combined with isAlwaysInStock true.",
                    pointer=f"{pointer}/isAlwaysInStock",
                )
            )
        always = raw_always is True and not has_stock
        raw_policy = attributes.get("inventoryPolicy")
        if raw_policy is not None:
            if raw_policy not in ("deny", "continue") or (raw_policy == "continue" and always):
                errors.append(
                    ApiError(
                        422, "The inventoryPolicy is invalid.", pointer=f"{pointer}/inventoryPolicy"
                    )
                )
            else:
                policy = raw_policy
    if errors:
        return None, errors
    assert isinstance(listing_id, str)
    if listing_id not in known:
        return None, [ApiError(404, "Not found", pointer=f"{base}/id")]
    return StockChange(listing_id=listing_id, stock=stock, always=always, policy=policy), []
