"""How a channel's order line is mapped to the brand's SKU: one explicit rule per channel.

Pure lookups over :class:`~syncd.model.Catalog`, built once per source:

* **Ankorstore** (seed 000 L3258, brief seed-ankorstore-orders 2.6): the
  order item's ``productVariant`` relationship id is matched to
  ``Variant.ankorstore_variant_id``; only when that id is unknown, the
  included variant's ``sku`` attribute is matched to ``Variant.ankorstore_sku``.
* **fabric** (brief seed-fabric 10.3): the line variant's ``brand_identifier``
  is matched to ``Variant.fabric_sku``; only when it is absent or unknown, its
  ``upc`` to ``Variant.barcode``. ``identifier`` is never used: once a
  retailer maps its own SKU it is the *retailer's* SKU (seed 003 L2566).
* **FashionTrade** (seed 002 L400-405, L481-486): a ``PRODUCT`` line's
  ``barcode`` is matched to ``Variant.barcode``. A ``PREPACK`` line is
  matched to ``Catalog.prepacks`` by its ``barcode`` first, then by its
  ``product_id``: prepacks are keyed by their ``code``, and a brand may use
  the prepack's own EAN as the code (the sandbox does) or the brand's own
  prepack id (which FashionTrade carries as ``product_id``).

A value shared by two catalog entries matches neither: guessing would
reserve the wrong SKU (config checks refuse such catalogs; a directly built
catalog is still handled safely).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from syncd.model import Catalog, Prepack, Sku

K = TypeVar("K")
V = TypeVar("V")


def _unique_index(items: Iterable[V], key: Callable[[V], K | None]) -> dict[K, V]:
    """Index ``items`` by ``key``; keys shared by two items are left out (ambiguous)."""
    index: dict[K, V] = {}
    ambiguous: set[K] = set()
    for item in items:
        value = key(item)
        if value is None or value in ambiguous:
            continue
        if value in index:
            del index[value]
            ambiguous.add(value)
            continue
        index[value] = item
    return index


class OrderCatalog:
    """The catalog seen from the order feeds: channel identities to brand SKUs."""

    def __init__(self, catalog: Catalog) -> None:
        variants = list(catalog.variants.values())
        self._pack_size: Mapping[Sku, int] = {v.sku: max(1, v.pack_size) for v in variants}
        self._ankorstore_id = {
            k: v.sku for k, v in _unique_index(variants, lambda v: v.ankorstore_variant_id).items()
        }
        self._ankorstore_sku = {
            k: v.sku for k, v in _unique_index(variants, lambda v: v.ankorstore_sku).items()
        }
        self._fabric_sku = {
            k: v.sku for k, v in _unique_index(variants, lambda v: v.fabric_sku).items()
        }
        self._barcode = {k: v.sku for k, v in _unique_index(variants, lambda v: v.barcode).items()}
        self._prepacks: Mapping[str, Prepack] = dict(catalog.prepacks)

    def pack_size(self, sku: Sku) -> int:
        """Units per pack the channel sells (Ankorstore ``unitMultiplier``)."""
        return self._pack_size.get(sku, 1)

    def ankorstore(self, variant_id: str | None, sku: str | None) -> Sku | None:
        """The brand SKU of an Ankorstore product variant (id first, then its SKU)."""
        if variant_id is not None and variant_id in self._ankorstore_id:
            return self._ankorstore_id[variant_id]
        if sku is not None:
            return self._ankorstore_sku.get(sku)
        return None

    def fabric(self, brand_identifier: str | None, upc: str | None) -> Sku | None:
        """The brand SKU of a fabric line variant (``brand_identifier`` first, then ``upc``)."""
        if brand_identifier is not None and brand_identifier in self._fabric_sku:
            return self._fabric_sku[brand_identifier]
        if upc is not None:
            return self._barcode.get(upc)
        return None

    def barcode(self, barcode: str | None) -> Sku | None:
        """The brand SKU whose ``Variant.barcode`` is ``barcode``."""
        return None if barcode is None else self._barcode.get(barcode)

    def prepack(self, barcode: str | None, product_id: str | None) -> Prepack | None:
        """A FashionTrade prepack by its barcode, else by its ``product_id`` (both = ``code``)."""
        for key in (barcode, product_id):
            if key is not None and key in self._prepacks:
                return self._prepacks[key]
        return None
