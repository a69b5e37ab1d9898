"""Pure parts of the fabric channel: batch sizing, the write's own answer, what a read shows.

No I/O and no clock: :mod:`syncd.channels.fabric` does the requests.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import httpx

from syncd.channels.base import LiveValue, larger_shown
from syncd.channels.fabric_inventory_map import InventoryItem, parse_quantity
from syncd.http.budget import Window
from syncd.http.client import response_json
from syncd.http.errors import HttpError

MAX_BATCH = 50
"""Most updates in one push call: what one confirming list page is expected to hold."""


def pace_window(per_minute: float) -> Window:
    """A channel's own write pace as one rate window (fractions become longer windows)."""
    if per_minute >= 1:
        return Window(math.floor(per_minute), 60.0)
    return Window(1, 60.0 / per_minute)


def batch_size(
    api_windows: Sequence[Window],
    reserve: float,
    pace_windows: Sequence[Window] = (),
    *,
    confirming_reads: int = 1,
) -> int:
    """Updates per push call: what the tightest window lets the channel send, less the
    confirming read(s), at most :data:`MAX_BATCH` -- so a batch goes out within one window.

    Every window counts: the API's (less the ``reserve`` left to the sources that
    share it) and the channel's own pace. A fabric config of 60 requests a minute
    and ``budget_share = 0.8`` gives 48 - 1 = 47.
    """
    room = min(window.capacity(reserve) for window in api_windows)
    for window in pace_windows:
        room = min(room, window.limit)
    return max(1, min(MAX_BATCH, room - confirming_reads))


def field_value(response: httpx.Response, field: str) -> int | None:
    """The written field in the write's own answer, when it is a JSON object carrying it."""
    try:
        document: Any = response_json(response)
    except HttpError:
        return None
    return parse_quantity(document.get(field)) if isinstance(document, dict) else None


def live_values(
    items: Iterable[InventoryItem],
    sku_by_identifier: Mapping[str, str],
    skus: Collection[str] | None,
) -> dict[str, LiveValue]:
    """What fabric shows per syncd SKU (of ``skus``, or all); None when unmanaged.

    Unmanaged items show 999 whatever the brand sends (brief fabric-supplier-api 4).
    """
    wanted = set(skus) if skus is not None else None
    live: dict[str, LiveValue] = {}
    for item in items:
        sku = sku_by_identifier.get(item.brand_identifier)
        if sku is None or (wanted is not None and sku not in wanted):
            continue
        unmanaged = item.inventory_policy == "unmanaged"
        live[sku] = larger_shown(
            live.get(sku),
            LiveValue(
                sku=sku,
                sellable=None if unmanaged else item.inventory,
                written=None if unmanaged else item.inventory,
                raw={
                    "inventoryId": item.inventory_id,
                    "inventory": item.inventory,
                    "inventory_policy": item.inventory_policy,
                    "inventory_updated_at": item.inventory_updated_at,
                    "sellable": item.sellable,
                },
            ),
        )
    return live
