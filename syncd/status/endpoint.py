"""The optional Prometheus endpoint: ``GET /metrics`` on a loopback TCP port.

It serves the numbers of :mod:`syncd.status.metrics` as Prometheus exposition
text (:mod:`syncd.status.prometheus`), for scrapers that cannot read a Unix
socket. It never listens on anything but loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio
import structlog
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from syncd.status.limits import Admission, Slot
from syncd.status.prometheus import Exposition

log = structlog.get_logger("syncd.metrics")

Collect = Callable[[], Awaitable[tuple[Mapping[str, int], Mapping[str, float]]]]
"""Returns (counters, gauges) at scrape time."""

_MAX_REQUEST_HEAD = 8192
READ_TIMEOUT_S = 5.0
"""A scraper must send its request line within this long."""
WRITE_TIMEOUT_S = 5.0
"""... and take the reply within this long."""
MAX_CONNECTIONS = 32
"""Connections served at once; Prometheus scrapes one at a time per target."""
BUSY_WAIT_S = 1.0
"""How long a turned-away client may take to send its request before the 503."""
RENDER_TTL_S = 1.0
"""A burst of scrapes costs one rendering (the status figures behind it are cached too)."""


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
    daemon must not grow a web framework for one scrape path. It holds at
    most ``max_connections`` at once (the longest-idle one gives way to a new
    one, see :mod:`syncd.status.limits`; when none can, the newcomer gets 503),
    bounds every read and write, and survives accept errors such as EMFILE:
    a flood of connections costs a bounded number of file descriptors and
    never ends the daemon.
    """

    def __init__(
        self,
        collect: Collect,
        *,
        port: int,
        host: str = "127.0.0.1",
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT_S,
        write_timeout: float = WRITE_TIMEOUT_S,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the metrics endpoint only listens on loopback, not {host!r}")
        self._collect = collect
        self._exposition = Exposition()
        self._rendered: tuple[float, bytes] | None = None
        self.host = host
        self.port = port
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._admission: Admission[SocketStream] = Admission("metrics", max_connections)
        self.slots = self._admission.slots
        self.accept_errors = self._admission.accept_errors

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; ``task_status.started`` gets the bound port."""
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener, anyio.create_task_group() as tg:
            port = int(listener.extra(SocketAttribute.local_port))  # noqa: S610 -- anyio, not Django
            log.info("metrics.listening", host=self.host, port=port)
            for each in listener.listeners:
                assert isinstance(each, SocketListener)  # a TCP listener's parts are
                tg.start_soon(self._accept_loop, each, tg)
            task_status.started(port)

    async def _accept_loop(self, listener: SocketListener, tg: TaskGroup) -> None:
        await self._admission.accept_loop(
            listener.accept, tg, serve=self._handle, busy=_busy, drop=_drop
        )

    async def _handle(self, stream: SocketStream, slot: Slot) -> None:
        try:
            with slot.scope:
                async with stream:
                    head: bytes | None = None
                    with anyio.move_on_after(self._read_timeout):
                        head = await BufferedByteReceiveStream(stream).receive_until(
                            b"\r\n", _MAX_REQUEST_HEAD
                        )
                    if head is None:
                        return  # no request line in time
                    slot.working()
                    reply = await self._respond(head)
                    # A scraper that does not read is idle: a new one may take its slot.
                    slot.waiting()
                    with anyio.move_on_after(self._write_timeout):
                        await stream.send(reply)
        except (anyio.EndOfStream, anyio.IncompleteRead, OSError):
            return
        except (anyio.DelimiterNotFound, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return
        except Exception:
            log.exception("metrics.request_failed")
        finally:
            self.slots.release(slot)

    async def _respond(self, request_line: bytes) -> bytes:
        parts = request_line.decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return _http(405, "text/plain", b"method not allowed\n")
        if parts[1].split("?", 1)[0] != "/metrics":
            return _http(404, "text/plain", b"not found; try /metrics\n")
        body = await self._body()
        return _http(200, CONTENT_TYPE, body, head=parts[0] == "HEAD")

    async def _body(self) -> bytes:
        """The exposition text; scrapes within :data:`RENDER_TTL_S` of each other share one."""
        now = time.monotonic()
        if self._rendered is not None and now - self._rendered[0] < RENDER_TTL_S:
            return self._rendered[1]
        counters, gauges = await self._collect()
        body = self._exposition.render(counters, gauges)
        self._rendered = (time.monotonic(), body)
        return body


async def _busy(stream: SocketStream) -> None:
    """A 503 for a client no slot can be made for, within bounded waits."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
        async with stream:
            with anyio.move_on_after(BUSY_WAIT_S):
                await stream.receive(_MAX_REQUEST_HEAD)
            with anyio.move_on_after(BUSY_WAIT_S):
                await stream.send(_http(503, "text/plain", b"busy: too many connections\n"))


async def _drop(stream: SocketStream) -> None:
    """A client beyond every limit: closed unanswered (a flood is owed no reply)."""
    await stream.aclose()


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _http(status: int, content_type: str, body: bytes, *, head: bool = False) -> bytes:
    retry = "Retry-After: 1\r\n" if status == 503 else ""
    header = (
        f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{retry}Connection: close\r\n\r\n"
    ).encode("ascii")
    return header if head else header + body
