"""Server-side clock and rate windows the simulators enforce.

The simulators judge clients strictly: each window is a *sliding* window
(the strictest reading of "600 requests per minute", seed 000 L200-228), so
a client that would pass against a fixed-window server but bursts across a
boundary is caught here rather than in production.

:class:`SimClock` lets tests move a simulator's time forward (token expiry,
window resets) without sleeping; it never goes backwards.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass


class SimClock:
    """Wall-clock time plus an adjustable offset (thread-safe)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a simulator clock never goes backwards")
        with self._lock:
            self._offset += seconds


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    seconds: float
    name: str


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    """The limit reported in ``X-RateLimit-Limit`` (the tightest window)."""
    remaining: int
    """Requests left in the tightest window after this one."""
    retry_after: int
    """Seconds until a request would be allowed (0 when allowed)."""
    reset_at: int
    """Epoch seconds at which the blocking window frees a slot."""

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
            headers["X-RateLimit-Reset"] = str(self.reset_at)
        return headers


class SlidingWindows:
    """Counts requests per key in several sliding windows at once.

    A rejected request is not counted (a 429 does not consume budget), which
    is the kinder reading; the strict part is the sliding window itself.
    """

    def __init__(self, windows: list[Window], clock: SimClock) -> None:
        if not windows:
            raise ValueError("at least one window")
        self.windows = sorted(windows, key=lambda w: w.seconds)
        self.clock = clock
        self._log: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self.rejected = 0
        self.accepted = 0

    def check(self, key: str = "") -> Verdict:
        now = self.clock.now()
        longest = self.windows[-1].seconds
        with self._lock:
            log = self._log.setdefault(key, deque())
            while log and log[0] <= now - longest:
                log.popleft()
            blocking: tuple[Window, float] | None = None
            for window in self.windows:
                count = self._count_since(log, now - window.seconds)
                if count >= window.limit:
                    # The oldest request inside this window must age out first.
                    oldest_in_window = log[len(log) - count]
                    frees_at = oldest_in_window + window.seconds
                    if blocking is None or frees_at > blocking[1]:
                        blocking = (window, frees_at)
            tightest = self.windows[0]
            if blocking is not None:
                self.rejected += 1
                wait = max(1, math.ceil(blocking[1] - now))
                return Verdict(
                    allowed=False,
                    limit=tightest.limit,
                    remaining=0,
                    retry_after=wait,
                    reset_at=math.ceil(blocking[1]),
                )
            log.append(now)
            self.accepted += 1
            remaining = min(
                window.limit - self._count_since(log, now - window.seconds)
                for window in self.windows
            )
            return Verdict(
                allowed=True,
                limit=tightest.limit,
                remaining=max(0, remaining),
                retry_after=0,
                reset_at=math.ceil(now + tightest.seconds),
            )

    @staticmethod
    def _count_since(log: deque[float], since: float) -> int:
        # The log is sorted; count entries strictly after ``since`` by bisection.
        lo, hi = 0, len(log)
        while lo < hi:
            mid = (lo + hi) // 2
            if log[mid] <= since:
                lo = mid + 1
            else:
                hi = mid
        return len(log) - lo
