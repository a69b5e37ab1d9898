"""Which failures are retried, how often, and how long to wait in between.

Pure: the caller passes the attempt number, the time spent so far and a
seeded ``random.Random``, so every decision is reproducible in tests and in
the deterministic simulation.

The rules follow Ankorstore's documented behaviour (seed 000 L172, L223-228)
and apply to every API syncd talks to:

* 400, 403, 404, 406, 415, 422 and every other 4xx not listed below are
  **never retried**: the same request will fail the same way.
* 401 means the token expired or was revoked (seed 000 L172, seed 001 L28):
  fetch a fresh token **once** and retry; a second 401 is a credential error.
* 429: wait as the server says (``Retry-After``/``X-RateLimit-Reset``) and
  retry, a bounded number of times. A 429 was not processed, so retrying is
  safe for any method.
* 408, 5xx (except 501/505) and transport failures: exponential back-off
  with full jitter, bounded in attempts and in total time -- **only for
  idempotent requests**, because the server may have acted before failing.
  Connection failures (nothing was sent) are retried for every request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Outcome(Enum):
    """What a response status means for the request that got it."""

    OK = "ok"
    REAUTH = "reauth"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    FATAL = "fatal"


NEVER_RETRIED = frozenset({400, 403, 404, 406, 415, 422})
"""The statuses Ankorstore documents as client errors (seed brief catalog §7.1)."""


def classify(status: int) -> Outcome:
    if 200 <= status <= 299:
        return Outcome.OK
    if status == 401:
        return Outcome.REAUTH
    if status == 429:
        return Outcome.RATE_LIMITED
    if status == 408 or (500 <= status <= 599 and status not in (501, 505)):
        return Outcome.TRANSIENT
    # Everything else -- NEVER_RETRIED, other 4xx, 1xx/3xx (redirects are not
    # followed: a fabric POST redirected for a missing trailing slash would
    # lose its body) and 501/505 -- fails the same way again.
    return Outcome.FATAL


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying one logical request."""

    max_attempts: int = 5
    """HTTP attempts in total for transient failures (the first one included)."""
    base_delay: float = 0.5
    """Back-off before the first retry is drawn from [0, base_delay]."""
    max_delay: float = 30.0
    """No single back-off exceeds this."""
    max_elapsed: float = 120.0
    """No retry is started once this many seconds have passed (or would, after the wait)."""
    max_rate_limited: int = 5
    """429 answers one logical request may wait out before giving up."""
    max_rate_limit_wait: float = 900.0
    """A 429 asking for a longer pause is raised at once instead of waited out."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first attempt, so it is at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 <= base_delay <= max_delay")
        if self.max_elapsed < 0 or self.max_rate_limited < 0 or self.max_rate_limit_wait < 0:
            raise ValueError("retry bounds cannot be negative")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Delay before retry number ``retry`` (1-based): full jitter.

        Uniform in ``[0, min(max_delay, base_delay * 2**(retry-1))]``, so many
        clients failing together do not come back together (AWS
        architecture blog, "Exponential Backoff And Jitter").
        """
        if retry < 1:
            raise ValueError("retries are numbered from 1")
        ceiling = min(self.max_delay, self.base_delay * 2 ** min(retry - 1, 62))
        return rng.uniform(0.0, ceiling)

    def may_retry(self, attempts: int, elapsed: float, delay: float) -> bool:
        """Whether one more attempt fits after ``attempts`` made and ``elapsed`` seconds."""
        return attempts < self.max_attempts and elapsed + delay <= self.max_elapsed


NO_RETRY = RetryPolicy(max_attempts=1, max_rate_limited=0)
"""For callers that handle failures themselves."""
