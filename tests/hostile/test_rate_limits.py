"""``[apis.ankorstore] requests_per_minute = 30`` is what reaches Ankorstore.

Counted at the simulator: every request the Ankorstore host (ASTRAL, orders,
stock writes) receives is stamped on arrival. The token endpoint has its own
budget and is not counted. The default run proves the limit over the first
window (the daemon wants far more than 30 requests in its first seconds);
the slow run watches two and a half minutes of sliding windows.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox.traffic import Exchange, TrafficLog
from syncd.sandbox.world import SandboxWorld
from tests.hostile._support import set_api_key
from tests.integration.daemon._support import daemon, wait_until, write_config

pytestmark = pytest.mark.integration

LIMIT = 30
TOKEN_PATH = "/oauth/token"


class ArrivalLog(TrafficLog):
    """The simulators' traffic log, with the time each Ankorstore API request was recorded."""

    def __init__(self) -> None:
        super().__init__()
        self._times_lock = threading.Lock()
        self._times: list[float] = []

    def append(self, exchange: Exchange) -> None:
        if exchange.api == "ankorstore" and exchange.path != TOKEN_PATH:
            with self._times_lock:
                self._times.append(time.monotonic())
        super().append(exchange)

    def times(self) -> list[float]:
        with self._times_lock:
            return list(self._times)


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of requests inside any ``seconds``-long window."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + seconds) - i for i, t in enumerate(ordered)), default=0
    )


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=60, seed=17)
    sandbox.traffic = ArrivalLog()
    with sandbox.threaded():
        yield sandbox


def _log(world: SandboxWorld) -> ArrivalLog:
    assert isinstance(world.traffic, ArrivalLog)
    return world.traffic


def _minute_window(reply: dict[str, object]) -> dict[str, object]:
    channels = reply["channels"]
    assert isinstance(channels, list)
    [ankorstore] = [c for c in channels if c["name"] == "ankorstore"]
    [minute] = [w for w in ankorstore["rate_limit"] if w["window"] == "minute"]
    return dict(minute)


def test_thirty_a_minute_is_all_ankorstore_gets_in_the_first_window(
    world: SandboxWorld, directory: Path
) -> None:
    config = write_config(world, directory)
    set_api_key(config, "ankorstore", "requests_per_minute", str(LIMIT))
    log = _log(world)
    with daemon(config, directory) as syncd:
        wait_until(syncd.answers, timeout=30, what="the status socket")
        # With 0.5 s polls the daemon would send hundreds a minute: it reaches the limit...
        wait_until(lambda: len(log.times()) >= LIMIT, timeout=45, what=f"{LIMIT} requests")
        first = log.times()[0]
        assert _minute_window(syncd.ask({"cmd": "status"}))["limit"] == LIMIT
        # ...and sends nothing more while the first request's minute lasts (watched
        # for a few seconds: every 0.5 s poll in them wanted more).
        observe_until = max(first + 10.0, time.monotonic() + 5.0)
        while time.monotonic() < observe_until:
            assert len(log.times()) <= LIMIT, "more than the configured limit in one minute"
            time.sleep(0.5)
        # Judged on arrival times, not on how fast this machine got here: within the
        # first request's minute exactly the configured number arrived.
        assert len([t for t in log.times() if t < first + 60.0]) == LIMIT
        window = _minute_window(syncd.ask({"cmd": "status"}))
        if time.monotonic() < first + 58.0:  # still inside that minute: the budget is spent
            assert (window["limit"], window["remaining"]) == (LIMIT, 0)
        assert window["limit"] == LIMIT
        syncd.stop()
    assert world.ankorstore.counters.rate_limited == 0


@pytest.mark.slow
def test_thirty_a_minute_holds_over_two_and_a_half_minutes(
    world: SandboxWorld, directory: Path
) -> None:
    config = write_config(world, directory)
    set_api_key(config, "ankorstore", "requests_per_minute", str(LIMIT))
    log = _log(world)
    with daemon(config, directory) as syncd:
        wait_until(syncd.answers, timeout=30, what="the status socket")
        wait_until(lambda: len(log.times()) >= 1, timeout=30, what="a first request")
        first = log.times()[0]
        wait_until(lambda: time.monotonic() >= first + 150.0, timeout=200, what="150 s")
        syncd.stop()
    times = log.times()
    assert most_in_any_window(times, 60.0) <= LIMIT
    assert len(times) > 2 * LIMIT  # the budget was used again in each new minute
    assert world.ankorstore.counters.rate_limited == 0
