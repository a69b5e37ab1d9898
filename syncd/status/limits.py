"""Bounds shared by syncd's two local listeners: the status socket and the metrics endpoint.

Both serve few, short-lived clients (a CLI call, a monitoring check, a
Prometheus scrape). A local user may open many connections and never send
or never read; neither may cost the daemon more than a fixed number of file
descriptors, nor keep another client waiting.

:class:`ConnectionSlots` caps the connections served at once. When every
slot is taken, the connection that has been *idle* longest (waiting for a
request, or waiting for its client to take a reply) is closed to make room,
the way a web server drops idle keep-alive connections when it runs out of
them: a client that never reads cannot hold a slot against a fresh one,
however many requests it queued up. Two kinds are never closed that way: a
connection in its first ``grace`` seconds, so a burst of honest clients does
not close each other before they are read (a listener tells a client closed
while it waited to be read that it is busy, so it asks again), and one whose
request is being answered right now. When no slot can be freed, a new client
is turned away (the listener sends a short "busy" error, and syncd's own
clients try again until their deadline).

:class:`AcceptErrors` keeps an accept loop alive through EMFILE, ENFILE,
ENOBUFS and friends: it logs the first failure of a burst, counts the rest,
and the loop backs off briefly instead of spinning on a listen backlog it
cannot drain.

:class:`Admission` is the accept loop both listeners run on these: admit a
client into a slot, tell it "busy", or close it unanswered.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

import anyio
import structlog
from anyio.abc import TaskGroup

log = structlog.get_logger("syncd.conn_limits")

ACCEPT_BACKOFF_S = 0.1
"""Pause after an accept error: the backlog stays readable, so retrying at once would spin."""
ACCEPT_LOG_EVERY_S = 10.0
"""A burst of accept errors is logged once per this many seconds, with a count."""
EVICT_GRACE_S = 0.25
"""A connection younger than this is never closed to make room for another."""
_TRANSIENT = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EINTR, errno.EAGAIN})
"""Accept errors about one client that gave up: retried at once, not logged."""


class Slot:
    """One served connection: its cancel scope, and whether it is idle right now."""

    __slots__ = ("_monotonic", "admitted_at", "evicted", "idle_since", "scope", "writing")

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.scope = anyio.CancelScope()
        self.admitted_at = monotonic()
        self.idle_since: float | None = self.admitted_at
        """When the connection last started waiting on its client; None while answering."""
        self.evicted = False
        self.writing = False
        """True while a reply is on its way out (the client has not taken it yet)."""

    def waiting(self) -> None:
        """The connection waits for its client (to send a request, or to read a reply)."""
        self.idle_since = self._monotonic()

    def working(self) -> None:
        """The daemon is answering a request on this connection: not evictable."""
        self.idle_since = None


class ConnectionSlots:
    """At most ``limit`` connections at once; the longest-idle one makes room for a new one."""

    def __init__(
        self,
        limit: int,
        *,
        grace: float = EVICT_GRACE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError("a connection limit must be at least 1")
        self.limit = limit
        self.grace = grace
        self._monotonic = monotonic
        self._open: set[Slot] = set()
        self.evictions = 0
        self.refusals = 0

    @property
    def in_use(self) -> int:
        return len(self._open)

    def admit(self) -> Slot | None:
        """A slot for a new connection, or None when no slot is free or can be freed."""
        if len(self._open) >= self.limit:
            horizon = self._monotonic() - self.grace
            idle = [
                slot
                for slot in self._open
                if slot.idle_since is not None and slot.admitted_at <= horizon
            ]
            if not idle:
                self.refusals += 1
                return None
            victim = min(idle, key=lambda slot: slot.idle_since or 0.0)
            victim.evicted = True
            victim.scope.cancel()
            self._open.discard(victim)
            self.evictions += 1
        slot = Slot(self._monotonic)
        self._open.add(slot)
        return slot

    def release(self, slot: Slot) -> None:
        self._open.discard(slot)


class PressureLog:
    """One warning per interval while a listener closes idle clients or turns clients away.

    A flood of connections would otherwise write a log line per connection.
    """

    def __init__(
        self,
        listener: str,
        slots: ConnectionSlots,
        *,
        every: float = ACCEPT_LOG_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listener = listener
        self._slots = slots
        self._every = every
        self._monotonic = monotonic
        self._logged_at: float | None = None
        self._seen = (0, 0)

    def note(self) -> None:
        """Call after each admission decision; logs what changed since the last line, if due."""
        counts = (self._slots.evictions, self._slots.refusals)
        if counts == self._seen:
            return
        now = self._monotonic()
        if self._logged_at is not None and now - self._logged_at < self._every:
            return
        log.warning(
            "listener.under_pressure",
            listener=self.listener,
            limit=self._slots.limit,
            closed_idle=counts[0] - self._seen[0],
            turned_away=counts[1] - self._seen[1],
        )
        self._logged_at = now
        self._seen = counts


class AcceptErrors:
    """Logs accept failures of one listener without flooding the log, and paces retries."""

    def __init__(
        self,
        listener: str,
        *,
        log_every: float = ACCEPT_LOG_EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listener = listener
        self._log_every = log_every
        self._monotonic = monotonic
        self._last_logged: float | None = None
        self._suppressed = 0
        self.total = 0

    async def failed(self, exc: OSError) -> None:
        """Note ``exc`` and wait before the next accept (no wait for a client that gave up)."""
        if exc.errno in _TRANSIENT:
            return
        self.total += 1
        now = self._monotonic()
        if self._last_logged is None or now - self._last_logged >= self._log_every:
            log.error(
                "listener.accept_failed",
                listener=self.listener,
                error=errno.errorcode.get(exc.errno or 0, "") or str(exc),
                reason=exc.strerror or str(exc),
                suppressed=self._suppressed,
            )
            self._last_logged = now
            self._suppressed = 0
        else:
            self._suppressed += 1
        await anyio.sleep(ACCEPT_BACKOFF_S)


Conn = TypeVar("Conn")
"""What a listener accepts: a raw socket (status socket) or a stream (metrics endpoint)."""


class Admission(Generic[Conn]):
    """The accept loop of one listener: serve a client in a slot, turn it away, or drop it."""

    def __init__(self, listener: str, limit: int) -> None:
        self.slots = ConnectionSlots(limit)
        self.accept_errors = AcceptErrors(listener)
        self._pressure = PressureLog(listener, self.slots)
        self._turning_away = 0

    async def accept_loop(
        self,
        accept: Callable[[], Awaitable[Conn]],
        tg: TaskGroup,
        *,
        serve: Callable[[Conn, Slot], Coroutine[Any, Any, None]],
        busy: Callable[[Conn], Awaitable[None]],
        drop: Callable[[Conn], Awaitable[None]],
    ) -> None:
        """Accept until cancelled; each client is served, told busy, or dropped.

        ``serve`` must release its slot (``slots.release``) when done. Busy
        answers (``busy`` bounds its own waits) go to at most ``limit``
        clients at a time; beyond that a flood of clients owes no reply to
        all of them and each is dropped unanswered.
        """
        while True:
            try:
                conn = await accept()
            except OSError as exc:
                # EMFILE, ENFILE, ENOBUFS...: logged, then keep listening.
                await self.accept_errors.failed(exc)
                continue
            slot = self.slots.admit()
            self._pressure.note()
            if slot is not None:
                tg.start_soon(serve, conn, slot)
            elif self._turning_away < self.slots.limit:
                self._turning_away += 1
                tg.start_soon(self._turn_away, busy, conn)
            else:
                await drop(conn)

    async def _turn_away(self, busy: Callable[[Conn], Awaitable[None]], conn: Conn) -> None:
        try:
            await busy(conn)
        finally:
            self._turning_away -= 1
