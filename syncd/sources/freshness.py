"""How fresh a source's data is: pure helpers over `FeedState` (no I/O, no clock).

Every stock source records, after each successful poll, when it succeeded
(``ledger.mark_feed(success_at=...)``) and how far it got (``extra``: the
cursor, the time the remote system said the read covered, when the last full
read or reconciliation ran). Those wall times are for display and for the
APIs; staleness is judged on the monotonic clock by
:mod:`syncd.ledger.freshness`: a channel fed by a stale source must not push
(brief seed-activeants G27: "stop pushing decreases or increases based on
stale AA data").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from syncd.model import FeedState


def find_feed(states: Iterable[FeedState], feed: str) -> FeedState | None:
    """The state of ``feed`` among ``ledger.feed_states()``, if it has one."""
    return next((state for state in states if state.feed == feed), None)


def encode_instant(moment: datetime) -> str:
    """A timezone-aware instant as feed ``extra`` stores it (ISO 8601)."""
    if moment.tzinfo is None:
        raise ValueError("feed instants must be timezone-aware")
    return moment.isoformat()


def decode_instant(extra: Mapping[str, str], key: str) -> datetime | None:
    """An instant written by :func:`encode_instant`; None when absent or unreadable."""
    raw = extra.get(key)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
