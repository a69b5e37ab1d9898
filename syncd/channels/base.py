"""What every channel is: a write adapter that publishes absolute quantities.

A channel receives planned updates (absolute units per SKU, see
:mod:`syncd.channels.planner`) and reports, per SKU, whether the channel
confirmed it, rejected it for a reason that resending will not fix (parked),
or failed in a way a later resend of the same absolute value may fix.
Absolute values make resends harmless (ARCHITECTURE.md, "Outbox").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from syncd.channels.planner import PlannedUpdate


@dataclass(slots=True)
class PushResult:
    acknowledged: list[PlannedUpdate] = field(default_factory=list)
    parked: list[tuple[PlannedUpdate, str]] = field(default_factory=list)
    failed: list[tuple[PlannedUpdate, str]] = field(default_factory=list)
    requests: int = 0
    request_ids: list[str] = field(default_factory=list)
    reply: str = ""
    """A short excerpt of the channel's answer for the push log."""


@dataclass(frozen=True, slots=True)
class LiveValue:
    """What a channel shows now for one SKU, in syncd's terms (sellable units)."""

    sku: str
    sellable: int | None
    """None when the channel shows no number (e.g. Ankorstore ``isAlwaysInStock``)."""
    raw: dict[str, object] = field(default_factory=dict)


class Channel(Protocol):
    name: str
    per_request: int
    """Maximum updates in one request (Ankorstore: 50)."""

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult: ...

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]: ...

    def requests_available(self) -> int:
        """How many requests the channel may send now without eating into sources' headroom."""
        ...

    async def aclose(self) -> None: ...
