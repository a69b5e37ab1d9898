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

With ``drift_policy = "overwrite"`` syncd writes its value back, and
:func:`restorable` decides which drifted SKUs may be written now:

- a channel showing **more** than syncd allowed can oversell: restore at once
  (the write lowers the number, like any decrease);
- a channel showing **less** is usually an order the channel counted before
  syncd ingested it (fabric lowers its managed inventory, Ankorstore raises
  ``reservedQuantity``); writing syncd's older, higher value back would
  advertise the units that order took. So the number is raised only once
  the same drift was seen by an earlier read-back *and* the channel's own
  order feed succeeded after that sighting: by then any order behind the
  lower number is in the ledger and has changed syncd's desired value (the
  row is no longer settled and the normal push corrects it). A channel
  without an order feed needs only the repeated sighting;
- a SKU whose outbox row moved since (a new desired value, a push in
  flight) is not restored: the normal push handles it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class Sighting:
    """When a read-back first saw a SKU's channel showing ``shown``."""

    shown: int
    at: datetime


@dataclass(frozen=True, slots=True)
class RestorePlan:
    now: tuple[Drift, ...]
    """Write syncd's value back now."""
    later: tuple[Drift, ...]
    """Raises that wait for a repeated sighting after a fresh order read."""


def restorable(
    drifted: Sequence[Drift],
    *,
    settled: Mapping[str, int],
    seen: Mapping[str, Sighting],
    orders_read_at: datetime | None,
    orders_overdue: bool,
) -> RestorePlan:
    """Which drifted SKUs syncd may write back now (see the module docstring).

    ``settled`` maps SKUs whose outbox row still rests at its acknowledged
    value to that value; ``seen`` holds earlier sightings of the same drift;
    ``orders_read_at`` is when the channel's own order feed last succeeded
    (None when the channel has no order feed); ``orders_overdue`` is True
    while that feed is overdue (no raise may go out then).
    """
    now: list[Drift] = []
    later: list[Drift] = []
    for drift in drifted:
        if settled.get(drift.sku) != drift.acknowledged:
            continue
        if drift.delta > 0:
            now.append(drift)
            continue
        sighting = seen.get(drift.sku)
        repeated = sighting is not None and sighting.shown == drift.shown
        orders_since = orders_read_at is None or (
            sighting is not None and orders_read_at > sighting.at
        )
        if repeated and orders_since and not orders_overdue:
            now.append(drift)
        else:
            later.append(drift)
    return RestorePlan(now=tuple(now), later=tuple(later))
