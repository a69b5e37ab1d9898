"""Acknowledgements corrected from what a channel shows (a read-back).

The outbox's ``acknowledged`` column is a cache of what each channel shows
for syncd's last write. A read-back that finds the channel holding another
value replaces the cache with what it saw; the row then differs from its
desired value and the normal push path writes that value again, with every
interlock and rate limit it always obeys (:mod:`syncd.engine`).

A correction is a compare-and-set: it applies only while the row is at the
seq and acknowledged value the read was compared with and nothing is in
flight for it (status ``sent``), so a push racing the read-back always wins.
Parked rows are left alone: nothing is pushed for them until an operator
unparks them. The rule is the :class:`syncd.ledger.outbox_life.ReadBack`
event's; this module reads the rows and writes what it says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from syncd.ledger.codec import encode_time
from syncd.ledger.connection import Database
from syncd.ledger.outbox import current_rows
from syncd.ledger.outbox_life import ReadBack, transition
from syncd.model import Sku

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Correction:
    """What a read-back saw for one outbox row."""

    sku: Sku
    seq: int
    """The row's seq when it was compared."""
    acknowledged: int | None
    """The cached value the read contradicts."""
    shown: int | None
    """What the channel holds now; None when it does not list the SKU (unknown)."""


class ReadBackMixin:
    """Read-back corrections of `syncd.ledger.store.Ledger`."""

    _db: Database

    async def correct_acknowledged(
        self,
        channel: str,
        corrections: Sequence[Correction],
        at: datetime,
        *,
        include_sent: bool = False,
    ) -> list[Sku]:
        """Replace cached acknowledgements with what the channel shows; returns the SKUs changed.

        ``include_sent`` also corrects rows marked ``sent``: right after a
        start nothing of this process is in flight, and a ``sent`` status
        left by a crash says nothing about what the channel shows.
        """
        stamp = encode_time(at)
        changed: list[Sku] = []
        async with self._db.write() as conn:
            rows = await current_rows(conn, [(channel, item.sku) for item in corrections])
            states = {sku: row.state for (_, sku), row in rows.items()}
            updates: list[tuple[int | None, str, str, str, Sku]] = []
            for item in corrections:
                before = states.get(item.sku)
                if before is None:
                    continue  # not a value syncd publishes here
                after = transition(
                    before, ReadBack(item.seq, item.acknowledged, item.shown, include_sent)
                )
                if after == before:
                    continue  # the row moved since it was read: the push path wins
                states[item.sku] = after
                reason = (
                    f"read back {stamp}: {channel} does not list it"
                    if item.shown is None
                    else f"read back {stamp}: {channel} holds {item.shown}"
                )
                updates.append((after.acknowledged, reason, str(after.status), channel, item.sku))
                changed.append(item.sku)
            await conn.executemany(
                "UPDATE outbox SET acknowledged = ?, reason = ?, status = ?"
                " WHERE channel = ? AND sku = ?",
                updates,
            )
        if changed:
            _log.warning(
                "outbox.acknowledgements_corrected",
                channel=channel,
                corrected=len(changed),
                sample=changed[:10],
            )
        return changed
