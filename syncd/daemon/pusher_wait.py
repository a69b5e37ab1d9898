"""How a channel's pusher waits between push rounds: for new work, or for a free rate slot.

A round that left updates deferred for lack of rate budget used to be
retried on a fixed short interval, which both polled while nothing could
be sent and sent late by up to that interval once something could. Now the
pusher waits for whichever comes first: a wake-up (new values, a read-back
correction, an operator's unpark or confirmation), the channel's budget
freeing a slot (:meth:`~syncd.channels.base.Channel.budget_available`, which sleeps
on the injected clock until the rate limiter's oldest counted request
leaves its window), or the timeout (the ordinary cycle interval).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import structlog

log = structlog.get_logger("syncd.scheduler")

Wake = Callable[[float | None], Awaitable[bool]]
"""``Wakeup.wait``: wait until set or the timeout passed; True if it was set."""


async def wait_for_work(
    wake: Wake, at_most: float, budget: Callable[[], Awaitable[object]] | None = None
) -> None:
    """Return on ``wake``, when ``budget()`` returns (a rate slot is free), or after ``at_most`` s."""
    if budget is None:
        await wake(at_most)
        return
    async with anyio.create_task_group() as group:

        async def slot_free() -> None:
            try:
                await budget()
            except Exception as exc:  # the wake-up and the timeout still stand
                log.warning("push.budget_wait_failed", error=f"{type(exc).__name__}: {exc}")
                return
            group.cancel_scope.cancel()

        group.start_soon(slot_free)
        await wake(at_most)
        group.cancel_scope.cancel()
