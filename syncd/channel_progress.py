"""Progress of every channel's backlog, fed from the running syncd (see :mod:`syncd.progress`).

The status handler (``syncd status``, ``STATUS=``) and `syncd once` (its
progress line) each keep one :class:`ChannelProgress`. They pass in what
they already read -- the pending count from the ledger and the running count
of acknowledged values -- and this module adds the channel's rate-limit
budget, read from its API client's limiter (no request is made).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from syncd.http.client import ApiClient
from syncd.integrations import channel_client
from syncd.progress import BudgetWindow, Progress, ProgressTracker
from syncd.status_protocol import ProgressStatus

# `syncd once` and the status handler find a channel's client here, with its progress.
__all__ = ["ChannelProgress", "budget_windows", "channel_client", "progress_document"]


def budget_windows(client: ApiClient | None) -> list[BudgetWindow]:
    """The windows the client's limiter enforces, as they stand now."""
    if client is None:
        return []
    return [
        BudgetWindow(limit=w.limit, seconds=w.seconds, remaining=w.remaining, resets_in=w.resets_in)
        for w in client.limiter.snapshot().windows
    ]


class ChannelProgress:
    """One :class:`~syncd.progress.ProgressTracker` per channel, on a monotonic clock."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._started = monotonic()
        """Acknowledgement counts start here (the daemon's, or the run's, start)."""
        self._trackers: dict[str, ProgressTracker] = {}

    def update(
        self,
        channel: str,
        *,
        pending: int,
        acknowledged: int,
        per_request: int = 1,
        client: ApiClient | None = None,
    ) -> Progress | None:
        """Record an observation of ``channel`` and return its backlog (None: nothing queued)."""
        tracker = self._trackers.get(channel)
        if tracker is None:
            tracker = self._trackers[channel] = ProgressTracker(start_at=self._started)
        tracker.observe(self._monotonic(), pending=pending, acknowledged=acknowledged)
        return tracker.progress(per_request=per_request, windows=budget_windows(client))


def progress_document(progress: Progress) -> ProgressStatus:
    """The status document's ``progress`` object."""
    return ProgressStatus(
        done=progress.done,
        total=progress.total,
        rate_per_min=None if progress.rate_per_min is None else round(progress.rate_per_min, 1),
        eta_s=None if progress.eta_s is None else round(progress.eta_s, 1),
    )
