"""Feed health records and cursors as the status socket reads them."""

from __future__ import annotations

import pytest

from syncd.ledger.store import Ledger
from syncd.model import CursorUpdate, FeedState, TransactionKind

from .builders import at, movement


@pytest.mark.anyio
async def test_error_is_current_until_a_later_success(ledger: Ledger) -> None:
    await ledger.mark_feed("astral", success_at=at(0), extra={"mode": "incremental"})
    await ledger.mark_feed("astral", error="HTTP 503", error_at=at(5))
    (state,) = await ledger.feed_states()
    assert state == FeedState("astral", None, at(0), "HTTP 503", {"mode": "incremental"})
    await ledger.mark_feed("astral", success_at=at(6), extra={"pages": "3"})
    (state,) = await ledger.feed_states()
    assert state == FeedState("astral", None, at(6), None, {"mode": "incremental", "pages": "3"})


@pytest.mark.anyio
async def test_a_success_after_an_error_ends_it_even_with_the_clock_set_back(
    ledger: Ledger,
) -> None:
    await ledger.mark_feed("astral", error="HTTP 503", error_at=at(600))
    # The wall clock was set back ten minutes before the next, successful poll.
    await ledger.mark_feed("astral", success_at=at(5))
    (state,) = await ledger.feed_states()
    assert state.last_error is None  # not "failing" until the clock catches up
    assert state.last_success is not None
    assert state.last_success > at(600)


@pytest.mark.anyio
async def test_feed_states_include_cursors(ledger: Ledger) -> None:
    draft = movement("c", cursor=CursorUpdate("astral:postings", "u1"), kind=TransactionKind.CURSOR)
    await ledger.record(draft)
    await ledger.mark_feed("activeants", success_at=at(1))
    assert [(s.feed, s.cursor) for s in await ledger.feed_states()] == [
        ("activeants", None),
        ("astral:postings", "u1"),
    ]
    assert await ledger.cursor("unknown") is None
