"""Bad input from a source: what was skipped, why, and how loudly to say so.

A stock source never lets one bad item spoil a page: the item is left out,
the rest is recorded, and the skip is made visible three ways -- a structured
``source.item_skipped`` event (``source``, ``item``, ``reason``), a line in
`PollResult.problems`, and the feed's ``extra`` in the ledger (status socket).

The same unknown SKU comes back on every full read, so logging it each time
would bury everything else in the journal. :class:`SkipLog` therefore counts
an item once per poll, logs a given (item, reason) at most once per
``quiet_period``, and sums up what it kept quiet in one
``source.items_skipped`` event per poll.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import structlog

from syncd.clock import Clock

_log = structlog.get_logger(__name__)

DEFAULT_QUIET_PERIOD = 3_600.0
"""Seconds before the same (item, reason) is logged again."""
_EXAMPLES = 5
"""Items quoted per reason in a problem line."""
_MEMORY = 10_000
"""(item, reason) pairs remembered for rate limiting; the oldest are forgotten."""


class MalformedPage(ValueError):
    """A whole response is unusable (not JSON, wrong shape, no cursor).

    Nothing of it is recorded and the feed's cursor stays where it was, so
    the same data is read again on the next poll.
    """


@dataclass(frozen=True, slots=True)
class Skipped:
    """One item left out of a page: the source's own id for it and why."""

    item: str
    reason: str


@dataclass(slots=True)
class SkipSummary:
    """What one poll skipped, for `PollResult` and the feed's extra."""

    count: int = 0
    problems: list[str] = field(default_factory=list)

    def extra(self) -> dict[str, str]:
        """Feed ``extra`` keys (strings only, as the ledger stores them)."""
        return {
            "skipped_last_poll": str(self.count),
            "skipped_reasons": "; ".join(self.problems)[:1000],
        }


class SkipLog:
    """Collects one poll's skipped items and logs them without flooding the journal."""

    def __init__(
        self, source: str, clock: Clock, *, quiet_period: float = DEFAULT_QUIET_PERIOD
    ) -> None:
        self._source = source
        self._clock = clock
        self._quiet_period = quiet_period
        self._logged: OrderedDict[Skipped, float] = OrderedDict()
        self._poll: dict[Skipped, None] = {}
        self._suppressed = 0

    def begin_poll(self) -> None:
        self._poll = {}
        self._suppressed = 0

    def skip(self, skipped: Skipped) -> None:
        """Note one skipped item; an item seen again in the same poll counts once."""
        if skipped in self._poll:
            return
        self._poll[skipped] = None
        now = self._clock.monotonic()
        last = self._logged.get(skipped)
        if last is not None and now - last < self._quiet_period:
            self._suppressed += 1
            return
        self._logged[skipped] = now
        self._logged.move_to_end(skipped)
        while len(self._logged) > _MEMORY:
            self._logged.popitem(last=False)
        _log.warning(
            "source.item_skipped", source=self._source, item=skipped.item, reason=skipped.reason
        )

    def finish_poll(self) -> SkipSummary:
        """This poll's skips summed up by reason (and one event for the quiet ones)."""
        by_reason: dict[str, list[str]] = {}
        for skipped in self._poll:
            by_reason.setdefault(skipped.reason, []).append(skipped.item)
        problems = [_problem_line(reason, items) for reason, items in sorted(by_reason.items())]
        if self._suppressed:
            _log.warning(
                "source.items_skipped",
                source=self._source,
                count=len(self._poll),
                not_logged_again=self._suppressed,
                reasons={reason: len(items) for reason, items in by_reason.items()},
            )
        return SkipSummary(count=len(self._poll), problems=problems)


def _problem_line(reason: str, items: list[str]) -> str:
    examples = ", ".join(items[:_EXAMPLES])
    more = f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else ""
    noun = "item" if len(items) == 1 else "items"
    return f"{len(items)} {noun} skipped ({reason}): {examples}{more}"
