"""Counters since start, and the Prometheus text the optional loopback endpoint serves."""

from __future__ import annotations

import anyio
import pytest

from syncd.metrics import Metrics, PrometheusEndpoint, render_prometheus, series_name


def test_labelled_counters_add_up_to_their_total() -> None:
    metrics = Metrics()
    metrics.inc("pushes", 2, channel="ankorstore")
    metrics.inc("pushes", 3, channel="fabric")
    metrics.inc("cycles")
    assert metrics.get("pushes") == 5
    assert metrics.get("pushes", channel="fabric") == 3
    assert metrics.totals() == {"cycles": 1, "pushes": 5}
    assert metrics.counters() == {
        "cycles": 1,
        "pushes": 5,
        'pushes{channel="ankorstore"}': 2,
        'pushes{channel="fabric"}': 3,
    }


def test_a_counter_never_goes_down_and_names_are_checked() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="cannot decrease"):
        metrics.inc("pushes", -1)
    with pytest.raises(ValueError, match="not a metric name"):
        metrics.inc("pushes total")


def test_label_values_are_escaped() -> None:
    assert series_name("x", {"b": "2", "a": 'q"\\\n'}) == 'x{a="q\\"\\\\\\n",b="2"}'


def test_prometheus_text_exports_labelled_series_without_double_counting() -> None:
    text = render_prometheus(
        {"pushes": 5, 'pushes{channel="fabric"}': 5, "cycles": 2},
        {"cycle_duration_s": 0.25, 'queue_depth{channel="fabric"}': 3.0},
    )
    assert text.splitlines() == [
        "# TYPE syncd_cycles_total counter",
        "syncd_cycles_total 2",
        "# TYPE syncd_pushes_total counter",
        'syncd_pushes_total{channel="fabric"} 5',
        "# TYPE syncd_cycle_duration_s gauge",
        "syncd_cycle_duration_s 0.25",
        "# TYPE syncd_queue_depth gauge",
        'syncd_queue_depth{channel="fabric"} 3.0',
    ]


def test_the_endpoint_refuses_anything_but_loopback() -> None:
    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        return {}, {}

    with pytest.raises(ValueError, match="loopback"):
        PrometheusEndpoint(collect, port=0, host="0.0.0.0")


@pytest.mark.anyio
async def test_the_endpoint_serves_metrics_and_nothing_else() -> None:
    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        return {"pushes": 4}, {"uptime_s": 1.5}

    async def get(port: int, path: str) -> bytes:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            chunks = []
            try:
                while True:
                    chunks.append(await stream.receive())
            except anyio.EndOfStream:
                pass
        return b"".join(chunks)

    endpoint = PrometheusEndpoint(collect, port=0)
    async with anyio.create_task_group() as tg:
        port = await tg.start(endpoint.serve)
        ok = await get(port, "/metrics")
        missing = await get(port, "/")
        tg.cancel_scope.cancel()
    assert ok.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"syncd_pushes_total 4\n" in ok
    assert b"syncd_uptime_s 1.5\n" in ok
    assert missing.startswith(b"HTTP/1.0 404")
