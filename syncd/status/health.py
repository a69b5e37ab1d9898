"""Is syncd doing its job? The pure verdict behind ``health`` and its reasons.

``failing`` -- syncd cannot do its job: a channel's numbers are computed from
a stale source so its pushes are blocked (the engine refuses them, see
:mod:`syncd.engine`), or the ledger cannot be read or written.

``degraded`` -- syncd works but something needs attention: a source is
failing or stale without blocking anything, a cycle is held for
confirmation, variants are parked, pushes fail, the APIs answered 429
recently, a channel drifted from what it acknowledged, a config reload was
rejected, sources have not finished their first read since start, or a
work loop has been busy with one unit of work for too long.

Each reason is one sentence a person can act on; the status document lists
them and ``STATUS=`` shows the first. No I/O here: the status handler
gathers the facts, this module judges them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from syncd.sources.freshness import why_stale
from syncd.status.protocol import Health


@dataclass(frozen=True, slots=True)
class SourceFacts:
    name: str
    stale: bool
    age_s: float | None
    """Seconds since the last successful read (None: never)."""
    stale_after: float
    consecutive_errors: int = 0
    last_error: str | None = None
    retry_in_s: float | None = None
    starting: bool = False
    """Not read successfully since the daemon started, within its first ``stale_after``."""
    read_since_start: bool = True
    """Read successfully by this process; ``age_s`` is then monotonic, else wall-clock
    (a success of an earlier process, shown but never trusted)."""


@dataclass(frozen=True, slots=True)
class ChannelFacts:
    name: str
    stale_sources: Sequence[str] = ()
    """Sources feeding this channel that are stale now."""
    block_on_stale: bool = True
    held: int = 0
    parked: int = 0
    consecutive_errors: int = 0
    last_error: str | None = None
    failed_last_round: int = 0
    drift: int = 0
    readback_error: str | None = None
    verified: bool = True
    """False until the start-up read-back succeeded: nothing is pushed before it."""


@dataclass(frozen=True, slots=True)
class HealthFacts:
    sources: Sequence[SourceFacts] = ()
    channels: Sequence[ChannelFacts] = ()
    ledger_error: str | None = None
    engine_error: str | None = None
    recent_429: dict[str, int] = field(default_factory=dict)
    """429 answers per API within the recent window."""
    recent_window_s: float = 900.0
    reload_error: str | None = None
    stuck: Sequence[str] = ()
    """Work loops busy with one unit of work for longer than ``stuck_after_s``."""
    stuck_after_s: float = 300.0


def _source_why(source: SourceFacts) -> str:
    return why_stale(source.age_s, source.last_error, since_start=source.read_since_start)


def assess_health(facts: HealthFacts) -> tuple[Health, list[str]]:
    """``(health, reasons)``: failing reasons first, then degraded ones."""
    failing: list[str] = []
    degraded: list[str] = []
    if facts.ledger_error:
        failing.append(f"ledger unhealthy: {facts.ledger_error}")
    sources = {source.name: source for source in facts.sources}
    blocking: set[str] = set()
    for channel in facts.channels:
        # A source that has not finished its first read since start is
        # "starting", not a reason to call the channel blocked yet.
        stale = [
            name
            for name in channel.stale_sources
            if name not in sources or not sources[name].starting
        ]
        if stale and channel.block_on_stale:
            blocking.update(stale)
            details = "; ".join(
                f"{name} ({_source_why(sources[name])})" if name in sources else name
                for name in stale
            )
            failing.append(f"channel {channel.name} blocked: stale source {details}")
    for source in facts.sources:
        if source.consecutive_errors:
            retry = (
                f"; retrying in {source.retry_in_s:.0f} s" if source.retry_in_s is not None else ""
            )
            degraded.append(
                f"source {source.name} failing ({source.consecutive_errors} attempt(s)): "
                f"{source.last_error or 'unknown error'}{retry}"
            )
        if source.starting:
            degraded.append(f"source {source.name} has not finished its first read yet")
        elif source.stale and source.name not in blocking:
            degraded.append(f"source {source.name} stale: {_source_why(source)}")
    if facts.engine_error:
        degraded.append(f"recompute failing: {facts.engine_error}")
    for task in facts.stuck:
        degraded.append(f"{task} has been busy for more than {facts.stuck_after_s:.0f} s")
    for channel in facts.channels:
        degraded.extend(_channel_reasons(channel))
    for api, count in sorted(facts.recent_429.items()):
        if count:
            minutes = facts.recent_window_s / 60
            degraded.append(
                f"{api} answered 429 (rate limited) {count} time(s) in the last {minutes:.0f} min"
            )
    if facts.reload_error:
        degraded.append(
            f"config reload rejected, still running the previous config: {facts.reload_error}"
        )
    if failing:
        return "failing", failing + degraded
    if degraded:
        return "degraded", degraded
    return "ok", []


def _channel_reasons(channel: ChannelFacts) -> list[str]:
    reasons: list[str] = []
    name = channel.name
    if channel.held:
        reasons.append(
            f"channel {name}: {channel.held} held cycle(s) wait for `syncd confirm {name} ID`"
        )
    if channel.parked:
        reasons.append(f"channel {name}: {channel.parked} variant(s) parked (see `syncd status`)")
    if channel.consecutive_errors:
        reasons.append(
            f"channel {name}: push failing ({channel.consecutive_errors} round(s)): "
            f"{channel.last_error or 'unknown error'}"
        )
    elif channel.failed_last_round:
        reasons.append(
            f"channel {name}: {channel.failed_last_round} update(s) failed in the last round "
            "(they are retried)"
        )
    if channel.drift:
        reasons.append(
            f"channel {name}: {channel.drift} variant(s) show a different number than syncd pushed"
        )
    if not channel.verified:
        why = (
            f"read-back failing: {channel.readback_error}" if channel.readback_error else "reading"
        )
        reasons.append(
            f"channel {name}: nothing pushed until its start-up read-back is done ({why})"
        )
    elif channel.readback_error:
        reasons.append(f"channel {name}: read-back failing: {channel.readback_error}")
    return reasons
