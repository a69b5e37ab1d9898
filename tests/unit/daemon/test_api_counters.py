"""Per-API HTTP counters across a config reload, and the recent 429s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from syncd.daemon.api_counters import ApiCounters
from syncd.http.client import ClientStats
from syncd.wiring import ApiClients


@dataclass
class _FakeClient:
    name: str
    stats: ClientStats = field(default_factory=ClientStats)


@dataclass
class _FakeClients:
    """Just enough of ApiClients for the counters."""

    clients: list[_FakeClient]

    def all(self) -> list[_FakeClient]:
        return self.clients


def test_recent_429s_are_counted_across_a_reload_and_forgotten_after_the_window() -> None:
    clock = [1000.0]
    counters = ApiCounters(window_s=60.0, monotonic=lambda: clock[0])
    old_client = _FakeClient("ankorstore", ClientStats(rate_limited=2))
    old = cast(ApiClients, _FakeClients([old_client]))
    counters.observe(old)
    assert counters.recent_429() == {"ankorstore": 2}
    counters.retire(old)  # SIGHUP: new clients, counting from zero
    new_client = _FakeClient("ankorstore")
    new = cast(ApiClients, _FakeClients([new_client]))
    new_client.stats.rate_limited = 1
    counters.observe(new)
    assert counters.totals(new)["ankorstore"]["rate_limited"] == 3
    assert counters.recent_429() == {"ankorstore": 3}
    clock[0] += 61
    assert counters.recent_429() == {}
