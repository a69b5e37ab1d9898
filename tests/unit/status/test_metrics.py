"""Counters since start, and the Prometheus text the optional loopback endpoint serves."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import cast

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketListener, SocketStream
from structlog.testing import capture_logs

from syncd.status.endpoint import PrometheusEndpoint
from syncd.status.metrics import Metrics, series_name


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


def test_the_endpoint_refuses_anything_but_loopback() -> None:
    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        return {}, {}

    with pytest.raises(ValueError, match="loopback"):
        PrometheusEndpoint(collect, port=0, host="0.0.0.0")


@pytest.mark.anyio
async def test_the_endpoint_serves_metrics_and_nothing_else() -> None:
    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        return {"pushes": 4}, {"cycle_duration_s": 1.5}

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
    assert b"syncd_pushes_total 4.0\n" in ok
    assert b"syncd_cycle_duration_seconds 1.5\n" in ok
    assert missing.startswith(b"HTTP/1.0 404")


# --- the endpoint under pressure ----------------------------------------------------------


async def _get(port: int, path: str = "/metrics") -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        chunks = []
        with anyio.fail_after(10):
            try:
                while True:
                    chunks.append(await stream.receive())
            except anyio.EndOfStream:
                pass
    return b"".join(chunks)


async def _until(predicate: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not predicate():
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_a_connection_over_the_cap_gets_503_while_every_slot_is_answering() -> None:
    release = anyio.Event()
    inside = 0

    async def slow() -> tuple[dict[str, int], dict[str, float]]:
        nonlocal inside
        inside += 1
        await release.wait()
        return {"pushes": 1}, {}

    endpoint = PrometheusEndpoint(slow, port=0, max_connections=2)
    replies: list[bytes] = []

    async def scrape(port: int) -> None:
        replies.append(await _get(port))

    async with anyio.create_task_group() as tg:
        port = await tg.start(endpoint.serve)
        tg.start_soon(scrape, port)
        tg.start_soon(scrape, port)
        await _until(lambda: inside == 2)
        busy = await _get(port)
        assert busy.startswith(b"HTTP/1.0 503 Service Unavailable\r\n")
        assert b"Retry-After: 1\r\n" in busy
        release.set()
        await _until(lambda: len(replies) == 2)
        tg.cancel_scope.cancel()
    assert all(reply.startswith(b"HTTP/1.0 200 OK\r\n") for reply in replies)


@pytest.mark.anyio
async def test_silent_connections_time_out_and_give_way_to_a_scrape() -> None:
    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        return {"pushes": 1}, {}

    endpoint = PrometheusEndpoint(collect, port=0, max_connections=3, read_timeout=60)
    silent: list[socket.socket] = []
    async with anyio.create_task_group() as tg:
        port = await tg.start(endpoint.serve)
        try:
            for _ in range(3):
                silent.append(socket.create_connection(("127.0.0.1", port)))
            await _until(lambda: endpoint.slots.in_use == 3)
            # Far from their 60 s read timeout, the silent ones still cannot keep a
            # scrape out: the longest idle gives way (after its short grace).
            reply = b""
            with anyio.fail_after(10):
                while not reply.startswith(b"HTTP/1.0 200"):
                    reply = await _get(port)
            assert endpoint.slots.evictions >= 1
        finally:
            for sock in silent:
                sock.close()
        tg.cancel_scope.cancel()

    quick = PrometheusEndpoint(collect, port=0, read_timeout=0.2)
    async with anyio.create_task_group() as tg:
        port = await tg.start(quick.serve)
        with socket.create_connection(("127.0.0.1", port)) as silent_one:
            # Hung up on after 0.2 s without a request line.
            silent_one.settimeout(5)
            assert await anyio.to_thread.run_sync(silent_one.recv, 1) == b""
        await _until(lambda: quick.slots.in_use == 0)
        tg.cancel_scope.cancel()


class _Exhausted:
    """A listener whose first accepts fail the way a process out of descriptors fails."""

    def __init__(self, inner: SocketListener, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def accept(self) -> SocketStream:
        if self.failures:
            self.failures -= 1
            await anyio.sleep(0)
            raise OSError(errno.EMFILE, "Too many open files")
        return await self.inner.accept()


@pytest.mark.anyio
async def test_an_accept_error_is_logged_and_the_endpoint_keeps_serving() -> None:
    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        return {"pushes": 2}, {}

    endpoint = PrometheusEndpoint(collect, port=0)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    [inner] = listener.listeners
    assert isinstance(inner, SocketListener)
    port = int(inner.extra(SocketAttribute.local_port))
    flaky = _Exhausted(inner, failures=5)
    with capture_logs() as logs:
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(endpoint._accept_loop, cast(SocketListener, flaky), tg)
            reply = await _get(port)
            tg.cancel_scope.cancel()
    assert reply.startswith(b"HTTP/1.0 200 OK\r\n")
    assert flaky.failures == 0
    failed = [e for e in logs if e["event"] == "listener.accept_failed"]
    assert len(failed) == 1  # one line for the burst, not 5
    assert (failed[0]["listener"], failed[0]["error"]) == ("metrics", "EMFILE")
    assert endpoint.accept_errors.total == 5


@pytest.mark.anyio
async def test_a_burst_of_scrapes_costs_one_collection() -> None:
    collected = 0

    async def collect() -> tuple[dict[str, int], dict[str, float]]:
        nonlocal collected
        collected += 1
        return {"pushes": collected}, {}

    endpoint = PrometheusEndpoint(collect, port=0)
    async with anyio.create_task_group() as tg:
        port = await tg.start(endpoint.serve)
        replies = [await _get(port) for _ in range(5)]
        tg.cancel_scope.cancel()
    # Within the second all five share one rendering (a slow machine may need two).
    assert collected <= 2
    assert all(b"syncd_pushes_total 1.0\n" in r or collected == 2 for r in replies)
