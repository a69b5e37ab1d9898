"""How far a channel's backlog has got: done / total, rate and ETA (pure, no I/O).

A **backlog** is the time during which a channel has values queued: a first
full sync, or a long push after a large change. It starts with the first
observation that finds values pending and ends with the first that finds
none. Per channel, :class:`ProgressTracker` is fed observations -- a
monotonic time, the values pending now (counted in SQL through the outbox's
partial index, :meth:`syncd.ledger.outbox.OutboxMixin.outbox_counts`) and a
running count of values the channel acknowledged (the daemon's
``variants_pushed`` counter, or the sum of `syncd once`'s push rounds) --
and reports:

- ``done``: values acknowledged since the backlog started;
- ``total``: ``done`` plus what is still pending (it grows when new changes
  join the backlog);
- ``rate_per_min``: acknowledgements per minute over a sliding window
  (:data:`RATE_WINDOW_S`), None until the window spans :data:`MIN_SPAN_S`;
- ``eta_s``: what is pending divided by the rate, but never less than the
  channel's rate-limit budget allows (:func:`budget_floor_s`): after a burst
  that spent the minute's budget, the rest waits for the window whatever the
  burst's rate suggested. None while the rate is unknown or zero.

The I/O (reading the counts and the limiter) stays with the callers: the
status handler and `syncd once`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RATE_WINDOW_S = 300.0
"""The rate is measured over the last five minutes: long enough to span a
per-minute rate window's refills, short enough to follow a change of pace."""
MIN_SPAN_S = 1.0
"""A rate needs observations at least this far apart."""


@dataclass(frozen=True, slots=True)
class BudgetWindow:
    """One rate-limit window as the limiter reports it now."""

    limit: int
    seconds: float
    remaining: int
    resets_in: float
    """Seconds until the oldest request counted in the window leaves it."""


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    rate_per_min: float | None
    eta_s: float | None

    @property
    def remaining(self) -> int:
        return self.total - self.done


def budget_floor_s(requests: int, windows: Sequence[BudgetWindow]) -> float:
    """The least time ``requests`` more requests can take under ``windows``.

    Per window: the ``remaining`` requests may go now; nothing counted leaves
    the window before ``resets_in``, and from then on any ``seconds``-long
    stretch carries at most ``limit`` requests -- so the excess needs at least
    ``resets_in + (ceil(excess / limit) - 1) * seconds``. The tightest window
    decides. A lower bound, not a schedule: a sliding window frees its slots
    one by one, never faster.
    """
    floor = 0.0
    for window in windows:
        excess = requests - max(0, window.remaining)
        if excess <= 0 or window.limit < 1:
            continue
        extra_windows = math.ceil(excess / window.limit) - 1
        floor = max(floor, max(0.0, window.resets_in) + extra_windows * window.seconds)
    return floor


def estimate_eta_s(
    pending: int, rate_per_min: float | None, *, requests: int, windows: Sequence[BudgetWindow]
) -> float | None:
    """Seconds until ``pending`` values are through, or None while the rate says nothing."""
    if pending <= 0:
        return 0.0
    if rate_per_min is None or rate_per_min <= 0:
        return None
    return max(pending / rate_per_min * 60.0, budget_floor_s(requests, windows))


class ProgressTracker:
    """One channel's backlog over time (see the module docstring)."""

    def __init__(
        self,
        *,
        start_at: float | None = None,
        window_s: float = RATE_WINDOW_S,
        min_span_s: float = MIN_SPAN_S,
    ) -> None:
        self.window_s = window_s
        self.min_span_s = min_span_s
        self._base: int | None = None
        """Acknowledgements counted before the backlog started; None: no backlog."""
        self._idle_count = 0
        """The acknowledgement count at the last observation that found nothing pending."""
        self._idle_at = start_at
        """When that was (at first: when counting started, if the caller knows)."""
        self._samples: deque[tuple[float, int]] = deque()
        self._pending = 0

    def observe(self, at: float, *, pending: int, acknowledged: int) -> None:
        """Note the values pending and the running acknowledgement count at time ``at``."""
        if pending <= 0:
            self._base = None
            self._samples.clear()
            self._idle_count = acknowledged
            self._idle_at = at
            self._pending = 0
            return
        if self._samples and acknowledged < self._samples[-1][1]:
            # A count that went backwards was reset: start over from it.
            self._base = acknowledged
            self._samples.clear()
        elif self._base is None:
            # Acknowledgements since the last idle observation belong to this backlog,
            # and were made since then: the rate counts them over that stretch.
            self._base = min(self._idle_count, acknowledged)
            if self._idle_at is not None and self._idle_at < at and acknowledged > self._base:
                self._samples.append((self._idle_at, self._base))
        self._pending = pending
        self._samples.append((at, acknowledged))
        # Keep one sample at or before the window's start, so the rate spans the window.
        while len(self._samples) >= 2 and self._samples[1][0] <= at - self.window_s:
            self._samples.popleft()

    def progress(
        self, *, per_request: int = 1, windows: Sequence[BudgetWindow] = ()
    ) -> Progress | None:
        """The backlog as of the last observation; None when nothing is pending."""
        if self._base is None or not self._samples:
            return None
        first_at, first_count = self._samples[0]
        last_at, last_count = self._samples[-1]
        done = max(0, last_count - self._base)
        span = last_at - first_at
        rate = (last_count - first_count) / span * 60.0 if span >= self.min_span_s else None
        requests = math.ceil(self._pending / max(1, per_request))
        return Progress(
            done=done,
            total=done + self._pending,
            rate_per_min=rate,
            eta_s=estimate_eta_s(self._pending, rate, requests=requests, windows=windows),
        )


def human_duration(seconds: float, *, round_up: bool = True) -> str:
    """``45s``, ``3m 12s``, ``2h 05m``, ``1d 3h``: every duration syncd shows a person.

    A time still to come (an ETA) is rounded up, so the last fraction of a
    second reads ``1s``, not ``0s``; an elapsed time (an age, an uptime)
    passes ``round_up=False`` and is rounded down, as a clock shows it.
    """
    total = max(0, math.ceil(seconds) if round_up else int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def describe(progress: Progress) -> str:
    """One phrase for a person: ``1200/3000 (40%), 58/min, ETA 31m 02s``."""
    share = progress.done / progress.total if progress.total else 1.0
    per_min = progress.rate_per_min
    rate = (
        "rate -"
        if per_min is None
        else f"{per_min:.1f}/min"
        if per_min < 10
        else f"{per_min:.0f}/min"
    )
    eta = "ETA ?" if progress.eta_s is None else f"ETA {human_duration(progress.eta_s)}"
    return f"{progress.done}/{progress.total} ({share:.0%}), {rate}, {eta}"


def progress_from(document: Mapping[str, Any]) -> Progress:
    """A ``progress`` object of a status document, back as :class:`Progress` (for display)."""

    def number(key: str) -> float | None:
        value = document.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    return Progress(
        done=int(number("done") or 0),
        total=int(number("total") or 0),
        rate_per_min=number("rate_per_min"),
        eta_s=number("eta_s"),
    )
