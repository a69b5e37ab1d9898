"""Shared by the status socket tests: sample replies, a running server, a raw client."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal
from structlog.testing import capture_logs

from syncd.status.server import (
    ChannelStatus,
    Health,
    SourceStatus,
    StatusHandler,
    StatusReply,
    StatusServer,
)


@contextmanager
def short_dir() -> Iterator[Path]:
    """A private directory with a short path: Unix socket paths stop at 107 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="syncd-st-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@asynccontextmanager
async def running(server: StatusServer) -> AsyncIterator[StatusServer]:
    """Serve in the current event loop; stop (and clean up) on exit."""
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


@contextmanager
def serving_in_thread(path: Path, handler: StatusHandler, **options: Any) -> Iterator[StatusServer]:
    """Serve from an event loop in another thread, for synchronous CLI tests.

    The server's log events are captured so they stay out of the CLI output
    the tests read (structlog's default configuration prints to stdout).
    """
    server = StatusServer(path, handler, **options)
    with capture_logs(), start_blocking_portal(backend="asyncio") as portal:
        future, _ = portal.start_task(server.serve)
        try:
            yield server
        finally:
            future.cancel()


async def exchange(path: Path, data: bytes) -> list[dict[str, Any]]:
    """Send raw bytes, half-close, and return every reply line until EOF."""
    async with await anyio.connect_unix(path) as stream:
        await stream.send(data)
        await stream.send_eof()
        received = b""
        with anyio.fail_after(60):
            while True:
                try:
                    received += await stream.receive()
                except anyio.EndOfStream:
                    break
    return [json.loads(line) for line in received.splitlines()]


def leave_stale_socket(path: Path) -> None:
    """What a crashed daemon leaves behind: a socket file nobody listens on."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()


GENERATED_AT = "2024-05-01T12:00:00+00:00"


def source(
    name: str, *, age_s: float | None = 3.0, stale: bool = False, **extra: object
) -> SourceStatus:
    reply: SourceStatus = {
        "name": name,
        "enabled": True,
        "last_success": None if age_s is None else "2024-05-01T11:59:57+00:00",
        "age_s": age_s,
        "stale": stale,
        "cursor": "2024-05-01T11:59:57+00:00",
        "last_error": None,
        "records": 120,
    }
    reply.update(extra)  # type: ignore[typeddict-item]
    return reply


def channel(name: str, **extra: object) -> ChannelStatus:
    reply: ChannelStatus = {
        "name": name,
        "enabled": True,
        "queue_depth": 0,
        "last_push": "2024-05-01T11:59:48+00:00",
        "pushes": 10,
        "variants_pushed": 480,
        "errors": 0,
        "rate_limited": 0,
        "rate_limit": [
            {"window": "minute", "limit": 600, "used": 12, "remaining": 588, "resets_in_s": 41.0},
            {
                "window": "hour",
                "limit": 24000,
                "used": 612,
                "remaining": 23388,
                "resets_in_s": 900.0,
            },
            {
                "window": "day",
                "limit": 288000,
                "used": 612,
                "remaining": 287388,
                "resets_in_s": 4e4,
            },
        ],
        "parked": [],
        "held": [],
        "waiting": [],
        "progress": None,
    }
    reply.update(extra)  # type: ignore[typeddict-item]
    return reply


def status_reply(health: Health = "ok", reasons: list[str] | None = None) -> StatusReply:
    sources = [source("activeants"), source("astral")]
    channels = [channel("ankorstore"), channel("fabric", rate_limit=[])]
    if health == "degraded":
        sources[1] = source("astral", age_s=930.0, stale=True)
    if health == "failing":
        channels[0] = channel(
            "ankorstore",
            errors=7,
            held=[
                {
                    "hold_id": 3,
                    "reason": "would zero 30 of 100 variants",
                    "created_at": "2024-05-01T11:50:00+00:00",
                    "zeroes": 30,
                    "changes": 40,
                    "variants": 100,
                }
            ],
        )
    return {
        "ok": True,
        "health": health,
        "reasons": reasons if reasons is not None else [],
        "version": "0.1.0",
        "pid": 4242,
        "started_at": "2024-05-01T09:00:00+00:00",
        "generated_at": GENERATED_AT,
        "uptime_s": 10_800.0,
        "config": "/etc/syncd/syncd.toml",
        "sources": sources,
        "channels": channels,
        "counters": {"pushes": 10, "errors": 0, "http_429": 0, "cycles": 5},
        "gauges": {"cycle_duration_s": 0.2},
    }
