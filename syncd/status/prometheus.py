"""syncd's counters and gauges as Prometheus families, following Prometheus naming conventions.

The daemon counts under short internal names (``pushes``, ``http_429``,
``source_age_s``...; the status socket's ``metrics`` command and ``syncd
status`` keep them). :data:`COUNTERS` and :data:`GAUGES` map each to its
Prometheus family: a ``syncd_`` prefix, base units (``_seconds``), counters
ending ``_total``, and a HELP text for every family. A name missing from the
catalogue is still exported, with a HELP saying so -- a test keeps the
catalogue complete.

The exposition text itself comes from ``prometheus_client`` (escaping,
number formatting, HELP/TYPE lines: the details a hand-written renderer got
wrong), with its standard ``process_*`` families (start time, CPU, memory,
open and maximum file descriptors). Only its text renderer and process
collector are used: the scrape is served by syncd's own loopback endpoint
(:class:`syncd.status.endpoint.PrometheusEndpoint`), which caps connections and
bounds every wait; prometheus_client's HTTP server does neither and runs
threads beside the event loop.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from syncd.status.metrics import series_name

PREFIX = "syncd_"


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    """Without the prefix, and for counters without ``_total``."""
    help: str
    label: str | tuple[str, ...] | None = None
    """The label(s) the family's series carry (``channel``, ``source``, ``api``,
    ``component``): one series per configured value of each is exported from the
    start, at zero."""


COUNTERS: dict[str, Family] = {
    "pushes": Family("pushes", "Push requests sent to a channel.", "channel"),
    "variants_pushed": Family(
        "variants_pushed", "Variant quantities a channel acknowledged.", "channel"
    ),
    "errors": Family(
        "errors",
        "Errors: failed polls (label source), failed pushes (label channel), "
        "failed recomputes (label component).",
        ("channel", "source", "component"),
    ),
    "parked": Family("parked", "Variants a channel refused and syncd parked.", "channel"),
    "readbacks": Family("readbacks", "Read-backs of what a channel shows.", "channel"),
    "drift_found": Family(
        "drift_found", "Variants a read-back found showing another quantity.", "channel"
    ),
    "drift_restored": Family(
        "drift_restored", "Drifted variants syncd pushed back to its value.", "channel"
    ),
    "polls": Family("polls", "Polls of a source, successful or not.", "source"),
    "records": Family("records", "Stock records read from a source.", "source"),
    "skipped": Family("records_skipped", "Source records skipped as unusable.", "source"),
    "cycles": Family("cycles", "Recompute cycles of the engine."),
    "http_requests": Family("http_requests", "HTTP requests sent, per API.", "api"),
    "http_429": Family(
        "http_rate_limited", "HTTP 429 (rate limited) answers received, per API.", "api"
    ),
    "http_retries": Family("http_retries", "HTTP requests retried, per API.", "api"),
    "http_errors": Family("http_errors", "HTTP requests that failed for good, per API.", "api"),
}

GAUGES: dict[str, Family] = {
    "start_time_seconds": Family(
        "start_time_seconds", "When the daemon started, in seconds since the Unix epoch."
    ),
    "cycle_duration_s": Family(
        "cycle_duration_seconds", "How long the last recompute cycle took, in seconds."
    ),
    "health": Family("health", "Health as `syncd status` judges it: 0 ok, 1 degraded, 2 failing."),
    "queue_depth": Family(
        "queue_depth", "Variant quantities waiting to be pushed, per channel.", "channel"
    ),
    "parked_variants": Family(
        "parked_variants", "Variants parked now (refused, waiting for `syncd unpark`).", "channel"
    ),
    "held_cycles": Family(
        "held_cycles", "Push cycles held by the safety interlock until confirmed.", "channel"
    ),
    "drifted_variants": Family(
        "drifted_variants", "Variants the last read-back found drifted.", "channel"
    ),
    "reserved_mismatch_variants": Family(
        "reserved_mismatch_variants",
        "Variants whose channel-side reservations differ from the ledger's own-order units "
        "(last read-back).",
        "channel",
    ),
    "rate_limit_remaining": Family(
        "rate_limit_remaining",
        "Requests left in the API's rate-limit window, per channel and window.",
    ),
    "source_age_s": Family(
        "source_age_seconds", "Seconds since a source's last successful read.", "source"
    ),
    "source_stale": Family(
        "source_stale", "1 when a source's data is older than its stale_after, else 0.", "source"
    ),
}
"""``uptime_s`` is not exported: ``syncd_start_time_seconds`` says the same without drifting."""

_NOT_EXPORTED = frozenset({"uptime_s"})
_UNDOCUMENTED = "syncd {kind} {name} (not described yet; see README, Metrics)"
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = re.compile(r"\\(.)")


def parse_series(series: str) -> tuple[str, dict[str, str]]:
    """``pushes{channel="fabric"}`` -> ``("pushes", {"channel": "fabric"})``.

    The inverse of :func:`syncd.status.metrics.series_name`, escapes included.
    """
    name, brace, rest = series.partition("{")
    if not brace:
        return name, {}
    labels = {
        key: _UNESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], value)
        for key, value in _LABEL.findall(rest)
    }
    return name, labels


def zero_series(
    *, channels: Iterable[str], sources: Iterable[str], apis: Iterable[str]
) -> dict[str, int]:
    """Every labelled counter series at zero, for each configured channel, source and API.

    Merged under the real counts, so a counter is there from the first scrape and
    ``rate()`` sees its first increase.
    """
    values = {
        "channel": list(channels),
        "source": list(sources),
        "api": list(apis),
        "component": ["engine"],
    }
    zeros: dict[str, int] = {}
    for name, family in COUNTERS.items():
        if family.label is None:
            zeros[name] = 0
            continue
        kinds = (family.label,) if isinstance(family.label, str) else family.label
        for kind in kinds:
            for value in values[kind]:
                zeros[series_name(name, {kind: value})] = 0
    return zeros


def families(counters: Mapping[str, int], gauges: Mapping[str, float]) -> list[Metric]:
    """Prometheus families for the flat ``{series: value}`` maps the daemon keeps.

    A series with labels stands for itself; the unlabelled total of a name
    that also has labelled series is left out, since exporting it beside them
    would double every ``sum()``.
    """
    out: list[Metric] = []
    for kind, catalogue, values in (("counter", COUNTERS, counters), ("gauge", GAUGES, gauges)):
        grouped: dict[str, list[tuple[dict[str, str], float]]] = {}
        for series, value in values.items():
            name, labels = parse_series(series)
            if name not in _NOT_EXPORTED:
                grouped.setdefault(name, []).append((labels, float(value)))
        merged: dict[str, Metric] = {}
        for name, samples in sorted(grouped.items()):
            family = catalogue.get(name) or Family(
                _metric_name(name), _UNDOCUMENTED.format(kind=kind, name=name)
            )
            metric = merged.get(family.name)
            if metric is None:
                metric = merged[family.name] = Metric(PREFIX + family.name, family.help, kind)
            labelled = [sample for sample in samples if sample[0]]
            sample_name = PREFIX + family.name + ("_total" if kind == "counter" else "")
            for labels, value in labelled or samples:
                metric.add_sample(sample_name, labels, value)
        out.extend(merged.values())
    return out


def _metric_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


class _Scrape:
    """One scrape's families, then the standard process families."""

    def __init__(self, metrics: list[Metric], process: ProcessCollector) -> None:
        self._metrics = metrics
        self._process = process

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics
        yield from self._process.collect()


class _ProcessCollector(ProcessCollector):
    """prometheus_client's process collector, also under systemd's ``ProcSubset=pid``.

    It reads the boot time from ``/proc/stat``, which ``ProcSubset=pid`` hides,
    and without it exports nothing at all. The kernel's boot-time clock gives
    the same figure.
    """

    def _boot_time(self) -> float | None:
        try:
            found: float | None = super()._boot_time()  # type: ignore[no-untyped-call]
        except OSError:
            found = None
        return found or time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class Exposition:
    """Renders scrapes; holds the process collector (it reads ``/proc/self``)."""

    def __init__(self, *, proc: str = "/proc") -> None:
        self._process = _ProcessCollector(proc=proc, registry=None)

    def render(self, counters: Mapping[str, int], gauges: Mapping[str, float]) -> bytes:
        """Prometheus text format 0.0.4, as bytes ready to send."""
        return generate_latest(_Scrape(families(counters, gauges), self._process))
