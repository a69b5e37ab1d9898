"""One rate limiter per API budget: wait for a slot, learn from the server's headers.

All of the arithmetic lives in :mod:`syncd.http.budget`; this module adds
the clock and the waiting. Every API that shares a budget must share one
limiter: Ankorstore's catalog, orders, ASTRAL and bulk-stock calls all go out
under one token and one set of windows (seed 000 L200-228, L13036-13067), so
syncd builds a single Ankorstore client for all four.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import structlog

from syncd.clock import Clock
from syncd.http.budget import BudgetStatus, RateBudget, Window, parse_rate_headers

_log = structlog.get_logger("syncd.http")

_MIN_SLEEP = 1e-3
"""Never sleep less than this: guarantees progress when float rounding leaves a sliver."""

DEFAULT_429_WAIT = 5.0
"""Pause after a 429 that names no wait (the documented one always does, seed 000 L223-226)."""

MAX_SERVER_WAIT = 86_400.0 + 60.0
"""Longest pause a header can impose; a larger value is a bug on one side, not a plan."""


class RateLimiter:
    """Waits until a request fits every window of one API's budget.

    ``acquire`` records the request the moment it returns, so call it right
    before sending (after any token fetch): the recorded time must not be
    earlier than the real send.
    """

    def __init__(
        self, windows: Sequence[Window], *, clock: Clock, name: str, resolution: float = 1 / 1000
    ) -> None:
        self.name = name
        self._clock = clock
        self._budget = RateBudget(windows, resolution=resolution)
        self._limits_seen: set[int] = set()

    @property
    def windows(self) -> tuple[Window, ...]:
        return self._budget.windows

    async def acquire(self, cost: int = 1, *, reserve: float = 0.0) -> float:
        """Wait until ``cost`` requests fit, record them, and return the seconds waited.

        ``reserve`` is the share of every window that must stay free after
        this request; low-priority callers (channel pushes) pass e.g. 0.2 so
        sources are never starved of the last fifth of the budget.
        """
        started = self._clock.monotonic()
        while True:
            wait = self._budget.try_take(self._clock.monotonic(), cost, reserve)
            if wait <= 0:
                return self._clock.monotonic() - started
            await self._clock.sleep(max(wait, _MIN_SLEEP))

    async def wait_for_slot(self, cost: int = 1, *, reserve: float = 0.0) -> float:
        """Wait until ``cost`` requests would fit, *without* taking them; return the seconds waited.

        For a caller that plans its work by :meth:`available` (a channel's
        pusher): it wakes the moment the oldest counted request leaves its
        window (or a server-imposed pause ends), not on a fixed tick. The
        wait is recomputed after every sleep, because sends recorded or a
        429 observed meanwhile only ever push the moment further out; so it
        never returns early. Sleeps go through the injected clock, so tests
        drive them with :class:`~syncd.clock.FakeClock`.
        """
        started = self._clock.monotonic()
        while True:
            wait = self._budget.wait_time(self._clock.monotonic(), cost, reserve)
            if wait <= 0:
                return self._clock.monotonic() - started
            await self._clock.sleep(max(wait, _MIN_SLEEP))

    def try_acquire(self, cost: int = 1, *, reserve: float = 0.0) -> float:
        """Take the slot now if free and return 0; otherwise return the wait, taking nothing."""
        return self._budget.try_take(self._clock.monotonic(), cost, reserve)

    def wait_time(self, cost: int = 1, *, reserve: float = 0.0) -> float:
        return self._budget.wait_time(self._clock.monotonic(), cost, reserve)

    def available(self, *, reserve: float = 0.0) -> int:
        """Requests that fit right now -- what a push planner may spend in one round."""
        return self._budget.available(self._clock.monotonic(), reserve)

    def observe(self, headers: Mapping[str, str], status: int) -> float:
        """Learn from a response; return the seconds all sending is now paused (0 if none).

        ``X-RateLimit-Remaining`` lower than our own count lowers our count.
        A 429 pauses every caller of this limiter for ``Retry-After`` (else
        until ``X-RateLimit-Reset``, else :data:`DEFAULT_429_WAIT`).
        """
        now = self._clock.monotonic()
        signal = parse_rate_headers(headers, wall_now=self._clock.wall())
        # "None left, more at T" is said exactly by the pause below; phantom
        # sends would hold the whole window instead (up to a day for Ankorstore).
        exact_pause = signal.remaining == 0 and signal.retry_after is not None
        if signal.limit is not None and signal.limit not in self._limits_seen:
            self._limits_seen.add(signal.limit)
            if all(w.limit != signal.limit for w in self.windows):
                # Remaining counts are then charged to our shortest window: safe,
                # but possibly much slower than the server's own window would allow.
                _log.warning("http.rate_window_unknown", api=self.name, limit=signal.limit)
        if signal.remaining is not None and not exact_pause:
            phantom = self._budget.lower_remaining(now, signal.remaining, signal.limit)
            if phantom:
                _log.info(
                    "http.rate_remaining_lowered",
                    api=self.name,
                    remaining=signal.remaining,
                    limit=signal.limit,
                    phantom=phantom,
                )
        pause = 0.0
        if status == 429:
            pause = signal.retry_after if signal.retry_after is not None else DEFAULT_429_WAIT
        elif signal.remaining == 0 and signal.retry_after is not None:
            pause = signal.retry_after
        if pause > 0:
            pause = min(pause, MAX_SERVER_WAIT)
            self._budget.block_until(now + pause)
            _log.warning("http.rate_paused", api=self.name, status=status, pause_s=round(pause, 3))
        return pause

    def pause(self, seconds: float) -> None:
        """Pause every caller for ``seconds`` (e.g. a 503 with ``Retry-After``)."""
        self._budget.block_until(self._clock.monotonic() + min(max(0.0, seconds), MAX_SERVER_WAIT))

    def snapshot(self) -> BudgetStatus:
        """Per window: limit, used, remaining, resets_in -- for the status socket."""
        return self._budget.status(self._clock.monotonic())
