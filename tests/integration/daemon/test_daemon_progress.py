"""A long first push to fabric, seen from outside: `syncd status --json` and the STATUS= line.

A real `syncd run` against the sandbox, with fabric's API limited to 15
requests a minute (the channel spends 80 % of it) and more fabric variants
than a minute's budget: the first minute's writes go out at once and the
rest wait for the window. While they wait, `syncd status --json` (the real
command, over the daemon's socket) must show the backlog: done and total,
a measured rate, and an ETA no shorter than the spent window takes to free.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    daemon,
    notify_socket,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

FABRIC_PER_MINUTE = 15
CHANNEL_SHARE = 0.8
"""fabric's default ``budget_share``: the channel leaves the rest to the order feed."""


@pytest.fixture(scope="module")
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=50, seed=3)
    with sandbox.threaded():
        yield sandbox


def set_key(config: Path, section: str, key: str, value: str) -> None:
    """Set ``key`` in ``[section]`` of the sandbox's config (the key must be there)."""
    text = config.read_text(encoding="utf-8")
    start = text.index(f"[{section}]\n")
    end = text.find("\n[", start + 1)
    body = text[start : end if end != -1 else len(text)]
    new_body, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", body)
    assert count == 1, f"no {key} in [{section}]"
    config.write_text(text.replace(body, new_body, 1), encoding="utf-8")


def status_json(config: Path, socket: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "status", "--json", "--socket", str(socket)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout, done.stderr
    reply: dict[str, Any] = json.loads(done.stdout)
    return reply


def test_a_long_push_shows_done_total_rate_and_eta(world: SandboxWorld) -> None:
    published = len(world.catalog.published("fabric"))
    first_minute = int(FABRIC_PER_MINUTE * CHANNEL_SHARE)
    assert published > first_minute + 5  # the push must outlast the first minute's budget
    with short_dir() as directory, notify_socket(directory) as notify:
        config = write_config(world, directory)
        set_key(config, "apis.fabric", "requests_per_minute", str(FABRIC_PER_MINUTE))
        # The order feed shares the budget: one poll a minute leaves the writes room.
        set_key(config, "sources.fabric_orders", "poll_interval", "60.0")
        set_key(config, "sources.fabric_orders", "stale_after", "600.0")
        with daemon(config, directory, notify=notify.path) as syncd:
            wait_until(syncd.answers, what="the daemon's socket")
            seen: dict[str, Any] = {}

            def waiting_with_a_rate() -> bool:
                reply = status_json(config, syncd.socket)
                fabric = next(c for c in reply["channels"] if c["name"] == "fabric")
                progress = fabric["progress"]
                if progress is None or not progress["done"] or progress["rate_per_min"] is None:
                    return False
                seen.update(fabric)
                return True

            # The first batch's confirming list read may have to wait for the minute
            # window (the SKU map's pages and an order poll share it): acknowledgements,
            # and so "done", can take a whole window to appear.
            wait_until(waiting_with_a_rate, timeout=150.0, what="fabric's progress with a rate")

            progress = seen["progress"]
            assert set(progress) == {"done", "total", "rate_per_min", "eta_s"}
            # Every fabric value is part of the first publication's backlog (an order
            # read meanwhile may add a change to a value already acknowledged).
            assert progress["total"] >= published
            assert 0 < progress["done"] <= first_minute
            assert progress["total"] - progress["done"] == seen["queue_depth"]
            assert progress["rate_per_min"] > 0
            # What is left cannot go before the minute window frees its slots.
            [minute] = seen["rate_limit"]
            assert minute["limit"] == FABRIC_PER_MINUTE
            assert progress["eta_s"] is not None
            assert minute["remaining"] < seen["queue_depth"]
            assert progress["eta_s"] + 1.0 >= minute["resets_in_s"]

            def status_line_shows_it() -> bool:
                return any(
                    line.startswith("STATUS=") and re.search(r"fabric \d+ queued \(\d+/", line)
                    for line in notify.lines()
                )

            wait_until(status_line_shows_it, what="progress in the STATUS= line")
            line = next(
                line
                for line in reversed(notify.lines())
                if line.startswith("STATUS=") and "fabric" in line
            )
            assert re.search(r"fabric \d+ queued \(\d+/\d+ \(\d+%\), ", line), line
            assert "ETA " in line
