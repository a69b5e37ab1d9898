"""The pure backlog arithmetic behind `syncd status`'s progress, ``STATUS=`` and `syncd once`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.progress import (
    BudgetWindow,
    Progress,
    ProgressTracker,
    budget_floor_s,
    describe,
    estimate_eta_s,
    human_duration,
    progress_from,
)

MINUTE_20 = BudgetWindow(limit=20, seconds=60.0, remaining=0, resets_in=40.0)


def test_nothing_queued_is_no_backlog() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=0, acknowledged=0)
    assert tracker.progress() is None


def test_done_counts_acknowledgements_since_the_backlog_started_and_total_adds_the_queue() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=0, acknowledged=500)  # an earlier backlog, finished
    tracker.observe(10.0, pending=300, acknowledged=500)
    tracker.observe(70.0, pending=240, acknowledged=560)

    progress = tracker.progress()

    assert progress == Progress(done=60, total=300, rate_per_min=60.0, eta_s=240.0)


def test_acknowledgements_before_the_first_busy_observation_belong_to_the_backlog() -> None:
    # The daemon's first status request comes a few seconds after the push began.
    tracker = ProgressTracker()
    tracker.observe(5.0, pending=70, acknowledged=30)

    progress = tracker.progress()

    assert progress is not None
    assert (progress.done, progress.total) == (30, 100)
    assert progress.rate_per_min is None  # one observation spans no time
    assert progress.eta_s is None


def test_acknowledgements_before_the_first_observation_count_since_counting_started() -> None:
    # The daemon started at 0 and pushed 30 before its first status request at 5 s.
    tracker = ProgressTracker(start_at=0.0)
    tracker.observe(5.0, pending=70, acknowledged=30)

    assert tracker.progress() == Progress(done=30, total=100, rate_per_min=360.0, eta_s=70 / 6)


def test_new_changes_joining_the_backlog_grow_the_total() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=100, acknowledged=0)
    tracker.observe(60.0, pending=150, acknowledged=50)  # 100 more changes arrived

    progress = tracker.progress()

    assert progress is not None
    assert (progress.done, progress.total) == (50, 200)


def test_a_drained_queue_ends_the_backlog_and_the_next_one_starts_from_zero() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=10, acknowledged=0)
    tracker.observe(30.0, pending=0, acknowledged=10)
    assert tracker.progress() is None

    tracker.observe(40.0, pending=5, acknowledged=10)
    tracker.observe(100.0, pending=2, acknowledged=13)

    assert tracker.progress() == Progress(done=3, total=5, rate_per_min=3.0, eta_s=40.0)


def test_the_rate_follows_the_sliding_window_not_the_whole_backlog() -> None:
    tracker = ProgressTracker(window_s=300.0)
    tracker.observe(0.0, pending=10_000, acknowledged=0)
    # Fast for ten minutes, then a tenth of the pace.
    count = 0
    for minute in range(1, 11):
        count += 600
        tracker.observe(minute * 60.0, pending=10_000 - count, acknowledged=count)
    for minute in range(11, 21):
        count += 60
        tracker.observe(minute * 60.0, pending=10_000 - count, acknowledged=count)

    progress = tracker.progress()

    assert progress is not None
    assert progress.rate_per_min == pytest.approx(60.0)
    assert progress.eta_s == pytest.approx((10_000 - count) / 60.0 * 60.0)


def test_a_stalled_backlog_has_a_zero_rate_and_no_eta() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=10, acknowledged=0)
    tracker.observe(120.0, pending=10, acknowledged=0)  # blocked by a stale source

    assert tracker.progress() == Progress(done=0, total=10, rate_per_min=0.0, eta_s=None)


def test_a_counter_that_went_backwards_restarts_the_backlog() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=10, acknowledged=100)
    tracker.observe(10.0, pending=8, acknowledged=2)

    progress = tracker.progress()

    assert progress is not None
    assert progress.done == 0
    assert progress.total == 8


def test_after_a_burst_the_eta_waits_for_the_spent_window() -> None:
    # 16 of 30 went out in the first second (the minute's budget); 14 remain.
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=30, acknowledged=0)
    tracker.observe(2.0, pending=14, acknowledged=16)

    progress = tracker.progress(per_request=1, windows=[MINUTE_20])

    assert progress is not None
    assert progress.rate_per_min == pytest.approx(480.0)
    # The burst's rate says 1.75 s; nothing more can go before the window resets.
    assert progress.eta_s == pytest.approx(40.0)


def test_budget_floor_counts_whole_windows_beyond_the_first_reset() -> None:
    window = BudgetWindow(limit=20, seconds=60.0, remaining=5, resets_in=30.0)

    assert budget_floor_s(5, [window]) == 0.0
    assert budget_floor_s(6, [window]) == 30.0
    assert budget_floor_s(25, [window]) == 30.0
    assert budget_floor_s(26, [window]) == 90.0
    assert budget_floor_s(65, [window]) == 150.0


def test_the_tightest_window_decides_the_floor() -> None:
    minute = BudgetWindow(limit=600, seconds=60.0, remaining=600, resets_in=0.0)
    hour = BudgetWindow(limit=24_000, seconds=3_600.0, remaining=0, resets_in=1_200.0)

    assert budget_floor_s(1, [minute, hour]) == 1_200.0
    assert budget_floor_s(1, [minute]) == 0.0
    assert budget_floor_s(1, []) == 0.0


def test_values_per_request_turn_into_requests() -> None:
    tracker = ProgressTracker()
    tracker.observe(0.0, pending=5_000, acknowledged=0)
    tracker.observe(60.0, pending=4_000, acknowledged=1_000)
    window = BudgetWindow(limit=10, seconds=60.0, remaining=0, resets_in=10.0)

    progress = tracker.progress(per_request=50, windows=[window])

    # 4 000 values / 50 = 80 requests: 10 per minute after the reset -> 10 + 7 * 60 s.
    assert progress is not None
    assert progress.eta_s == pytest.approx(430.0)


@given(
    requests=st.integers(min_value=0, max_value=100_000),
    limit=st.integers(min_value=1, max_value=1_000),
    used=st.integers(min_value=0, max_value=1_000),
    resets_in=st.floats(min_value=0.0, max_value=60.0),
)
def test_no_schedule_the_window_allows_beats_the_floor(
    requests: int, limit: int, used: int, resets_in: float
) -> None:
    """Sending as fast as a fixed window allows never finishes before the floor."""
    used = min(used, limit)
    window = BudgetWindow(limit=limit, seconds=60.0, remaining=limit - used, resets_in=resets_in)
    # Greedy: what remains now, then a full window at each reset.
    left, finish, at = requests, 0.0, resets_in
    left -= min(left, limit - used)
    while left > 0:
        finish = at
        left -= min(left, limit)
        at += 60.0
    assert budget_floor_s(requests, [window]) <= finish + 1e-9


def test_eta_is_zero_for_an_empty_queue_and_unknown_without_a_rate() -> None:
    assert estimate_eta_s(0, None, requests=0, windows=()) == 0.0
    assert estimate_eta_s(10, None, requests=10, windows=()) is None
    assert estimate_eta_s(10, 0.0, requests=10, windows=()) is None
    assert estimate_eta_s(10, 5.0, requests=10, windows=()) == pytest.approx(120.0)


def test_described_for_a_person() -> None:
    progress = Progress(done=1_200, total=3_000, rate_per_min=58.4, eta_s=1_862.0)

    assert describe(progress) == "1200/3000 (40%), 58/min, ETA 31m 02s"
    assert describe(Progress(0, 10, None, None)) == "0/10 (0%), rate -, ETA ?"
    assert human_duration(7_500) == "2h 05m"
    assert human_duration(0.2) == "1s"
    assert human_duration(90_000) == "1d 1h"
    # Elapsed times (ages, uptime) round down, as a clock shows them.
    assert human_duration(0.8, round_up=False) == "0s"
    assert human_duration(599.9, round_up=False) == "9m 59s"


def test_read_back_from_a_status_document_field_by_field() -> None:
    document = {"done": 3, "total": 9, "rate_per_min": 1.5, "eta_s": None, "x": "ignored"}

    assert progress_from(document) == Progress(3, 9, 1.5, None)
    assert progress_from({"done": True, "total": "9"}) == Progress(0, 0, None, None)
