"""Drift: a channel showing something other than what syncd last had confirmed.

Pure: the engine reads the channel (``Channel.read_live``), takes the
acknowledged values from the outbox, and asks :func:`find_drift` which SKUs
differ. Two cases are not drift:

- the channel shows no number (``LiveValue.sellable is None``: Ankorstore
  ``isAlwaysInStock``, fabric ``unmanaged``) -- there is nothing to compare;
- the channel does not list the SKU at all -- that is a missing listing,
  reported separately by :func:`missing`, not a wrong number.

``shown_for`` maps an acknowledged value to what the channel is expected to
show for it: Ankorstore shows whole packs (20 sellable units in cases of 6
show as 18), so comparing raw values would report drift that is not there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from syncd.channels.base import LiveValue

ShownFor = Callable[[str, int], int]


@dataclass(frozen=True, slots=True)
class Drift:
    sku: str
    acknowledged: int
    """What the channel last confirmed for syncd's value."""
    expected: int
    """What the channel should therefore show (e.g. whole packs)."""
    shown: int

    @property
    def delta(self) -> int:
        """Positive: the channel offers more than syncd allowed (the dangerous side)."""
        return self.shown - self.expected


def find_drift(
    live: Mapping[str, LiveValue],
    acknowledged: Mapping[str, int],
    *,
    shown_for: ShownFor | None = None,
) -> list[Drift]:
    """SKUs whose shown number differs from the expected one, in SKU order."""
    found: list[Drift] = []
    for sku in sorted(acknowledged):
        value = live.get(sku)
        if value is None or value.sellable is None:
            continue
        ack = acknowledged[sku]
        expected = shown_for(sku, ack) if shown_for is not None else ack
        if value.sellable != expected:
            found.append(Drift(sku=sku, acknowledged=ack, expected=expected, shown=value.sellable))
    return found


def missing(live: Mapping[str, LiveValue], acknowledged: Mapping[str, int]) -> list[str]:
    """Acknowledged SKUs the channel no longer lists (deleted or archived there)."""
    return sorted(sku for sku in acknowledged if sku not in live)
