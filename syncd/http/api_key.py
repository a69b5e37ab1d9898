"""A fixed API key sent as a bearer token: nothing to fetch, refresh or store.

The other APIs log in for tokens (:mod:`syncd.http.auth`); a key is only
ever sent, and rejected when it was revoked or is wrong.
"""

from __future__ import annotations

import math

import anyio.lowlevel
import structlog

from syncd.clock import Clock
from syncd.http.auth import Credential, Secret
from syncd.http.errors import AuthError, RequestContext

_log = structlog.get_logger("syncd.http")


class StaticBearer:
    """A fixed API key sent as a bearer token (FashionTrade, seed 002 L1746).

    A key cannot be refreshed: a 401 means it was revoked or is wrong, so
    after ``invalidate`` every call fails fast with :class:`AuthError` for
    ``rejected_cooldown`` seconds, then one request may probe again --
    never a hot loop (seed brief fashiontrade gotcha 21).
    """

    def __init__(
        self, *, api: str, key: Credential, clock: Clock, rejected_cooldown: float = 300.0
    ) -> None:
        self.api = api
        self._key = Secret(key)
        self._clock = clock
        self._cooldown = rejected_cooldown
        self._rejected_until = -math.inf

    def __repr__(self) -> str:
        return f"StaticBearer(api={self.api!r})"

    async def token(self) -> str:
        await anyio.lowlevel.checkpoint()
        wait = self._rejected_until - self._clock.monotonic()
        if wait > 0:
            raise AuthError(
                f"API key was rejected (401); not used again for {math.ceil(wait)} s",
                status=401,
                context=RequestContext(api=self.api),
            )
        return self._key.reveal()

    def invalidate(self, token: str) -> None:
        if token == self._key.reveal():
            self._rejected_until = self._clock.monotonic() + self._cooldown
            _log.error("http.api_key_rejected", api=self.api, cooldown_s=self._cooldown)
