"""What every source is: a read-only adapter that records into the ledger.

A source owns its feed cursor (stored in the ledger, committed with the
records it covers) and never computes sellable stock. The daemon calls
:meth:`Source.poll` on the source's own schedule; `syncd once` calls it until
the source says it has caught up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from syncd.ledger.store import Ledger


@dataclass(slots=True)
class PollResult:
    """What one poll achieved, for logs, freshness and the status socket."""

    feed: str
    recorded: int = 0
    """Transactions (pages, snapshots, order observations) newly recorded."""
    skipped: int = 0
    """Malformed or unknown items logged and left out."""
    requests: int = 0
    caught_up: bool = True
    """False when more pages are waiting (poll again soon)."""
    complete: bool = False
    """True when this poll read the whole remote state (a full snapshot)."""
    cursor: str | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    """Set when the poll failed part-way but returned instead of raising: an order
    feed records what it read before a failed page (and releases nothing), so
    the feed is failing although ``poll`` returned. Also in the feed's state."""


class Source(Protocol):
    name: str
    """Feed name, unique per daemon: ``activeants``, ``astral``, ``ankorstore_orders``..."""

    locations: tuple[str, ...]
    """Locations whose balances or reservations this source feeds (for staleness)."""

    stale_after: float
    """Seconds without a successful poll after which the source is stale."""

    poll_interval: float

    async def poll(self, ledger: Ledger) -> PollResult: ...

    async def aclose(self) -> None: ...
