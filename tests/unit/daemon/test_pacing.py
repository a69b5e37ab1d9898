"""Backoff after failures and sticky wake-ups: when the daemon's loops run again."""

from __future__ import annotations

import pytest

from syncd.daemon.pacing import MIN_BACKOFF_S, Wakeup, backoff_delay

pytestmark = pytest.mark.anyio


def test_backoff_doubles_per_failure_and_is_bounded() -> None:
    delays = [backoff_delay(2.0, n, maximum=60.0, jitter=0.0) for n in range(1, 9)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert backoff_delay(0.05, 1, minimum=1.0, jitter=0.0) == 1.0


def test_backoff_never_retries_slower_than_the_normal_poll_interval_allows() -> None:
    # A source polled every 10 minutes is not pushed to a 5-minute ceiling below that.
    assert backoff_delay(600.0, 1, maximum=300.0, jitter=0.0) == 600.0
    assert backoff_delay(600.0, 5, maximum=300.0, jitter=0.0) == 600.0


def test_backoff_jitter_stays_within_its_band_and_above_the_floor() -> None:
    low = backoff_delay(4.0, 3, jitter=0.1, rand=lambda: 0.0)
    high = backoff_delay(4.0, 3, jitter=0.1, rand=lambda: 1.0)
    assert (low, high) == pytest.approx((16.0 * 0.9, 16.0 * 1.1))
    assert backoff_delay(0.0, 1, jitter=0.0) == MIN_BACKOFF_S


async def test_a_wakeup_set_before_anyone_waits_is_not_lost() -> None:
    wake = Wakeup()
    wake.set()
    assert await wake.wait(0.0) is True
    assert await wake.wait(0.01) is False
