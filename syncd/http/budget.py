"""Rate-limit arithmetic: every documented window at once, with no clock and no I/O.

The caller passes ``now`` (monotonic seconds) to every method, so the rules
are unit- and property-tested without sleeping; :mod:`syncd.http.ratelimit`
adds the waiting.

**The guarantee.** For every window ``(limit, seconds)``, the sends recorded
here never exceed ``limit`` in *any* interval of ``seconds`` -- sliding, so
also every aligned (fixed) window a server might count in. Ankorstore
documents 600 per minute, 24 000 per hour and 288 000 per day without saying
how the windows are aligned (seed 000 L202-210); the sliding reading is the
strictest, so it is the safe one.

**Memory.** An exact sliding log keeps one timestamp per request: 288 000
floats for Ankorstore's day window. Instead each window keeps a log of
*entries*, where one entry stands for all sends within ``resolution`` seconds
(default 1/1000 of the window) and is counted as long as its *latest* send is
inside the window. That over-counts a little -- a send may be held up to one
resolution step longer than needed (86 s for the day window, 60 ms for the
minute) -- and never under-counts, so the guarantee holds with at most ~1000
entries per window. A resolution of 0 gives the exact log.

**What the server says wins when it is stricter.** ``X-RateLimit-Remaining``
below our own count (another process shares the credentials, or the server
counts differently) is recorded as phantom sends, and a 429's
``Retry-After``/``X-RateLimit-Reset`` blocks all sending until then
(seed 000 L218-226).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

_EPS = 1e-6
"""Seconds added to every expiry so float rounding can never admit a send early."""

_EPOCH_THRESHOLD = 1e9
"""``X-RateLimit-Reset`` values above this are epoch seconds (2001 onwards); below, a delay."""


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` requests in any ``seconds``-long interval."""

    limit: int
    seconds: float

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a rate window needs a limit of at least 1, got {self.limit}")
        if not self.seconds > 0:
            raise ValueError(f"a rate window needs a positive length, got {self.seconds}")

    def capacity(self, reserve: float) -> int:
        """Requests a caller may use when ``reserve`` (a share) must stay free."""
        return math.floor(self.limit * (1.0 - reserve))


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """One window as the status socket shows it."""

    limit: int
    seconds: float
    used: int
    remaining: int
    resets_in: float
    """Seconds until the oldest counted request leaves the window (0 when empty)."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    windows: tuple[WindowStatus, ...]
    blocked_for: float
    """Seconds the server told us to wait (429) that are still to run."""


class _Entry:
    __slots__ = ("count", "expires", "first")

    def __init__(self, first: float, expires: float, count: int) -> None:
        self.first = first
        self.expires = expires
        self.count = count


class _WindowLog:
    """Sends of one window, bucketed by ``resolution`` (see the module docstring)."""

    def __init__(self, window: Window, resolution: float) -> None:
        self.window = window
        self._resolution = resolution
        self._entries: deque[_Entry] = deque()
        self._used = 0

    def _prune(self, now: float) -> None:
        entries = self._entries
        while entries and entries[0].expires <= now:
            self._used -= entries.popleft().count

    def used(self, now: float) -> int:
        self._prune(now)
        return self._used

    def record(self, now: float, count: int) -> None:
        self._prune(now)
        expires = now + self.window.seconds + _EPS
        tail = self._entries[-1] if self._entries else None
        if tail is not None and now - tail.first < self._resolution:
            # Counted until its latest send leaves the window: conservative.
            tail.count += count
            tail.expires = max(tail.expires, expires)
        else:
            self._entries.append(_Entry(now, expires, count))
        self._used += count

    def wait_until_at_most(self, now: float, allowed: int) -> float:
        """Seconds until at most ``allowed`` sends remain counted (0 if already)."""
        self._prune(now)
        excess = self._used - allowed
        if excess <= 0:
            return 0.0
        for entry in self._entries:
            excess -= entry.count
            if excess <= 0:
                return entry.expires - now
        raise AssertionError("unreachable: a negative allowance is refused by the caller")

    def status(self, now: float) -> WindowStatus:
        used = self.used(now)
        resets_in = self._entries[0].expires - now if self._entries else 0.0
        return WindowStatus(
            limit=self.window.limit,
            seconds=self.window.seconds,
            used=used,
            remaining=max(0, self.window.limit - used),
            resets_in=max(0.0, resets_in),
        )


class RateBudget:
    """Several windows over one stream of requests, plus the server's own signals.

    ``reserve`` is the share of every window a caller must leave free: a push
    acquiring with ``reserve=0.2`` is refused once 80 % of any window is
    used, so sources (``reserve=0``) always find the last 20 %.
    """

    def __init__(self, windows: Sequence[Window], *, resolution: float = 1 / 1000) -> None:
        if not windows:
            raise ValueError("a rate budget needs at least one window")
        if not 0 <= resolution < 1:
            raise ValueError("resolution is a fraction of each window, in [0, 1)")
        self._logs = tuple(
            _WindowLog(window, window.seconds * resolution)
            for window in sorted(windows, key=lambda w: w.seconds)
        )
        self._blocked_until = -math.inf

    @property
    def windows(self) -> tuple[Window, ...]:
        return tuple(log.window for log in self._logs)

    def _check_request(self, cost: int, reserve: float) -> None:
        if cost < 1:
            raise ValueError(f"a request costs at least 1, got {cost}")
        if not 0 <= reserve < 1:
            raise ValueError(f"reserve is a share in [0, 1), got {reserve}")
        for log in self._logs:
            if cost > log.window.capacity(reserve):
                raise ValueError(
                    f"a request of cost {cost} with reserve {reserve} can never fit in "
                    f"{log.window.limit} per {log.window.seconds:g} s"
                )

    def wait_time(self, now: float, cost: int = 1, reserve: float = 0.0) -> float:
        """Seconds until a request of ``cost`` fits every window (0 = now)."""
        self._check_request(cost, reserve)
        wait = max(0.0, self._blocked_until - now)
        for log in self._logs:
            allowed = log.window.capacity(reserve) - cost
            wait = max(wait, log.wait_until_at_most(now, allowed))
        return wait

    def try_take(self, now: float, cost: int = 1, reserve: float = 0.0) -> float:
        """Record the request and return 0 if it fits now; else return the wait."""
        wait = self.wait_time(now, cost, reserve)
        if wait > 0:
            return wait
        for log in self._logs:
            log.record(now, cost)
        return 0.0

    def available(self, now: float, reserve: float = 0.0) -> int:
        """How many unit requests fit right now (what a push planner may batch)."""
        if now < self._blocked_until:
            return 0
        return max(0, min(log.window.capacity(reserve) - log.used(now) for log in self._logs))

    def lower_remaining(self, now: float, remaining: int, limit: int | None = None) -> int:
        """Believe the server when it says fewer requests remain than we count.

        The window is the one whose limit matches ``X-RateLimit-Limit``; when
        the header is absent or matches none, the shortest window (the
        header's "current window" is undocumented, seed 000 L220-221). The
        difference is recorded as phantom sends, which age out like real
        ones. Returns the number of phantom sends added.
        """
        log = next((lg for lg in self._logs if lg.window.limit == limit), self._logs[0])
        ours = log.window.limit - log.used(now)
        deficit = ours - max(0, remaining)
        if deficit <= 0:
            return 0
        log.record(now, deficit)
        return deficit

    def block_until(self, until: float) -> None:
        """Refuse every request before ``until`` (monotonic seconds)."""
        self._blocked_until = max(self._blocked_until, until)

    def blocked_for(self, now: float) -> float:
        return max(0.0, self._blocked_until - now)

    def status(self, now: float) -> BudgetStatus:
        return BudgetStatus(
            windows=tuple(log.status(now) for log in self._logs),
            blocked_for=self.blocked_for(now),
        )


@dataclass(frozen=True, slots=True)
class RateSignal:
    """What a response's headers say about the budget."""

    remaining: int | None = None
    limit: int | None = None
    retry_after: float | None = None
    """Seconds to wait, from ``Retry-After`` or else ``X-RateLimit-Reset``."""


def parse_rate_headers(headers: Mapping[str, str], *, wall_now: float) -> RateSignal:
    """Read ``X-RateLimit-Remaining``/``-Limit``, ``Retry-After`` and ``X-RateLimit-Reset``.

    ``Retry-After`` (seconds, seed 000 L225; or an HTTP date, RFC 9110 §10.2.3)
    is preferred over ``X-RateLimit-Reset`` (epoch seconds, L226) because a
    relative delay does not suffer from clock skew between us and the
    server. Unparseable values are ignored rather than trusted.
    """
    lower = {key.lower(): value for key, value in headers.items()}
    retry_after = _parse_retry_after(lower.get("retry-after"), wall_now)
    if retry_after is None:
        retry_after = _parse_reset(lower.get("x-ratelimit-reset"), wall_now)
    return RateSignal(
        remaining=_parse_int(lower.get("x-ratelimit-remaining")),
        limit=_parse_int(lower.get("x-ratelimit-limit")),
        retry_after=retry_after,
    )


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if number >= 0 else None


def _parse_seconds(value: str) -> float | None:
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _parse_retry_after(value: str | None, wall_now: float) -> float | None:
    if value is None:
        return None
    seconds = _parse_seconds(value)
    if seconds is None:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - wall_now
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds)


def _parse_reset(value: str | None, wall_now: float) -> float | None:
    if value is None:
        return None
    seconds = _parse_seconds(value)
    if seconds is None:
        return None
    if seconds >= _EPOCH_THRESHOLD:
        seconds -= wall_now
    return max(0.0, seconds)
