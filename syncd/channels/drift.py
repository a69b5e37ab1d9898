"""Drift: a channel holding something other than what syncd last had confirmed.

Pure: the engine reads the channel (``Channel.read_live``), takes the
acknowledged values from the outbox, and asks :func:`find_drift` which SKUs
differ. The comparison is on the field syncd writes (``LiveValue.written``:
Ankorstore's ``stockQuantity``, fabric's inventory), in the same units as the
acknowledged value, so an order the channel subtracts by itself (Ankorstore's
``reservedQuantity``) is not drift. Two cases are not drift either:

- the channel shows no number (``written is None``: Ankorstore
  ``isAlwaysInStock``, fabric ``unmanaged``) -- there is nothing to compare;
- the channel does not list the SKU at all -- that is a missing listing,
  reported separately by :func:`missing`, not a wrong number.

What a read-back does about drift is :func:`to_correct`'s decision, by
``drift_policy``; a correction replaces the acknowledged value with what the
channel holds, and the ordinary push writes syncd's value again
(:mod:`syncd.ledger.readback`):

- ``protect`` (the default): a channel holding **more** than syncd's value
  can oversell, so it is corrected at once; **less** is reported only;
- ``overwrite``: more at once, and less too -- but only once the same drift
  was seen by an earlier read-back *and* the channel's own order feed
  succeeded after that sighting: a lower number is usually an order the
  channel counted before syncd ingested it (fabric lowers its managed
  inventory), and by then that order is in the ledger and has changed
  syncd's desired value;
- ``report``: nothing is corrected.

At start (the acknowledgements may come from a ledger restored from a
backup, copied, or one that lost its WAL) every difference is corrected
whatever the policy, and so is an acknowledged SKU the channel no longer
lists: the cache is not the truth, the channel is.

A SKU whose outbox row moved since it was compared (a new desired value, a
push in flight) is not corrected: the compare-and-set in the ledger skips it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from syncd.channels.base import LiveValue


@dataclass(frozen=True, slots=True)
class Drift:
    sku: str
    acknowledged: int
    """What the channel last confirmed for syncd's value."""
    shown: int
    """What the channel holds now in the same field."""

    @property
    def delta(self) -> int:
        """Positive: the channel holds more than syncd allowed (the dangerous side)."""
        return self.shown - self.acknowledged


def find_drift(live: Mapping[str, LiveValue], acknowledged: Mapping[str, int]) -> list[Drift]:
    """SKUs whose written figure differs from the acknowledged one, in SKU order."""
    found: list[Drift] = []
    for sku in sorted(acknowledged):
        value = live.get(sku)
        if value is None or value.written is None:
            continue
        ack = acknowledged[sku]
        if value.written != ack:
            found.append(Drift(sku=sku, acknowledged=ack, shown=value.written))
    return found


def missing(live: Mapping[str, LiveValue], acknowledged: Mapping[str, int]) -> list[str]:
    """Acknowledged SKUs the channel no longer lists (deleted or archived there)."""
    return sorted(sku for sku in acknowledged if sku not in live)


@dataclass(frozen=True, slots=True)
class Sighting:
    """When a read-back first saw a SKU's channel showing ``shown``."""

    shown: int
    at: datetime


DriftPolicy = Literal["protect", "overwrite", "report"]


@dataclass(frozen=True, slots=True)
class RestorePlan:
    now: tuple[Drift, ...]
    """Correct now: the push writes syncd's value back."""
    later: tuple[Drift, ...]
    """Lower numbers that wait for a repeated sighting after a fresh order read."""


def to_correct(
    drifted: Sequence[Drift],
    *,
    policy: DriftPolicy,
    seen: Mapping[str, Sighting],
    orders_read_at: datetime | None,
    orders_overdue: bool,
) -> RestorePlan:
    """Which drifted SKUs to correct now under ``policy`` (see the module docstring).

    ``seen`` holds earlier sightings of the same drift; ``orders_read_at`` is
    when the channel's own order feed last succeeded (None when the channel
    has no order feed); ``orders_overdue`` is True while that feed is
    overdue (no raise may go out then).
    """
    if policy == "report":
        return RestorePlan(now=(), later=())
    now: list[Drift] = []
    later: list[Drift] = []
    for drift in drifted:
        if drift.delta > 0:
            now.append(drift)
            continue
        if policy != "overwrite":
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
