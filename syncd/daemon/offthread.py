"""Run a blocking call in a thread that never holds up the process' exit.

anyio's worker threads are joined when the process ends, so a read that
never returns -- a config file on a hung mount, a FIFO nobody writes to --
would keep a stopping syncd alive for good. :func:`in_daemon_thread` uses a
daemon thread instead: cancelling the wait abandons the thread, and the
process can still exit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")
A = TypeVar("A")


async def in_daemon_thread(function: Callable[[A], T], argument: A) -> T:
    """``function(argument)`` in a daemon thread; its exception is raised here."""
    outcome: list[T | BaseException] = []
    done = anyio.Event()
    token = anyio.lowlevel.current_token()

    def work() -> None:
        try:
            outcome.append(function(argument))
        except BaseException as exc:  # handed to the waiting task, raised there
            outcome.append(exc)
        # RuntimeError: the event loop has ended, nobody waits for this any more.
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run_sync(done.set, token=token)

    threading.Thread(target=work, name="syncd-blocking-call", daemon=True).start()
    await done.wait()
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
