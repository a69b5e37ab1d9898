"""Keep OAuth tokens across processes: which stored token may be used, and the store's I/O.

A token provider (:mod:`syncd.http.auth`) holds its token in memory; with a
:class:`TokenStore` attached (the ledger, :mod:`syncd.ledger.tokens`) it also
writes every token it obtains there, and reads it back before asking the
token endpoint. ``syncd once`` from a timer every minute then asks Ankorstore
for one token per lifetime instead of one per run (60 token requests per
hour allowed, seed 000 L228).

What must never happen, and how it is kept from happening:

* **a token used for another API, endpoint or account** -- the store is
  keyed by API, token URL and client id (user name for a password grant),
  all taken from the running config;
* **an expired token used** -- the stored expiry is wall-clock time, and a
  token is taken only while more than the provider's refresh margin of its
  life remains; one whose recorded start lies in the future (the clock was
  set back) is not trusted at all;
* **a rejected token used again** -- a 401 removes it from the store too;
* **a token logged** -- values never appear in events or reprs, and every
  token loaded is registered with the log redactor like a fresh one.

A failing store (a locked or full ledger) never fails a request: the token
in memory is as good as ever, the failure is logged and the next process
asks the endpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import structlog

from syncd.clock import Clock
from syncd.ledger.tokens import StoredToken, TokenKey
from syncd.logs import register_token

_log = structlog.get_logger("syncd.http")

CLOCK_SKEW_ALLOWANCE = 60.0
"""A stored token that claims to have been obtained more than this far in the future
was written under a clock that has since been set back: its expiry means nothing."""

STORE_DEADLINE = 10.0
"""Longest a token load or save may wait for the ledger (its busy timeout is 5 s)."""


class TokenStore(Protocol):
    """Where tokens outlive the process (:class:`syncd.ledger.store.Ledger`)."""

    async def load_token(self, key: TokenKey) -> StoredToken | None: ...

    async def save_token(self, key: TokenKey, token: StoredToken) -> None: ...

    async def forget_token(self, key: TokenKey, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Usable:
    """How long a stored token still lives, and its whole lifetime, in seconds from now."""

    remaining: float
    lifetime: float


def usable(stored: StoredToken, *, wall_now: float, margin: float) -> Usable | None:
    """Whether ``stored`` may be used now: more than ``margin`` seconds left, sane times."""
    lifetime = stored.expires_at - stored.obtained_at
    if lifetime <= 0 or stored.obtained_at > wall_now + CLOCK_SKEW_ALLOWANCE:
        return None
    remaining = stored.expires_at - wall_now
    if remaining <= margin or remaining > lifetime + CLOCK_SKEW_ALLOWANCE:
        return None
    return Usable(remaining=remaining, lifetime=lifetime)


class PersistedTokens:
    """One provider's view of the store: its key, and I/O that never raises."""

    def __init__(self, store: TokenStore, key: TokenKey) -> None:
        self._store = store
        self.key = key

    async def restore(
        self, clock: Clock, margin_for: Callable[[float], float], *, rejected: str | None
    ) -> tuple[str, float, float] | None:
        """``(value, expires_at, refresh_at)`` on ``clock``'s monotonic scale, or ``None``.

        ``rejected`` (a token a server refused since the last call) is removed
        from the store first, so it is never read back. ``margin_for(lifetime)``
        is the provider's refresh margin.
        """
        if rejected is not None:
            await self.forget(rejected)
        stored = await self.load()
        if stored is None or stored.value == rejected:
            return None
        margin = margin_for(max(stored.expires_at - stored.obtained_at, 0.0))
        fit = usable(stored, wall_now=clock.wall(), margin=margin)
        if fit is None:
            return None
        now = clock.monotonic()
        register_token(stored.value)
        _log.info("http.token_reused", api=self.key.api, expires_in_s=round(fit.remaining))
        return stored.value, now + fit.remaining, now + fit.remaining - margin

    async def save_fresh(
        self, clock: Clock, value: str, *, sent_at: float, expires_at: float
    ) -> None:
        """Store a token obtained by a request sent at ``sent_at`` (monotonic, like ``expires_at``)."""
        # Wall-clock times: the next process shares no monotonic clock with this one.
        obtained = clock.wall() - (clock.monotonic() - sent_at)
        lifetime = expires_at - sent_at
        await self.save(
            StoredToken(value=value, obtained_at=obtained, expires_at=obtained + lifetime)
        )

    async def load(self) -> StoredToken | None:
        try:
            with anyio.fail_after(STORE_DEADLINE):
                return await self._store.load_token(self.key)
        except Exception as exc:
            _log.warning("http.token_cache_failed", api=self.key.api, op="load", error=_kind(exc))
            return None

    async def save(self, token: StoredToken) -> None:
        try:
            with anyio.fail_after(STORE_DEADLINE):
                await self._store.save_token(self.key, token)
        except Exception as exc:
            _log.warning("http.token_cache_failed", api=self.key.api, op="save", error=_kind(exc))

    async def forget(self, value: str) -> None:
        try:
            with anyio.fail_after(STORE_DEADLINE):
                await self._store.forget_token(self.key, value)
        except Exception as exc:
            _log.warning("http.token_cache_failed", api=self.key.api, op="forget", error=_kind(exc))


def _kind(exc: Exception) -> str:
    # The type and SQLite's message; the statement's parameters (the token) are never in it.
    return f"{type(exc).__name__}: {exc}"[:300]
