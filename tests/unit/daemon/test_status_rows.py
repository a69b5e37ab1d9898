"""How the status document names a rate-limit window."""

from __future__ import annotations

from syncd.daemon.status_rows import window_name


def test_rate_windows_are_named_by_their_length() -> None:
    # Limiters pad windows against clock skew: 62 s is still "the minute limit".
    assert [window_name(s) for s in (60, 62, 3_602, 86_402, 30, 600)] == [
        "minute",
        "minute",
        "hour",
        "day",
        "30s",
        "600s",
    ]
