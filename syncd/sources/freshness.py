"""How fresh a source's data is: pure helpers over `FeedState` (no I/O, no clock).

Every stock source records, after each successful poll, when it succeeded
(``ledger.mark_feed(success_at=...)``) and how far it got (``extra``: the
cursor, the time the remote system said the read covered, when the last full
read or reconciliation ran). The engine and the status socket judge
staleness from that record with :func:`is_stale`: a channel fed by a stale
source must not push (brief seed-activeants G27: "stop pushing decreases or
increases based on stale AA data").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from syncd.model import FeedState


def is_stale(state: FeedState | None, stale_after: float, now: datetime) -> bool:
    """True when the feed never succeeded or last succeeded more than ``stale_after`` s ago."""
    age = seconds_since_success(state, now)
    return age is None or age > stale_after


def seconds_since_success(state: FeedState | None, now: datetime) -> float | None:
    """Seconds since the feed last succeeded; None when it never has."""
    if state is None or state.last_success is None:
        return None
    return max(0.0, (now - state.last_success).total_seconds())


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
