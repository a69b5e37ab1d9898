"""What the daemon knows of each of its loops: a source's polls, a channel's pushes
and read-backs, the engine's passes.

The scheduler updates these records as its loops run; the status document,
health and metrics read them (:mod:`syncd.daemon.status_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from syncd.channels.drift import Drift
from syncd.engine import ChannelCycle


@dataclass(slots=True)
class SourceRun:
    """What the daemon knows of one source's loop (status, health, metrics)."""

    name: str
    poll_interval: float
    stale_after: float
    polls: int = 0
    records: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_poll_at: datetime | None = None
    """When the last poll (successful or not) ended."""
    last_ok_at: datetime | None = None
    retry_in_s: float | None = None
    """The backoff in force while failing."""
    caught_up: bool = True


@dataclass(slots=True)
class ChannelRun:
    name: str
    rounds: int = 0
    last_push_at: datetime | None = None
    last_cycle: ChannelCycle | None = None
    consecutive_errors: int = 0
    last_error: str | None = None
    drift: list[Drift] = field(default_factory=list)
    last_readback_at: datetime | None = None
    readback_error: str | None = None
    verified: bool = False
    """The start-up read-back succeeded: acknowledgements match the channel."""
    reserved_mismatch: int = 0
    """Variants whose channel-side reservations differ from the ledger's (last read)."""


@dataclass(slots=True)
class EngineRun:
    passes: int = 0
    last_ok_at: datetime | None = None
    consecutive_errors: int = 0
    last_error: str | None = None
    ledger_error: bool = False
    """The last failure came from the ledger (SQLite): syncd cannot do its job."""
