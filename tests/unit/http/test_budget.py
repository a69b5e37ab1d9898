"""Rate-limit arithmetic: every window honoured, in every sliding interval."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from email.utils import formatdate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.http.budget import RateBudget, Window, parse_rate_headers


def max_in_any_window(sends: Sequence[float], seconds: float) -> int:
    """The most sends in any half-open interval of ``seconds`` (exact, on sorted times)."""
    best = 0
    for i, t in enumerate(sends):
        first = bisect.bisect_right(sends, t - seconds)
        best = max(best, i - first + 1)
    return best


def greedy(budget: RateBudget, *, until: float, start: float = 0.0) -> list[float]:
    """Always have a request waiting: what a saturated API client does."""
    now, sends = start, []
    while now < until:
        wait = budget.try_take(now)
        if wait == 0:
            sends.append(now)
        else:
            now += max(wait, 1e-3)
    return sends


def test_one_window_admits_its_limit_then_waits_for_the_oldest_to_age_out() -> None:
    budget = RateBudget([Window(3, 10.0)], resolution=0)
    assert [budget.try_take(t) for t in (0.0, 1.0, 2.0)] == [0, 0, 0]
    assert budget.try_take(5.0) == pytest.approx(5.0, abs=1e-3)
    assert budget.try_take(10.0 + 1e-3) == 0  # the send at 0.0 has left the window


def test_the_longest_wait_across_windows_wins() -> None:
    budget = RateBudget([Window(2, 1.0), Window(3, 60.0)], resolution=0)
    for t in (0.0, 0.0, 1.5):
        assert budget.try_take(t) == 0
    # Minute window full (3 in 60 s): the per-second window alone would allow this.
    assert budget.try_take(3.0) == pytest.approx(57.0, abs=1e-3)


def test_reserve_keeps_the_last_share_for_high_priority_callers() -> None:
    budget = RateBudget([Window(10, 60.0)], resolution=0)
    low = [budget.try_take(0.0, reserve=0.2) for _ in range(9)]
    assert low[:8] == [0.0] * 8
    assert low[8] > 0  # a push may not take the last 20 %
    assert budget.try_take(0.0) == 0  # a source still can
    assert budget.try_take(0.0) == 0
    assert budget.try_take(0.0) > 0  # and then the window is full for everyone
    assert budget.available(0.0) == 0


def test_available_counts_what_fits_now_for_a_given_reserve() -> None:
    budget = RateBudget([Window(600, 60.0), Window(24_000, 3600.0)])
    for _ in range(100):
        budget.try_take(0.0)
    assert budget.available(1.0) == 500
    assert budget.available(1.0, reserve=0.2) == 380


def test_server_remaining_below_our_count_lowers_the_matching_window() -> None:
    budget = RateBudget([Window(600, 60.0), Window(24_000, 3600.0)])
    budget.try_take(0.0)
    # The server says the hour window (limit 24 000) has only 5 left: believe it.
    assert budget.lower_remaining(0.0, remaining=5, limit=24_000) == 23_994
    assert budget.available(0.0) == 5
    # A higher figure than ours changes nothing.
    assert budget.lower_remaining(0.0, remaining=20, limit=24_000) == 0


def test_remaining_without_a_known_limit_applies_to_the_shortest_window() -> None:
    budget = RateBudget([Window(24_000, 3600.0), Window(600, 60.0)])
    budget.lower_remaining(0.0, remaining=0, limit=None)
    assert budget.try_take(1.0) == pytest.approx(59.0, abs=1e-3)
    assert budget.try_take(60.0 + 1e-3) == 0


def test_block_until_stops_everyone_until_then() -> None:
    budget = RateBudget([Window(600, 60.0)])
    budget.block_until(30.0)
    assert budget.try_take(10.0) == pytest.approx(20.0)
    assert budget.available(10.0) == 0
    assert budget.try_take(30.0) == 0


def test_status_reports_used_remaining_and_reset() -> None:
    budget = RateBudget([Window(10, 60.0)], resolution=0)
    budget.try_take(0.0)
    budget.try_take(5.0)
    status = budget.status(20.0)
    (window,) = status.windows
    assert (window.limit, window.used, window.remaining) == (10, 2, 8)
    assert window.resets_in == pytest.approx(40.0, abs=1e-3)
    assert status.blocked_for == 0


@pytest.mark.parametrize(
    ("cost", "reserve"),
    [(0, 0.0), (11, 0.0), (9, 0.2), (1, 1.0), (1, -0.1)],
)
def test_impossible_requests_are_refused_not_waited_for(cost: int, reserve: float) -> None:
    budget = RateBudget([Window(10, 60.0)])
    with pytest.raises(ValueError):  # noqa: PT011 -- each case has its own message
        budget.try_take(0.0, cost=cost, reserve=reserve)


def test_windows_must_make_sense() -> None:
    with pytest.raises(ValueError, match="limit"):
        Window(0, 60.0)
    with pytest.raises(ValueError, match="length"):
        Window(10, 0.0)
    with pytest.raises(ValueError, match="at least one"):
        RateBudget([])


def test_ankorstore_burst_pattern_over_three_hours() -> None:
    """600/min for 40 minutes, then the hour cap holds (seed 000 L202-210)."""
    windows = [Window(600, 60.0), Window(24_000, 3600.0), Window(288_000, 86_400.0)]
    budget = RateBudget(windows)
    sends = greedy(budget, until=3 * 3600.0)
    assert max_in_any_window(sends, 60.0) <= 600
    assert max_in_any_window(sends, 3600.0) <= 24_000
    # Bucketing costs at most a sliver of throughput.
    assert len(sends) >= 0.99 * 3 * 24_000
    first_hour_minutes = {int(t // 60) for t in sends if t < 3600}
    assert 39 <= len(first_hour_minutes) <= 42


def test_bucketing_keeps_memory_bounded_on_the_day_window() -> None:
    budget = RateBudget([Window(288_000, 86_400.0)])
    for i in range(200_000):
        budget.try_take(i * 0.3)
    logs = budget._logs  # the bound is the point of the test
    assert len(logs[0]._entries) <= 1_002


gaps = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
        st.sampled_from([0.0, 0.0, 0.2, 0.5]),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(
    arrivals=gaps,
    resolution=st.sampled_from([0.0, 1 / 1000, 1 / 50, 0.3]),
    limits=st.tuples(st.integers(2, 6), st.integers(6, 30)),
)
def test_no_window_is_ever_exceeded_whatever_the_arrival_pattern(
    arrivals: list[tuple[float, float]], resolution: float, limits: tuple[int, int]
) -> None:
    windows = [Window(limits[0], 1.0), Window(limits[1], 10.0)]
    budget = RateBudget(windows, resolution=resolution)
    now, sends = 0.0, []
    by_reserve: dict[float, list[tuple[float, int]]] = {}
    for gap, reserve in arrivals:
        now += gap
        while (wait := budget.try_take(now, reserve=reserve)) > 0:
            now += max(wait, 1e-3)
        sends.append(now)
        by_reserve.setdefault(reserve, []).append((now, len(sends)))
    for window in windows:
        assert max_in_any_window(sends, window.seconds) <= window.limit
    # A caller with a reserve never filled a window beyond its share.
    for reserve, admitted in by_reserve.items():
        for at, count_so_far in admitted:
            earlier = sends[:count_so_far]
            for window in windows:
                in_window = len(earlier) - bisect.bisect_right(earlier, at - window.seconds)
                assert in_window <= window.capacity(reserve)


def test_headers_retry_after_seconds_and_remaining() -> None:
    signal = parse_rate_headers(
        {"retry-after": "12", "X-RateLimit-Remaining": "0", "x-ratelimit-limit": "600"},
        wall_now=1_700_000_000.0,
    )
    assert (signal.retry_after, signal.remaining, signal.limit) == (12.0, 0, 600)


def test_headers_retry_after_may_be_an_http_date() -> None:
    now = 1_700_000_000.0
    signal = parse_rate_headers({"Retry-After": formatdate(now + 90, usegmt=True)}, wall_now=now)
    assert signal.retry_after == pytest.approx(90.0)


def test_headers_reset_epoch_is_used_only_without_retry_after() -> None:
    now = 1_700_000_000.0
    reset_only = parse_rate_headers({"X-RateLimit-Reset": str(int(now) + 45)}, wall_now=now)
    assert reset_only.retry_after == pytest.approx(45.0)
    both = parse_rate_headers(
        {"Retry-After": "10", "X-RateLimit-Reset": str(int(now) + 45)}, wall_now=now
    )
    assert both.retry_after == 10.0
    delta = parse_rate_headers({"X-RateLimit-Reset": "30"}, wall_now=now)
    assert delta.retry_after == 30.0


def test_headers_garbage_is_ignored_not_trusted() -> None:
    signal = parse_rate_headers(
        {"Retry-After": "soon", "X-RateLimit-Remaining": "-3", "X-RateLimit-Limit": "many"},
        wall_now=1_700_000_000.0,
    )
    assert signal == type(signal)()
