"""When the daemon's loops run again: backoff after failures, and wake-ups.

A failing source, engine pass or push round is retried after an exponential
backoff with jitter, so sources that failed together do not retry together; a
loop sleeps on a :class:`Wakeup` that another loop (or a status command) sets
to run it sooner.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

MAX_BACKOFF_S = 300.0
"""Longest wait before retrying a failing source, engine or channel."""
MIN_BACKOFF_S = 0.5


def backoff_delay(
    base: float,
    failures: int,
    *,
    minimum: float = MIN_BACKOFF_S,
    maximum: float = MAX_BACKOFF_S,
    jitter: float = 0.1,
    rand: Callable[[], float] = lambda: 0.5,
) -> float:
    """Seconds to wait after ``failures`` consecutive failures (>= 1).

    ``max(base, minimum) * 2**(failures - 1)``, at most ``maximum`` -- but
    never below ``base``: a source polled every ten minutes is not retried
    more often than that -- spread by +-``jitter`` so sources that failed
    together do not retry together. ``rand`` draws in [0, 1) (the scheduler's
    comes from the clock's ``rng``); the default, 0.5, spreads nothing.
    """
    start = max(base, minimum)
    if failures < 1:
        return start
    ceiling = max(maximum, base)
    delay = min(ceiling, start * 2.0 ** min(failures - 1, 30))
    return delay * (1.0 + jitter * (2.0 * rand() - 1.0))


class Wakeup:
    """A sticky wake-up flag: a ``set()`` nobody waited for wakes the next ``wait()``."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        if self._event.is_set():
            self._event = anyio.Event()

    async def wait(self, timeout: float | None) -> bool:  # noqa: ASYNC109 -- a wake-or-timeout primitive
        """Wait until set or ``timeout`` seconds passed; True (and cleared) if set."""
        if timeout is None:
            await self._event.wait()
        elif timeout > 0:
            with anyio.move_on_after(timeout):
                await self._event.wait()
        fired = self._event.is_set()
        self.clear()
        return fired
