"""The sandbox rig: simulators on loopback, syncd's config and clients for them.

:func:`sandbox` starts a :class:`~syncd.sandbox.world.SandboxWorld` on
loopback (threads), writes its config into a directory and builds the HTTP
clients exactly as the daemon does (:func:`syncd.integrations.build_clients`);
everything is torn down when the ``async with`` block ends. The rest reads
the simulators' counters, scales their rate limits and syncd's together,
and records what one httpx client sends.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from syncd.clock import SystemClock
from syncd.config import Config, load_config
from syncd.integrations import build_clients
from syncd.model import ChannelRule, SnapshotDraft, StockStatus
from syncd.safety import SafetyPolicy
from syncd.sandbox.limits import SlidingWindows
from syncd.sandbox.limits import Window as SimWindow
from syncd.sandbox.world import SandboxWorld
from syncd.wiring import ApiClients

ANKORSTORE_CEILING_PER_MIN = 600 * 50
"""Documented ceiling: 600 requests per minute (seed 000 L202-206) x 50 operations (L638)."""

PERMISSIVE = SafetyPolicy(
    max_zero_share=1.0,
    max_change_share=1.0,
    confirm_increase_after_zero=False,
    block_on_stale_source=False,
)
"""Interlocks off: the push-path benchmarks measure requests, not operator holds."""


@dataclass(frozen=True, slots=True)
class Exchange:
    at: float
    """time.monotonic() when the response headers arrived."""
    method: str
    path: str
    status: int
    operations: int
    """Stock operations carried (bulk: up to 50; PATCH .../stock: 1; reads: 0)."""


class TrafficLog:
    """Every request one httpx client makes, with the stock operations it carried."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def attach(self, http: httpx.AsyncClient) -> None:
        http.event_hooks = {"response": [self._hook]}

    async def _hook(self, response: httpx.Response) -> None:
        request = response.request
        self.exchanges.append(
            Exchange(
                at=time.monotonic(),
                method=request.method,
                path=request.url.path,
                status=response.status_code,
                operations=_operations_in(request),
            )
        )

    def api_calls(self, since: int = 0) -> list[Exchange]:
        """Calls that count against the API budget (the token endpoint has its own)."""
        return [e for e in self.exchanges[since:] if e.path != "/oauth/token"]


def _operations_in(request: httpx.Request) -> int:
    path = request.url.path
    if request.method == "POST" and path == "/api/v1/operations":
        try:
            body = json.loads(request.content)
        except ValueError:
            return 0
        operations = body.get("atomic:operations") if isinstance(body, dict) else None
        return len(operations) if isinstance(operations, list) else 0
    if request.method == "PATCH" and path.endswith("/stock"):
        return 1
    return 0


# --- the sandbox rig --------------------------------------------------------------------


@dataclass(slots=True)
class Rig:
    world: SandboxWorld
    directory: Path
    config: Config
    clients: ApiClients
    clock: SystemClock


def set_in_section(toml: str, section: str, key: str, value: str) -> str:
    """Add ``key = value`` right under ``[section]`` of a TOML text (the sandbox writes it once)."""
    header = f"[{section}]\n"
    if header not in toml:
        raise ValueError(f"no [{section}] in the config")
    pattern = re.compile(rf"(?m)^\[{re.escape(section)}\]\n((?:(?!\[)[^\n]*\n)*)")
    match = pattern.search(toml)
    assert match is not None
    body = re.sub(rf"(?m)^{re.escape(key)}\s*=.*\n", "", match.group(1))
    return toml[: match.start()] + header + f"{key} = {value}\n" + body + toml[match.end() :]


@asynccontextmanager
async def sandbox(
    directory: Path,
    world: SandboxWorld,
    *,
    edit: Callable[[str], str] | None = None,
    poll_interval: float = 2.0,
    cycle_interval: float = 2.0,
) -> AsyncIterator[Rig]:
    """Serve ``world`` on loopback (threads) and build the daemon's clients for it."""
    with world.threaded():
        path = world.write_config(
            directory, poll_interval=poll_interval, cycle_interval=cycle_interval
        )
        if edit is not None:
            path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
        config = load_config(path)
        clock = SystemClock()
        clients = build_clients(config, clock=clock)
        try:
            yield Rig(world, directory, config, clients, clock)
        finally:
            await clients.aclose()


def rule_for(config: Config, channel: str) -> ChannelRule:
    [rule] = [r for r in config.channel_rules() if r.channel == channel]
    return rule


def activeants_snapshot(key: str, levels: dict[str, int]) -> SnapshotDraft:
    """Absolute available levels at Active Ants, as a stock source would record them."""
    return SnapshotDraft(
        source="bench",
        key=key,
        observed_at=datetime.now(UTC),
        location="activeants",
        levels={(StockStatus.AVAILABLE, sku, ""): quantity for sku, quantity in levels.items()},
    )


# --- simulator counters and rates -------------------------------------------------------


def requests_by_api(world: SandboxWorld) -> dict[str, int]:
    """Requests each simulator has received so far (token requests included, 429s too)."""
    ankorstore = world.ankorstore.counters
    return {
        "ankorstore": sum(ankorstore.requests.values()) + ankorstore.token_requests,
        "activeants": sum(world.activeants.counters.requests.values()),
        "fabric": sum(world.fabric.counters.requests.values()),
        "fashiontrade": sum(world.fashiontrade.counters.requests.values()),
    }


def rate_limited(world: SandboxWorld) -> int:
    """429 answers every simulator has served so far."""
    others = (world.activeants.counters, world.fabric.counters, world.fashiontrade.counters)
    return world.ankorstore.counters.rate_limited + sum(sum(c.throttled.values()) for c in others)


def scale_sim_rates(world: SandboxWorld, factor: float) -> None:
    """Multiply every simulator's request limits by ``factor``; call before serving.

    Used with :func:`scale_client_rates` and intervals divided by the same
    factor: the daemon then lives ``factor`` times faster, and work that is
    paced by a rate window (a read-back of the whole catalog) still fits
    between two of its runs.
    """
    windows = [
        SimWindow(max(1, round(w.limit * factor)), w.seconds, w.name)
        for w in world.ankorstore.rate.windows
    ]
    world.ankorstore.rate = SlidingWindows(windows, world.clock)
    for state in (world.activeants, world.fabric, world.fashiontrade):
        if state.rate_limit is not None:
            state.rate_limit = max(1, round(state.rate_limit * factor))


def scale_client_rates(toml: str, config: Config, factor: float) -> str:
    """The same scaling for syncd's own limiters: every rate ``config`` sets, times ``factor``.

    syncd refuses Ankorstore limits above the documented ones, so Ankorstore's
    stay at most at those: the sped-up daemon then paces Ankorstore in real
    time while its simulator would allow more -- slower, never throttled.
    """
    keys = ("requests_per_minute", "requests_per_hour", "requests_per_day")
    for name, section in config.apis.present().items():
        for key in keys:
            value = getattr(section, key, None)
            if value is None:
                continue
            scaled = max(1, round(value * factor))
            if name == "ankorstore":
                scaled = min(scaled, _ANKORSTORE_DOCUMENTED[key])
            toml = set_in_section(toml, f"apis.{name}", key, str(scaled))
    return toml


_ANKORSTORE_DOCUMENTED = {
    "requests_per_minute": 600,
    "requests_per_hour": 24_000,
    "requests_per_day": 288_000,
}
"""The most syncd accepts in ``[apis.ankorstore]`` (seed 000 L202-206)."""
