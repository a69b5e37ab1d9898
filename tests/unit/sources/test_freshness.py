"""Freshness records: finding a feed's state and the instants kept in its ``extra``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from syncd.model import FeedState
from syncd.sources.freshness import (
    decode_instant,
    encode_instant,
    find_feed,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def state(last_success: datetime | None, feed: str = "activeants") -> FeedState:
    return FeedState(feed=feed, cursor=None, last_success=last_success)


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
