"""One loopback server per test module, with a fresh simulator app per test.

Starting and stopping uvicorn costs ~0.3 s; plugging a new app into a
running server costs nothing, so every test still gets fresh state.
"""

from __future__ import annotations

from collections.abc import Iterator

from syncd.sandbox.faults import ASGIApp, Receive, Scope, Send
from syncd.sandbox.server import ThreadedServer


class Switchboard:
    """An ASGI app that forwards every request to the app plugged in last."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no simulator plugged in"
        await self.app(scope, receive, send)


def running_switchboard() -> Iterator[tuple[Switchboard, str]]:
    board = Switchboard()
    with ThreadedServer(board) as server:
        yield board, server.url
