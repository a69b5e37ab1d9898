"""Render a status reply as a summary people can read at a glance, or as one line.

Pure: a reply mapping in, text out. The reply comes from another process
(possibly another syncd version), so every field is read defensively -- a
missing or odd field shows as ``-`` rather than breaking the summary -- and
every string is stripped of control characters, because error messages can
quote remote API responses and must not drive the operator's terminal.

Column widths are computed on the plain text and colour codes wrapped around
the padded cells afterwards, so colour never disturbs alignment. Long cursors,
errors and reasons are wrapped onto continuation lines within their column,
never cut: the end of a cursor or of an error is often the part that matters.

:func:`status_line` is the one line the daemon hands systemd as ``STATUS=``.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from syncd.progress import describe as describe_progress
from syncd.progress import human_duration, progress_from

_SGR = {
    "ok": "32",
    "warn": "33",
    "bad": "1;31",
    "dim": "2",
    "head": "1",
}
"""ANSI Select Graphic Rendition codes per style name."""

_HEALTH_STYLE = {"ok": "ok", "degraded": "warn", "failing": "bad"}
_WINDOW_ABBREV = {"second": "s", "minute": "min", "hour": "h", "day": "d"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CURSOR_WIDTH = 32
_ERROR_WIDTH = 60
_REASON_WIDTH = 80
"""Column widths long values are wrapped at (not cut at)."""
_PARKED_SHOWN = 20
STATUS_LINE_LIMIT = 240
"""Characters of the one-line summary sent to systemd as ``STATUS=``."""
_INDENT = "  "
_GAP = "  "

Cell = tuple[str, str | None]
"""Plain text and the style to paint it with (None: unpainted)."""


def render_status(status: Mapping[str, Any], *, color: bool, now: datetime | None = None) -> str:
    """A multi-line summary of a ``status`` reply (no trailing newline).

    Ages of timestamps are measured from ``now``, else from the reply's
    ``generated_at``, else from the wall clock.
    """
    paint = _Paint(color)
    ref = now or _parse_time(status.get("generated_at")) or datetime.now(UTC)
    channels = _records(status.get("channels"))
    lines = [*_header(status, paint), ""]
    lines += [paint("Sources", "head"), *_sources(_records(status.get("sources")), paint), ""]
    lines += [paint("Channels", "head"), *_channels(channels, ref, paint), ""]
    progress = _progress(channels, paint)
    if progress:
        lines += [*progress, ""]
    lines += [*_parked(channels, paint), ""]
    lines += [*_held(channels, ref, paint), ""]
    waiting = _waiting(channels, paint)
    if waiting:
        lines += [*waiting, ""]
    lines += _totals(status)
    return "\n".join(lines)


# --- sections ------------------------------------------------------------------------


def status_line(reply: Mapping[str, Any]) -> str:
    """The one ``STATUS=`` line: health, fresh sources, queue per channel, first reason.

    e.g. ``ok: 3 sources fresh, ankorstore 0 queued, fabric 2 queued``.
    """
    sources = [s for s in reply.get("sources", []) if s.get("enabled", True)]
    fresh = sum(1 for s in sources if not s.get("stale"))
    counted = (
        f"{fresh} sources fresh"
        if fresh == len(sources)
        else f"{fresh}/{len(sources)} sources fresh"
    )
    parts = [counted]
    for channel in reply.get("channels", []):
        if channel.get("enabled", True):
            part = f"{channel.get('name')} {channel.get('queue_depth', 0)} queued"
            progress = channel.get("progress")
            if isinstance(progress, Mapping):
                part += f" ({describe_progress(progress_from(progress))})"
            parts.append(part)
    line = f"{reply.get('health', '?')}: " + ", ".join(parts)
    reasons = reply.get("reasons") or []
    if reasons:
        more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
        line += f"; {reasons[0]}{more}"
    return line if len(line) <= STATUS_LINE_LIMIT else line[: STATUS_LINE_LIMIT - 3] + "..."


def _header(status: Mapping[str, Any], paint: _Paint) -> list[str]:
    health = str(status.get("health", "unknown"))
    parts = [
        f"syncd {_clean(status.get('version', '?'), 20)}",
        paint(health.upper(), _HEALTH_STYLE.get(health, "bad")),
        f"up {_duration(status.get('uptime_s'))}",
        f"pid {_clean(status.get('pid', '?'), 12)}",
    ]
    if status.get("config"):
        parts.append(f"config {_clean(status['config'], 120)}")
    lines = [_GAP.join(parts)]
    reasons = status.get("reasons")
    if isinstance(reasons, list):
        for reason in reasons:
            wrapped = _wrap(_clean(reason), _REASON_WIDTH * 2).split("\n")
            lines.append(f"{_INDENT}- {wrapped[0]}")
            lines += [f"{_INDENT}  {more}" for more in wrapped[1:]]
    return lines


def _sources(sources: list[Mapping[str, Any]], paint: _Paint) -> list[str]:
    if not sources:
        return [f"{_INDENT}(none configured)"]
    rows: list[list[Cell]] = []
    for source in sources:
        if source.get("enabled") is False:
            state: Cell = ("disabled", "dim")
        elif source.get("stale"):
            state = ("STALE", "warn")
        elif source.get("last_error"):
            state = ("error", "warn")
        else:
            state = ("ok", "ok")
        last_success = (
            _ago(source.get("age_s")) if source.get("last_success") is not None else "never"
        )
        error = source.get("last_error")
        rows.append(
            [
                (_clean(source.get("name", "?"), 30), None),
                state,
                (last_success, None),
                (_number(source.get("records")), None),
                (_wrap(_clean(source.get("cursor") or "-"), _CURSOR_WIDTH), None),
                (_wrap(_clean(error), _ERROR_WIDTH) if error else "-", "bad" if error else None),
            ]
        )
    headers = ["NAME", "STATE", "LAST SUCCESS", "RECORDS", "CURSOR", "LAST ERROR"]
    return _table(headers, rows, paint, right={3})


def _channels(channels: list[Mapping[str, Any]], ref: datetime, paint: _Paint) -> list[str]:
    if not channels:
        return [f"{_INDENT}(none configured)"]
    rows: list[list[Cell]] = []
    for channel in channels:
        if channel.get("enabled") is False:
            state: Cell = ("disabled", "dim")
        elif _records(channel.get("held")):
            state = ("HELD", "warn")
        elif _texts(channel.get("waiting")):
            state = ("WAITING", "warn")
        else:
            state = ("ok", "ok")
        errors, limited = channel.get("errors"), channel.get("rate_limited")
        rows.append(
            [
                (_clean(channel.get("name", "?"), 30), None),
                state,
                (_number(channel.get("queue_depth")), None),
                (_since(channel.get("last_push"), ref), None),
                (_number(channel.get("pushes")), None),
                (_number(channel.get("variants_pushed")), None),
                (_number(errors), "bad" if _positive(errors) else None),
                (_number(limited), "warn" if _positive(limited) else None),
                _budget(_records(channel.get("rate_limit"))),
            ]
        )
    headers = [
        "NAME",
        "STATE",
        "QUEUE",
        "LAST PUSH",
        "PUSHES",
        "VARIANTS",
        "ERRORS",
        "429s",
        "BUDGET LEFT",
    ]
    return _table(headers, rows, paint, right={2, 4, 5, 6, 7})


def _parked(channels: list[Mapping[str, Any]], paint: _Paint) -> list[str]:
    rows: list[list[Cell]] = [
        [
            (_clean(channel.get("name", "?"), 30), None),
            (_clean(item.get("sku", "?"), 40), "warn"),
            (_wrap(_clean(item.get("reason", "")), _REASON_WIDTH), None),
        ]
        for channel in channels
        for item in _records(channel.get("parked"))
    ]
    if not rows:
        return ["Parked variants: none"]
    lines = [f"Parked variants ({len(rows)})"]
    lines += _table(["CHANNEL", "SKU", "REASON"], rows[:_PARKED_SHOWN], paint)
    if len(rows) > _PARKED_SHOWN:
        lines.append(
            f"{_INDENT}... and {len(rows) - _PARKED_SHOWN} more (syncd status --json lists all)"
        )
    lines.append(f"{_INDENT}once the cause is fixed: syncd unpark CHANNEL SKU... (or --all)")
    return lines


def _held(channels: list[Mapping[str, Any]], ref: datetime, paint: _Paint) -> list[str]:
    rows: list[list[Cell]] = [
        [
            (_clean(channel.get("name", "?"), 30), None),
            (_clean(hold.get("hold_id", "?"), 12), "warn"),
            (_since(hold.get("created_at"), ref), None),
            (_number(hold.get("zeroes")), None),
            (_number(hold.get("changes")), None),
            (_number(hold.get("variants")), None),
            (_wrap(_clean(hold.get("reason", "")), _REASON_WIDTH), None),
        ]
        for channel in channels
        for hold in _records(channel.get("held"))
    ]
    if not rows:
        return ["Held cycles: none"]
    headers = ["CHANNEL", "HOLD", "HELD SINCE", "ZEROES", "CHANGES", "VARIANTS", "REASON"]
    return [
        f"Held cycles ({len(rows)}): nothing is pushed for these until confirmed "
        "(syncd confirm CHANNEL HOLD)",
        *_table(headers, rows, paint, right={1, 3, 4, 5}),
    ]


def _progress(channels: list[Mapping[str, Any]], paint: _Paint) -> list[str]:
    """Each channel working through a queue: done/total, rate, ETA; nothing when none is."""
    rows: list[list[Cell]] = [
        [
            (_clean(channel.get("name", "?"), 30), None),
            (_clean(describe_progress(progress_from(channel["progress"])), _REASON_WIDTH), None),
        ]
        for channel in channels
        if isinstance(channel.get("progress"), Mapping)
    ]
    if not rows:
        return []
    return [
        "Progress: values acknowledged of those queued since the queue started",
        *_table(["CHANNEL", "DONE/TOTAL, RATE, ETA"], rows, paint),
    ]


def _waiting(channels: list[Mapping[str, Any]], paint: _Paint) -> list[str]:
    """Why channels hold increases back (e.g. an overdue order feed); nothing when none do."""
    rows: list[list[Cell]] = [
        [
            (_clean(channel.get("name", "?"), 30), None),
            (_wrap(_clean(reason), _REASON_WIDTH * 2), "warn"),
        ]
        for channel in channels
        for reason in _texts(channel.get("waiting"))
    ]
    if not rows:
        return []
    return [
        f"Waiting ({len(rows)}): increases held back until the cause clears, then pushed",
        *_table(["CHANNEL", "REASON"], rows, paint),
    ]


def _totals(status: Mapping[str, Any]) -> list[str]:
    lines = []
    for title, key in (("Counters", "counters"), ("Gauges", "gauges")):
        values = status.get(key)
        if isinstance(values, Mapping) and values:
            pairs = (f"{_clean(name, 40)} {_scalar(value)}" for name, value in values.items())
            lines.append(f"{title}: " + ", ".join(pairs))
    return lines


# --- cells ---------------------------------------------------------------------------


def _budget(windows: list[Mapping[str, Any]]) -> Cell:
    """``min 588/600  h 23k/24k  d 287k/288k``, styled by the tightest window."""
    if not windows:
        return ("-", None)
    parts, tightest = [], math.inf
    for window in windows:
        name = str(window.get("window", "?"))
        remaining, limit = window.get("remaining"), window.get("limit")
        label = _clean(_WINDOW_ABBREV.get(name, name), 12)
        parts.append(f"{label} {_count(remaining)}/{_count(limit)}")
        left, cap = _as_int(remaining), _as_int(limit)
        if left is not None and cap is not None and cap > 0:
            tightest = min(tightest, left / cap)
    style = "bad" if tightest <= 0 else "warn" if tightest < 0.1 else None
    return (" ".join(parts), style)


def _count(value: object) -> str:
    """Compact, rounded down so a budget is never overstated: 23999 -> 23k."""
    n = _as_int(value)
    if n is None:
        return "?"
    if abs(n) < 10_000:
        return str(n)
    if abs(n) < 1_000_000:
        return f"{n // 1000}k"
    return f"{n // 100_000 / 10:g}M"


def _number(value: object) -> str:
    n = _as_int(value)
    return "-" if n is None else str(n)


def _scalar(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return _clean(value, 40)


def _positive(value: object) -> bool:
    n = _as_int(value)
    return n is not None and n > 0


def _as_int(value: object) -> int | None:
    # bool is an int subclass; `true` is not a count.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _duration(seconds: object) -> str:
    """An elapsed time from the reply (``12s``, ``3m 12s``), or ``?`` when it is not a number."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "?"
    if not math.isfinite(seconds):
        return "?"
    return human_duration(seconds, round_up=False)


def _ago(seconds: object) -> str:
    shown = _duration(seconds)
    return "?" if shown == "?" else f"{shown} ago"


def _since(timestamp: object, ref: datetime) -> str:
    if timestamp is None:
        return "never"
    moment = _parse_time(timestamp)
    if moment is None:
        return _clean(timestamp, 32)
    return _ago((ref - moment).total_seconds())


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A naive timestamp is taken as UTC, which is what syncd records.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _clean(value: object, limit: int | None = None) -> str:
    """One line of harmless text: control characters become ``?``."""
    text = " ".join(_CONTROL.sub("?", str(value).replace("\n", " ")).split())
    if limit is not None and len(text) > limit:
        return text[: max(limit - 3, 1)] + "..."
    return text


def _wrap(text: str, width: int) -> str:
    """``text`` on lines of at most ``width`` characters, joined by newlines; nothing dropped.

    Breaks at spaces where it can, inside a word (a cursor, a URL) where it must.
    """
    if len(text) <= width:
        return text
    return "\n".join(
        textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]
    )


def _texts(value: object) -> list[str]:
    """The non-empty strings of a list field (a reply from another version may lack it)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str) and item.strip()]


def _records(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


# --- layout --------------------------------------------------------------------------


class _Paint:
    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled

    def __call__(self, text: str, style: str | None) -> str:
        if not self._enabled or style is None or not text:
            return text
        return f"\x1b[{_SGR[style]}m{text}\x1b[0m"


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    paint: _Paint,
    *,
    right: frozenset[int] | set[int] = frozenset(),
) -> list[str]:
    """Aligned columns; ``right`` holds the indexes of right-aligned (numeric) columns.

    A cell holding several lines (see :func:`_wrap`) makes its row that tall;
    the other cells of the row are blank on the continuation lines.
    """
    body: list[list[Cell]] = []
    for row in rows:
        split = [(text.split("\n"), style) for text, style in row]
        height = max((len(parts) for parts, _ in split), default=1)
        for depth in range(height):
            body.append(
                [(parts[depth] if depth < len(parts) else "", style) for parts, style in split]
            )
    widths = [len(header) for header in headers]
    for row in body:
        for index, (text, _style) in enumerate(row):
            widths[index] = max(widths[index], len(text))

    def line(cells: Sequence[Cell]) -> str:
        out = []
        last = len(cells) - 1
        for index, (text, style) in enumerate(cells):
            if index in right:
                padded = text.rjust(widths[index])
            elif index == last:
                padded = text  # no trailing blanks
            else:
                padded = text.ljust(widths[index])
            out.append(paint(padded, style) if padded.strip() else padded)
        return (_INDENT + _GAP.join(out)).rstrip()

    head = line([(header, "head") for header in headers])
    return [head, *(line(row) for row in body)]
