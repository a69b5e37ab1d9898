"""How fresh a source's data is: pure helpers over `FeedState` (no I/O, no clock).

Every stock source records, after each successful poll, when it succeeded
(``ledger.mark_feed(success_at=...)``) and how far it got (``extra``: the
cursor, the time the remote system said the read covered, when the last full
read or reconciliation ran). Those wall times are for display and for the
APIs; staleness is judged on the monotonic clock by
:mod:`syncd.ledger.freshness`: a channel fed by a stale source must not push
(brief seed-activeants G27: "stop pushing decreases or increases based on
stale AA data").

Why a feed is stale is said here too, in the words the engine's interlock
reasons and the daemon's health reasons share (:func:`why_stale`).
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


def _age(seconds: float | None, *, since_start: bool = True) -> str:
    if seconds is None:
        return "never read successfully"
    if not since_start:
        return f"no successful read since syncd started (the last one {seconds:.0f} s ago)"
    return f"no successful read for {seconds:.0f} s"


def why_stale(age_s: float | None, last_error: str | None, *, since_start: bool = True) -> str:
    """Why a source is stale, in words a person can act on.

    How long since its last successful read and, while it is failing, the
    error that stops it -- e.g. ``never read successfully: AuthError: activeants
    POST /token: login refused (400 invalid_grant): check [apis.activeants] ...``.
    ``since_start=False``: ``age_s`` is the wall-clock age of a success by an
    earlier process, shown but not trusted (syncd.ledger.freshness).
    """
    age = _age(age_s, since_start=since_start)
    return f"{age}: {last_error}" if last_error else age


def stale_source(
    name: str, state: FeedState | None, now: datetime, *, measured: float | None = None
) -> str:
    """``name (why)`` for a stale feed (see :func:`why_stale`).

    ``measured`` is the monotonic age of its last success in this process;
    without one the ledger's wall time is quoted as the last read before start.
    """
    error = state.last_error if state is not None else None
    if measured is not None:
        return f"{name} ({why_stale(measured, error)})"
    last_success = state.last_success if state is not None else None
    age = None if last_success is None else max(0.0, (now - last_success).total_seconds())
    return f"{name} ({why_stale(age, error, since_start=False)})"
