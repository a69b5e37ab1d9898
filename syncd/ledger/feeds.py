"""What each source feed last achieved: cursor, last success, last error.

Cursors are written only with the transaction that covers them
(transactions.store_cursor); this module reads them and keeps the feed's
health record, which the status socket uses for freshness.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import aiosqlite

from syncd.ledger.codec import decode_optional_time, decode_strings, encode_strings, encode_time
from syncd.model import FeedState


async def mark_feed(
    conn: aiosqlite.Connection,
    feed: str,
    *,
    success_at: datetime | None,
    error: str | None,
    error_at: datetime,
    extra: Mapping[str, str] | None,
) -> None:
    """Record a success and/or an error; ``extra`` keys are merged in.

    An error is kept after a later success (the status socket shows the last
    error), but `feed_states` reports it only while it is newer than the
    last success, i.e. while the feed is still failing.
    """
    async with conn.execute(
        "SELECT extra, last_error_at FROM feeds WHERE feed = ?", (feed,)
    ) as cursor:
        row = await cursor.fetchone()
    merged = decode_strings(row[0] if row else None)
    merged.update(extra or {})
    failed_at = decode_optional_time(row[1] if row else None)
    if success_at is not None and error is None and failed_at is not None:
        # A success recorded after an error happened after it: calls for one
        # feed are sequential. Only a wall clock stepped back can stamp it
        # earlier, which would report the feed failing (and hold increases
        # waiting for its orders) until the clock caught up.
        success_at = max(success_at, failed_at + timedelta(microseconds=1))
    await conn.execute(
        """
        INSERT INTO feeds (feed, last_success, last_error, last_error_at, extra)
        VALUES (:feed, :success, :error, :error_at, :extra)
        ON CONFLICT (feed) DO UPDATE SET
            last_success = COALESCE(:success, last_success),
            last_error = COALESCE(:error, last_error),
            last_error_at = COALESCE(:error_at, last_error_at),
            extra = :extra
        """,
        {
            "feed": feed,
            "success": None if success_at is None else encode_time(success_at),
            "error": error,
            "error_at": None if error is None else encode_time(error_at),
            "extra": encode_strings(merged),
        },
    )


async def feed_states(conn: aiosqlite.Connection) -> list[FeedState]:
    """Every feed with a cursor or a health record, by name."""
    async with conn.execute(
        """
        SELECT n.feed, c.value, f.last_success, f.last_error, f.last_error_at, f.extra
        FROM (SELECT feed FROM feeds UNION SELECT feed FROM cursors) n
        LEFT JOIN cursors c ON c.feed = n.feed
        LEFT JOIN feeds f ON f.feed = n.feed
        ORDER BY n.feed
        """
    ) as cursor:
        rows = await cursor.fetchall()
    states: list[FeedState] = []
    for feed, value, success, error, error_at, extra in rows:
        last_success = decode_optional_time(success)
        failing_at = decode_optional_time(error_at)
        current_error = (
            error
            if failing_at is not None and (last_success is None or failing_at >= last_success)
            else None
        )
        states.append(
            FeedState(
                feed=feed,
                cursor=value,
                last_success=last_success,
                last_error=current_error,
                extra=decode_strings(extra),
            )
        )
    return states
