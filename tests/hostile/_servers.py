"""Hostile HTTP servers on loopback: an endless body, a server that drips.

Raw sockets on purpose: the point is to misbehave in ways a well-behaved
framework would not (no Content-Length and no end, one byte every few
seconds). Each server answers every connection the same way, in a thread of
its own, and records for each connection when it opened, when the client
went away and how many bytes were sent -- what the tests assert on. Nothing
large is ever allocated: the body is one reused 64 KiB block of zeros.
"""

from __future__ import annotations

import select
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from types import TracebackType

CHUNK = bytes(64 * 1024)


@dataclass(slots=True)
class Connection:
    opened: float
    """``time.monotonic()`` when the request had been read."""
    closed: float | None = None
    """When the client closed or reset the connection (``None``: still open)."""
    sent: int = 0
    """Body bytes written before the client went away."""
    request_line: str = ""


class HostileServer:
    """``with HostileServer("zeros", size=200 MB) as server: server.url``.

    ``"zeros"``: ``200 OK`` as JSON, no Content-Length, then ``size`` bytes of
    zeros as fast as the client takes them. ``"drip"``: ``200 OK`` announcing a
    1 000-byte body, then one byte every ``every`` seconds.
    """

    def __init__(self, mode: str, *, size: int = 0, every: float = 4.0) -> None:
        if mode not in ("zeros", "drip"):
            raise ValueError(mode)
        self.mode = mode
        self.size = size
        self.every = every
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def snapshot(self) -> list[Connection]:
        with self._lock:
            return [
                Connection(c.opened, c.closed, c.sent, c.request_line) for c in self.connections
            ]

    # --- one connection ----------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        request_line = _read_request(sock)
        connection = Connection(opened=time.monotonic(), request_line=request_line)
        with self._lock:
            self.connections.append(connection)
        try:
            if self.mode == "zeros":
                self._zeros(sock, connection)
            else:
                self._drip(sock, connection)
        except OSError:
            pass  # reset or broken pipe: the client gave up, which is the point
        with self._lock:
            if connection.closed is None:
                connection.closed = time.monotonic()

    def _zeros(self, sock: socket.socket, connection: Connection) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        )
        while connection.sent < self.size and not self._stop.is_set():
            sock.sendall(CHUNK)
            with self._lock:
                connection.sent += len(CHUNK)

    def _drip(self, sock: socket.socket, connection: Connection) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        while not self._stop.is_set():
            sock.sendall(b" ")
            with self._lock:
                connection.sent += 1
            # Wait for the next drip, noticing at once when the client hangs up.
            readable, _, _ = select.select([sock], [], [], self.every)
            if readable and not sock.recv(4096):
                return


def _read_request(sock: socket.socket) -> str:
    """Read the request head and any Content-Length body; return the request line."""
    sock.settimeout(10.0)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65_536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    sock.settimeout(None)
    return head.split(b"\r\n", 1)[0].decode("latin-1")
