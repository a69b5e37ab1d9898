"""`syncd status` rendering: readable, aligned, colour only when asked, safe to print."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.status.render import render_status, status_line
from syncd.status.server import StatusReply
from tests.unit.status._support import channel, source, status_reply

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _table(text: str, first_header: str) -> list[str]:
    """The header line starting with ``first_header`` and the rows under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(first_header))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def _assert_aligned(table: list[str], left_columns: list[str]) -> None:
    """Each named left-aligned column starts at the same offset on every row."""
    header = table[0]
    for name in left_columns:
        offset = header.index(name)
        for row in table[1:]:
            assert row[offset - 2 : offset] == "  ", (name, row)
            assert row[offset] != " ", (name, row)


def test_healthy_summary() -> None:
    text = render_status(status_reply("ok"), color=False)
    first = text.splitlines()[0]
    assert "OK" in first
    assert "up 3h 00m" in first
    assert "pid 4242" in first
    assert "\x1b" not in text
    sources = _table(text, "NAME  ")
    assert [row.split()[0] for row in sources[1:]] == ["activeants", "astral"]
    _assert_aligned(sources, ["STATE", "LAST SUCCESS", "CURSOR", "LAST ERROR"])
    channels = _table(text, "NAME        STATE  QUEUE")
    _assert_aligned(channels, ["STATE", "LAST PUSH", "BUDGET LEFT"])
    ankorstore = next(row for row in channels if row.strip().startswith("ankorstore"))
    # 12 s between the last push and the reply's generated_at.
    assert "12s ago" in ankorstore
    # Remaining budgets are rounded down, never overstated: 23 388 -> 23k.
    assert ankorstore.endswith("min 588/600 h 23k/24k d 287k/288k")
    fabric = next(row for row in channels if row.strip().startswith("fabric"))
    assert fabric.endswith(" -")
    assert "Parked variants: none" in text
    assert "Held cycles: none" in text
    assert "Counters: pushes 10, errors 0, http_429 0, cycles 5" in text


def test_degraded_summary_shows_reasons_and_the_stale_source() -> None:
    reply = status_reply("degraded", ["source astral stale for 930 s"])
    text = render_status(reply, color=False)
    lines = text.splitlines()
    assert "DEGRADED" in lines[0]
    assert lines[1].strip() == "- source astral stale for 930 s"
    astral = next(line for line in lines if line.strip().startswith("astral"))
    assert "STALE" in astral
    assert "15m 30s ago" in astral


def test_failing_summary_shows_held_cycles_and_errors() -> None:
    reply = status_reply("failing", ["ankorstore: 7 push errors"])
    text = render_status(reply, color=False)
    assert "FAILING" in text.splitlines()[0]
    held = _table(text, "CHANNEL     HOLD")
    assert len(held) == 2
    assert held[1].split()[:2] == ["ankorstore", "3"]
    assert "10m 00s ago" in held[1]
    assert held[1].endswith("would zero 30 of 100 variants")
    _assert_aligned(held, ["HELD SINCE", "REASON"])
    assert "Held cycles (1)" in text
    channels = _table(text, "NAME        STATE  QUEUE")
    assert "HELD" in channels[1]


@pytest.mark.parametrize("health", ["ok", "degraded", "failing"])
def test_colour_only_when_asked_and_it_never_moves_columns(health: Any) -> None:
    reply = status_reply(health, ["a reason"])
    plain = render_status(reply, color=False)
    coloured = render_status(reply, color=True)
    assert "\x1b[" in coloured
    assert "\x1b" not in plain
    assert ANSI.sub("", coloured) == plain


def test_remote_text_cannot_drive_the_terminal() -> None:
    reply = status_reply("degraded")
    reply["sources"][1] = source(
        "astral", last_error="HTTP 503 \x1b[2J\x1b]0;pwned\x07body\nsecond line"
    )
    reply["reasons"] = ["bad\rreason\x9b"]
    text = render_status(reply, color=False)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "\r" not in text
    assert "\x9b" not in text
    assert "second line" in text  # the newline became a space, the row stays one row


def _column(text: str, header: str, first_row: str) -> str:
    """The text of one column of a rendered table, continuation lines included, joined."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if header in line and "NAME" in line)
    start = lines[top].index(header)
    row = next(i for i in range(top + 1, len(lines)) if first_row in lines[i])
    pieces = [lines[row][start:].split("  ")[0].strip()]
    for line in lines[row + 1 :]:
        if line[:start].strip():  # the next row has begun
            break
        pieces.append(line[start:].split("  ")[0].strip())
    return "".join(pieces)


def test_long_cursors_are_wrapped_whole_within_their_column() -> None:
    reply = status_reply()
    cursor = "0190a1b2-aaaa-bbbb-cccc-1234567890ab,2024-05-01T11:47:40Z,page=000000000017"
    reply["sources"][0] = source("activeants", cursor=cursor)
    text = render_status(reply, color=False)
    assert "..." not in text
    assert _column(text, "CURSOR", "activeants") == cursor
    # The other rows and sections stay aligned: astral's row still starts at the name column.
    assert any(line.startswith("  astral ") for line in text.splitlines())


def test_long_errors_and_reasons_are_wrapped_not_cut() -> None:
    reply = status_reply("degraded")
    error = "login refused (400 invalid_grant): " + "check password_file " * 8 + "END-OF-ERROR"
    reason = "ankorstore: " + "the order feed is overdue and increases wait " * 8 + "END-OF-REASON"
    reply["sources"][0] = source("activeants", last_error=error)
    reply["reasons"] = [reason]
    text = render_status(reply, color=False)
    assert "END-OF-ERROR" in text
    assert "END-OF-REASON" in text
    assert " ".join(_column(text, "LAST ERROR", "activeants").split()) != ""
    flat = " ".join(text.split())
    assert " ".join(reason.split()) in flat
    assert max(len(line) for line in text.splitlines()) < 200


def test_many_parked_variants_are_summarised() -> None:
    reply = status_reply()
    reply["channels"][0] = channel(
        "ankorstore",
        parked=[{"sku": f"SKU-{n}", "reason": "422 unknown variant"} for n in range(25)],
    )
    text = render_status(reply, color=False)
    assert "Parked variants (25)" in text
    assert "SKU-19" in text
    assert "SKU-20" not in text
    assert "... and 5 more" in text


def test_why_a_channel_holds_increases_back_is_shown() -> None:
    reason = (
        "30 increase(s) wait for the channel's own orders: "
        "order feed overdue: fabric_orders (failing: HttpError: 502)"
    )
    reply = status_reply()
    reply["channels"][1] = channel("fabric", rate_limit=[], waiting=[reason])
    text = render_status(reply, color=False)
    channels = _table(text, "NAME        STATE    QUEUE")
    fabric = next(row for row in channels if row.strip().startswith("fabric"))
    assert fabric.split()[1] == "WAITING"
    ankorstore = next(row for row in channels if row.strip().startswith("ankorstore"))
    assert ankorstore.split()[1] == "ok"
    waiting = _table(text, "CHANNEL  REASON")
    assert "Waiting (1)" in text
    assert waiting[1].split(maxsplit=1) == ["fabric", reason]
    # Nothing waits: no section at all; an older daemon's reply without the field renders.
    assert "Waiting" not in render_status(status_reply(), color=False)
    del reply["channels"][1]["waiting"]  # type: ignore[misc]
    assert "Waiting" not in render_status(reply, color=False)


def test_exhausted_budget_is_painted_as_a_problem() -> None:
    reply = status_reply()
    reply["channels"][0] = channel(
        "ankorstore",
        rate_limit=[
            {"window": "minute", "limit": 600, "used": 600, "remaining": 0, "resets_in_s": 20.0}
        ],
    )
    row = next(
        line for line in render_status(reply, color=True).splitlines() if "min 0/600" in line
    )
    assert "\x1b[1;31mmin 0/600" in row


def test_a_sparse_or_odd_reply_still_renders() -> None:
    odd: dict[str, Any] = {
        "ok": True,
        "health": "something-new",
        "sources": [{"name": "activeants", "age_s": float("inf"), "records": True}, "junk"],
        "channels": None,
        "uptime_s": "long",
    }
    text = render_status(odd, color=False)
    assert "SOMETHING-NEW" in text
    assert "activeants" in text
    assert "up ?" in text
    assert "(none configured)" in text


def test_ages_use_now_when_the_reply_has_no_generated_at() -> None:
    reply: StatusReply = status_reply()
    del reply["generated_at"]  # type: ignore[misc]
    now = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    text = render_status(reply, color=False, now=now)
    assert "5m 12s ago" in text  # last push at 11:59:48


def test_a_channel_working_through_a_queue_shows_done_total_rate_and_eta() -> None:
    reply = status_reply()
    progress = {"done": 1200, "total": 3000, "rate_per_min": 58.4, "eta_s": 1862.0}
    reply["channels"][1] = channel("fabric", rate_limit=[], queue_depth=1800, progress=progress)

    text = render_status(reply, color=False)

    rows = _table(text, "CHANNEL  DONE/TOTAL, RATE, ETA")
    assert rows[1].split(maxsplit=1) == ["fabric", "1200/3000 (40%), 58/min, ETA 31m 02s"]
    assert not any(row.strip().startswith("ankorstore") for row in rows)
    # Nothing queued anywhere: no section.
    assert "Progress" not in render_status(status_reply(), color=False)


def test_status_line_names_the_first_reason_and_counts_the_rest() -> None:
    reply = {
        "health": "degraded",
        "reasons": ["source astral stale: no successful read for 930 s", "x", "y"],
        "sources": [{"stale": False}, {"stale": True}, {"enabled": False, "stale": False}],
        "channels": [
            {"name": "ankorstore", "queue_depth": 0},
            {"name": "fabric", "queue_depth": 2},
        ],
    }
    assert status_line(reply) == (
        "degraded: 1/2 sources fresh, ankorstore 0 queued, fabric 2 queued; "
        "source astral stale: no successful read for 930 s (+2 more)"
    )


def test_status_line_shows_the_progress_of_a_channel_working_through_its_queue() -> None:
    progress = {"done": 18, "total": 30, "rate_per_min": 20.0, "eta_s": 36.0}
    reply = {
        "health": "ok",
        "sources": [{"stale": False}],
        "channels": [
            {"name": "ankorstore", "queue_depth": 0, "progress": None},
            {"name": "fabric", "queue_depth": 12, "progress": progress},
        ],
    }
    assert status_line(reply) == (
        "ok: 1 sources fresh, ankorstore 0 queued, fabric 12 queued (18/30 (60%), 20/min, ETA 36s)"
    )
