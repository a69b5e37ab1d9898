"""What every channel is: a write adapter that publishes absolute quantities.

A channel receives planned updates (absolute units per SKU, see
:mod:`syncd.channels.updates`) and reports, per SKU, whether the channel
confirmed it, rejected it for a reason that resending will not fix (parked),
or failed in a way a later resend of the same absolute value may fix.
Absolute values make resends harmless (ARCHITECTURE.md, "Outbox").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from syncd.channels.updates import PlannedUpdate


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
    """What a channel shows now for one SKU."""

    sku: str
    sellable: int | None
    """What buyers can order now; None when the channel shows no number (e.g.
    Ankorstore ``isAlwaysInStock``)."""
    written: int | None = None
    """The field syncd writes, as the channel holds it now (Ankorstore
    ``stockQuantity``, fabric's inventory figure): compared with the
    acknowledged value to tell whether syncd's last write still stands.
    None when the channel shows no number."""
    reserved: int | None = None
    """Units the channel holds for its own open orders, when it reports them
    (Ankorstore ``reservedQuantity``): compared with the ledger's view."""
    raw: dict[str, object] = field(default_factory=dict)


def larger_shown(found: LiveValue | None, read: LiveValue) -> LiveValue:
    """Of two listings of one SKU in one read-back, the one holding more.

    A channel listing a SKU twice is judged by the larger figure, so a
    duplicate can only make a read-back correct a number down, never hide
    one that could oversell. A copy that shows no number (always in stock)
    wins: nothing is compared for it.
    """
    if found is None:
        return read
    if found.written is None or read.written is None:
        return found if found.written is None else read
    return read if read.written > found.written else found


class Channel(Protocol):
    name: str
    per_request: int
    """Maximum updates in one request (Ankorstore: 50)."""
    adds_own_orders: bool
    """The channel subtracts its own open orders from what syncd writes (Ankorstore:
    ``availableQuantity = stockQuantity - reservedQuantity``), so allocation adds
    them to the value written (:mod:`syncd.allocation`, step 5), and a value is
    written again when those orders move (the channel may change the written
    figure itself when it ships one)."""
    lowers_on_order: bool
    """The channel lowers the written figure itself when one of its orders arrives
    (fabric's managed inventory): an increase computed before syncd read those
    orders would hand back sold units, so increases wait for its order feed."""

    async def push(self, batch: Sequence[PlannedUpdate]) -> PushResult: ...

    async def read_live(self, skus: Collection[str] | None = None) -> dict[str, LiveValue]: ...

    def requests_available(self) -> int:
        """How many requests the channel may send now without eating into sources' headroom."""
        ...

    async def budget_available(self) -> None:
        """Return once :meth:`requests_available` is above zero (on the injected clock).

        A pusher whose round left updates deferred for lack of budget waits on
        this (or new work, whichever comes first) instead of retrying on a
        fixed interval, so the deferred updates go out the moment the window
        frees a slot.
        """
        ...

    def pack_sizes(self) -> Mapping[str, int]:
        """The channel's own units per pack by SKU, which win over the catalog's.

        Returns the same object until it changes (the engine compares identity).
        """
        ...

    async def aclose(self) -> None: ...
