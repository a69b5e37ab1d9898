"""One loopback sandbox server per API for the whole contract run, fresh state per test.

Starting and stopping uvicorn costs about 0.2 s, which over a hundred
sandbox cases is most of the suite's time. Each API's simulator therefore
runs once, in a background thread, behind a :class:`Switchboard`; every
test plugs in the app of its own freshly created :class:`SandboxWorld`, so
no state crosses from one test to the next.
"""

from __future__ import annotations

from contextlib import ExitStack

from syncd.sandbox.faults import ASGIApp, Receive, Scope, Send
from syncd.sandbox.server import ThreadedServer


class Switchboard:
    """An ASGI app that forwards every request to the app plugged in last."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        assert self.app is not None, "no simulator plugged in"
        await self.app(scope, receive, send)


class Switchboards:
    """A lazily started server per API; :meth:`plug` gives a test its own simulator."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._boards: dict[str, tuple[Switchboard, str]] = {}

    def plug(self, api: str, app: ASGIApp) -> str:
        if api not in self._boards:
            board = Switchboard()
            server = self._stack.enter_context(ThreadedServer(board))
            self._boards[api] = (board, server.url)
        board, url = self._boards[api]
        board.app = app
        return url
