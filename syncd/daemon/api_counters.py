"""Per-API HTTP counters of the running daemon, kept across config reloads.

The status document and the metrics count requests, 429 answers, retries
and failures per API "since the daemon started", although a SIGHUP reload
replaces every API client; recent 429s make the daemon ``degraded``
(:mod:`syncd.status.health`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from syncd.wiring import ApiClients

RECENT_429_WINDOW_S = 900.0
"""429 answers within this many seconds make the daemon ``degraded``."""


class ApiCounters:
    """Per-API request counters that survive a reload, and the 429s seen recently.

    A SIGHUP reload builds new API clients, whose counters start at zero;
    :meth:`retire` folds the old clients' counts in first, so totals stay
    "since the daemon started".
    """

    def __init__(
        self,
        *,
        window_s: float = RECENT_429_WINDOW_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._monotonic = monotonic
        self._retired: dict[str, dict[str, int]] = {}
        self._last_429: dict[str, int] = {}
        self._events: deque[tuple[float, str, int]] = deque()

    def retire(self, clients: ApiClients) -> None:
        for client in clients.all():
            kept = self._retired.setdefault(client.name, {})
            for key, value in client.stats.as_dict().items():
                kept[key] = kept.get(key, 0) + value

    def totals(self, clients: ApiClients) -> dict[str, dict[str, int]]:
        merged = {api: dict(stats) for api, stats in self._retired.items()}
        for client in clients.all():
            into = merged.setdefault(client.name, {})
            for key, value in client.stats.as_dict().items():
                into[key] = into.get(key, 0) + value
        return merged

    def observe(self, clients: ApiClients) -> None:
        """Note new 429 answers since the last call (the daemon calls it every tick)."""
        now = self._monotonic()
        for api, stats in self.totals(clients).items():
            count = stats.get("rate_limited", 0)
            new = count - self._last_429.get(api, 0)
            if new > 0:
                self._events.append((now, api, new))
            self._last_429[api] = count

    def recent_429(self) -> dict[str, int]:
        horizon = self._monotonic() - self.window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()
        recent: dict[str, int] = {}
        for _, api, count in self._events:
            recent[api] = recent.get(api, 0) + count
        return recent
