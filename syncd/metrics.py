"""Counters and gauges of a running syncd, and their Prometheus text form.

The daemon counts what it does (pushes, variants pushed, errors, polls,
records, recompute cycles) in one :class:`Metrics` object that outlives a
SIGHUP reload, so counters always mean "since the daemon started". Gauges
that describe the present (queue depth, source staleness, cycle duration)
are measured when asked, by :mod:`syncd.status_handler`.

Series are named Prometheus-style: ``pushes`` is the total over every label,
``pushes{channel="ankorstore"}`` one channel's share. The status socket's
``metrics`` reply carries both in flat ``{name: value}`` maps; the status
document shows the totals only.

An optional text endpoint (:class:`PrometheusEndpoint`) serves the same
numbers as Prometheus exposition text on a loopback port, for scrapers that
cannot read a Unix socket. It never listens on anything but loopback.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio
import structlog
from anyio.abc import SocketAttribute, SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

log = structlog.get_logger("syncd.metrics")

PROMETHEUS_PREFIX = "syncd_"
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


# --- Prometheus text -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Series:
    name: str
    labels: str
    value: float


def _split(series: str) -> tuple[str, str]:
    name, brace, rest = series.partition("{")
    return name, ("{" + rest) if brace else ""


def _format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _group(values: Mapping[str, float]) -> dict[str, list[_Series]]:
    grouped: dict[str, list[_Series]] = {}
    for series, value in values.items():
        name, labels = _split(series)
        grouped.setdefault(name, []).append(_Series(name, labels, value))
    return grouped


def render_prometheus(counters: Mapping[str, int], gauges: Mapping[str, float]) -> str:
    """Prometheus exposition text (version 0.0.4) for the given series.

    A counter that has labelled series is exported by its labelled series
    only: exporting the total beside them would double every ``sum()``.
    Counters get the conventional ``_total`` suffix.
    """
    lines: list[str] = []
    for kind, values in (("counter", counters), ("gauge", gauges)):
        for name, series in sorted(_group(values).items()):
            labelled = [s for s in series if s.labels]
            shown = labelled or series
            metric = PROMETHEUS_PREFIX + name + ("_total" if kind == "counter" else "")
            lines.append(f"# TYPE {metric} {kind}")
            lines.extend(f"{metric}{s.labels} {_format_value(s.value)}" for s in shown)
    return "\n".join(lines) + "\n"


# --- the optional loopback endpoint -------------------------------------------------------

Collect = Callable[[], Awaitable[tuple[Mapping[str, int], Mapping[str, float]]]]
"""Returns (counters, gauges) at scrape time."""

_MAX_REQUEST_HEAD = 8192
_REQUEST_TIMEOUT_S = 5.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PrometheusEndpoint:
    """``GET /metrics`` on a loopback TCP port; anything else gets 404.

    A deliberately tiny HTTP/1.0 responder (one request per connection): the
    daemon must not grow a web framework for one scrape path.
    """

    def __init__(self, collect: Collect, *, port: int, host: str = "127.0.0.1") -> None:
        if not _is_loopback(host):
            raise ValueError(f"the metrics endpoint only listens on loopback, not {host!r}")
        self._collect = collect
        self.host = host
        self.port = port

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``task_status.started`` gets the bound port."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            port = int(listener.extra(SocketAttribute.local_port))  # noqa: S610 -- anyio, not Django
            log.info("metrics.listening", host=self.host, port=port)
            task_status.started(port)
            await listener.serve(self._handle)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            try:
                with anyio.fail_after(_REQUEST_TIMEOUT_S):
                    head = await BufferedByteReceiveStream(stream).receive_until(
                        b"\r\n", _MAX_REQUEST_HEAD
                    )
                    await stream.send(await self._respond(head))
            except (TimeoutError, anyio.EndOfStream, anyio.IncompleteRead, OSError):
                return
            except (anyio.DelimiterNotFound, anyio.BrokenResourceError):
                return
            except Exception:
                log.exception("metrics.request_failed")

    async def _respond(self, request_line: bytes) -> bytes:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return _http(405, "text/plain", b"method not allowed\n")
        if parts[1].split("?", 1)[0] != "/metrics":
            return _http(404, "text/plain", b"not found; try /metrics\n")
        counters, gauges = await self._collect()
        body = render_prometheus(counters, gauges).encode("utf-8")
        return _http(200, "text/plain; version=0.0.4; charset=utf-8", body, head=parts[0] == "HEAD")


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}


def _http(status: int, content_type: str, body: bytes, *, head: bool = False) -> bytes:
    header = (
        f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode("ascii")
    return header if head else header + body
