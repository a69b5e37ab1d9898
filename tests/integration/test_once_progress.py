"""`syncd once` on a real terminal (a pty): one progress line on stderr, updated in place.

fabric is limited to 15 requests a minute, so the first publication takes
more than one minute's budget and several rounds: the line must show
done / total, a rate and an ETA for fabric, drawn with carriage return and
erase-line (never a new line per update), and be gone before the summary.
Slow (two minutes of real rate-limit windows): ``pytest -m slow``.
"""

from __future__ import annotations

import os
import pty
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import sandbox_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FRAME = re.compile(r"\r\x1b\[K(syncd once: [^\r\n\x1b]*)")


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=16, seed=11)
    with sandbox.threaded():
        yield sandbox


def limit_fabric(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    api = text.index("[apis.fabric]")
    rate = text.index("requests_per_minute = 600", api)
    text = (
        text[:rate] + "requests_per_minute = 15" + text[rate + len("requests_per_minute = 600") :]
    )
    orders = text.index("[sources.fabric_orders]")
    text = text[:orders] + text[orders:].replace("poll_interval = 2.0", "poll_interval = 30.0", 1)
    config.write_text(text.replace('log_format = "auto"', 'log_format = "json"'), encoding="utf-8")


def run_on_a_terminal(config: Path, timeout: float = 600.0) -> tuple[int, str]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: syncd once with the pty as its terminal
        os.execv(sys.executable, [sys.executable, "-m", "syncd", "once", "--config", str(config)])
    output = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_a_long_first_sync_draws_one_updating_progress_line(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config = sandbox_config(world, tmp_path)
    limit_fabric(config)
    published = len(world.catalog.published("fabric"))
    assert published > 12  # more than the channel's first minute (80 % of 15)

    code, output = run_on_a_terminal(config)

    assert code == 0, output[-3000:]
    frames = FRAME.findall(output)
    assert len(frames) >= 3
    fabric = [f for f in frames if "fabric " in f]
    assert fabric, frames
    assert all(re.search(r"fabric \d+/\d+ \(\d+%\), (rate -|[\d.]+/min), ETA ", f) for f in fabric)
    done = [int(m.group(1)) for f in fabric if (m := re.search(r"fabric (\d+)/", f))]
    assert done == sorted(done)
    assert done[-1] < published
    # Updated in place: no frame ends a line; the line is erased before the summary.
    assert not re.search(r"\x1b\[Ksyncd once: [^\r\x1b]*\n", output)
    summary = next(
        line for line in output.splitlines() if "fabric: " in line and "acknowledged" in line
    )
    assert f"fabric: {published} acknowledged" in summary
    assert summary.startswith(("\x1b[K", "fabric:"))
