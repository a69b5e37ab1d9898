"""Serve a simulator's ASGI app on a free loopback port with uvicorn.

Two ways to run, for two kinds of caller:

- :func:`serve` is an async context manager for code already inside an
  event loop (`syncd demo` runs the simulators and the daemon in one
  process, one loop).
- :class:`ThreadedServer` runs the app on its own loop in a thread, for
  synchronous pytest fixtures and for `syncd sandbox`.

The socket is bound before uvicorn starts (port 0, so the kernel picks a free
port), which removes the race of "find a free port, then bind it".
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import uvicorn

from syncd.sandbox.faults import DroppedConnection

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0
"""How long a server may take to start: generous, since only a broken start waits it out
(a loaded machine can take seconds where an idle one takes milliseconds)."""


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1 (never another address)."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted
    # sockets whose proto says TCP, and without it Nagle plus the client's
    # delayed ACK add ~40 ms to every response split over two writes.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class _QuietInjectedFaults(logging.Filter):
    """Injected dropped connections are the point of the exercise, not errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


logging.getLogger("uvicorn.error").addFilter(_QuietInjectedFaults())


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling, and with a startup event.

    The embedding program (the demo, the sandbox command, a test) owns the
    process's signals; uvicorn must not capture and re-raise them.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = anyio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


def _uvicorn_config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        log_config=None,  # records go through syncd.logs, not uvicorn's own handlers
        access_log=False,
        lifespan="off",
        # Keep-alive long enough that a client's pooled connections are reused
        # between poll cycles, like a real API behind a load balancer.
        timeout_keep_alive=30,
        # The simulators must accept very large bodies so the *client-side*
        # limits (not uvicorn's) are what the tests exercise.
        h11_max_incomplete_event_size=16 * 1024 * 1024,
    )


@asynccontextmanager
async def serve(app: Any, port: int = 0) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 inside the current event loop; yield its base URL."""
    sock = bind_loopback(port)
    server = _EmbeddedServer(_uvicorn_config(app))
    host, bound_port = sock.getsockname()[:2]
    async with anyio.create_task_group() as group:
        group.start_soon(server.serve, [sock])
        with anyio.fail_after(START_TIMEOUT_S):
            await server.ready.wait()
        try:
            yield f"http://{host}:{bound_port}"
        finally:
            server.should_exit = True
            # Closing keep-alive connections promptly keeps shutdown fast.
            server.force_exit = True


class ThreadedServer:
    """Run ``app`` on 127.0.0.1 in a background thread with its own loop."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self._sock = bind_loopback(port)
        self._server = uvicorn.Server(_uvicorn_config(app))
        self._thread = threading.Thread(target=self._run, name="sandbox-server", daemon=True)
        host, bound_port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{bound_port}"

    def _run(self) -> None:
        self._server.run(sockets=[self._sock])

    def start(self, timeout: float = START_TIMEOUT_S) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
