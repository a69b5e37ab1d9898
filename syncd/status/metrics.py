"""Counters and gauges of a running syncd, and how their series are named.

The daemon counts what it does (pushes, variants pushed, errors, polls,
records, recompute cycles) in one :class:`Metrics` object that outlives a
SIGHUP reload, so counters always mean "since the daemon started". Gauges
that describe the present (queue depth, source staleness, cycle duration)
are measured when asked, by :mod:`syncd.daemon.service`.

Series are named Prometheus-style: ``pushes`` is the total over every label,
``pushes{channel="ankorstore"}`` one channel's share. The status socket's
``metrics`` reply carries both in flat ``{name: value}`` maps; the status
document shows the totals only.

The same numbers are served as Prometheus text by :mod:`syncd.status.endpoint`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_LABEL_VALUE = re.compile(r'["\\\n]')
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Labels = tuple[tuple[str, str], ...]


def series_name(name: str, labels: Mapping[str, str] | Labels = ()) -> str:
    """``name`` or ``name{key="value",...}`` with keys sorted and values escaped."""
    pairs = sorted(labels.items() if isinstance(labels, Mapping) else labels)
    if not pairs:
        return name
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in pairs)
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    """A label value as the exposition format quotes it: ``\\``, ``\\"`` and ``\\n``."""
    return _LABEL_VALUE.sub(lambda m: "\\n" if m[0] == "\n" else "\\" + m[0], value)


class Metrics:
    """Monotonic counters, optionally labelled, since the daemon started.

    Counting is synchronous and allocation-light: the schedulers call it
    after every poll and push round.
    """

    def __init__(self) -> None:
        self._counters: dict[tuple[str, Labels], int] = {}

    def inc(self, name: str, value: int = 1, **labels: str) -> None:
        """Add ``value`` (>= 0) to ``name`` with ``labels``; the total follows."""
        if value < 0:
            raise ValueError(f"counter {name} cannot decrease (got {value})")
        if _NAME.fullmatch(name) is None:
            raise ValueError(f"not a metric name: {name!r}")
        key = (name, tuple(sorted(labels.items())))
        self._counters[key] = self._counters.get(key, 0) + value
        if labels:
            total = (name, ())
            self._counters[total] = self._counters.get(total, 0) + value

    def get(self, name: str, **labels: str) -> int:
        return self._counters.get((name, tuple(sorted(labels.items()))), 0)

    def totals(self) -> dict[str, int]:
        """Unlabelled counters only: what the status document shows."""
        return {
            name: value for (name, labels), value in sorted(self._counters.items()) if not labels
        }

    def counters(self) -> dict[str, int]:
        """Every series, totals and labelled ones, by series name."""
        return {
            series_name(name, labels): value
            for (name, labels), value in sorted(self._counters.items())
        }
