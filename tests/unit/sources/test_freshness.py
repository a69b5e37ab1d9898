"""Freshness: when a feed counts as stale, from what the ledger recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.model import FeedState
from syncd.sources.freshness import (
    decode_instant,
    encode_instant,
    find_feed,
    is_stale,
    seconds_since_success,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def state(last_success: datetime | None, feed: str = "activeants") -> FeedState:
    return FeedState(feed=feed, cursor=None, last_success=last_success)


def test_a_feed_that_never_succeeded_is_stale() -> None:
    assert is_stale(None, 900, NOW)
    assert is_stale(state(None), 900, NOW)
    assert seconds_since_success(state(None), NOW) is None


def test_a_feed_is_stale_only_once_older_than_stale_after() -> None:
    assert not is_stale(state(NOW - timedelta(seconds=899)), 900, NOW)
    assert not is_stale(state(NOW - timedelta(seconds=900)), 900, NOW)
    assert is_stale(state(NOW - timedelta(seconds=901)), 900, NOW)
    assert seconds_since_success(state(NOW - timedelta(seconds=30)), NOW) == 30


def test_an_error_after_a_recent_success_does_not_make_it_stale() -> None:
    failing = FeedState(
        feed="astral", cursor="c", last_success=NOW - timedelta(seconds=10), last_error="503"
    )
    assert not is_stale(failing, 600, NOW)


def test_find_feed_picks_the_named_feed() -> None:
    states = [state(NOW, "activeants"), state(None, "astral")]
    found = find_feed(states, "astral")
    assert found is not None
    assert found.feed == "astral"
    assert find_feed(states, "fabric_orders") is None


def test_instants_round_trip_and_bad_values_read_as_absent() -> None:
    assert decode_instant({"at": encode_instant(NOW)}, "at") == NOW
    assert decode_instant({}, "at") is None
    assert decode_instant({"at": ""}, "at") is None
    assert decode_instant({"at": "yesterday"}, "at") is None
    assert decode_instant({"at": "2025-03-01T12:00:00"}, "at") is None  # naive
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_instant(datetime(2025, 3, 1))
