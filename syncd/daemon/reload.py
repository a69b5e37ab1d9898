"""SIGHUP's bookkeeping: which config changes a reload may apply, and one reload at a time.

A reload reads and validates the config off the event loop, in a task of
its own, so the signal loop keeps listening (:mod:`syncd.daemon.runtime`).
:class:`Reloads` runs those tasks: a SIGHUP arriving during one makes it read
the file once more when it ends (the newest file wins, no signal is lost),
and a stop abandons a reading at once -- a secret file that blocks or never
ends cannot hold SIGTERM up -- while a reload already applying is waited for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog
from anyio.abc import TaskGroup

from syncd.config import DaemonSection

log = structlog.get_logger("syncd.daemon")


class ReloadRejected(Exception):
    """A new config that is valid but cannot be applied to the running daemon."""


def check_reloadable(old: DaemonSection, new: DaemonSection) -> None:
    """Raise :class:`ReloadRejected` when ``new`` moves what only a restart may move."""
    if new.database != old.database:
        raise ReloadRejected(
            f"daemon.database changed ({old.database} -> {new.database}); "
            "restart syncd to switch ledgers"
        )
    if new.lock_path != old.lock_path:
        raise ReloadRejected("daemon.lock_file changed; restart syncd to apply it")
    if new.status_socket != old.status_socket:
        log.warning(
            "daemon.reload_socket_unchanged",
            listening=str(old.status_socket),
            configured=str(new.status_socket),
            note="the status socket moves at the next restart",
        )


class Reloads:
    """Runs ``reload`` in the background for each SIGHUP, one at a time."""

    def __init__(self, reload: Callable[[], Awaitable[object]]) -> None:
        self._reload = reload
        self._scope: anyio.CancelScope | None = None
        self._done: anyio.Event | None = None
        self._again = False

    def request(self, tg: TaskGroup) -> None:
        """A SIGHUP: start a reload, or read the file once more when the running one ends."""
        if self._done is None:
            self._done = anyio.Event()
            tg.start_soon(self._run, name="reload")
        else:
            self._again = True

    async def _run(self) -> None:
        """Reload until no further SIGHUP arrived meanwhile; a stop cancels the reading."""
        try:
            again = True
            while again:
                self._again = False
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    await self._reload()
                self._scope = None
                again = self._again and not scope.cancelled_caught
        finally:
            done, self._done = self._done, None
            if done is not None:
                done.set()

    async def abandon(self) -> None:
        """Stop a reload still reading its config; wait for one already applying."""
        scope, done = self._scope, self._done
        if scope is not None:
            scope.cancel()
            log.info("daemon.reload_abandoned", reason="stopping")
        if done is not None:
            await done.wait()
