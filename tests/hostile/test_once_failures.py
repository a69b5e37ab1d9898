"""`syncd once` fails loudly when a source or a channel fails (issue 14 item 7, issue 17 item 4).

Real processes: ``python -m syncd once`` against the sandbox simulators on
loopback, as cron or an operator runs it. A wrong Active Ants password must
be named -- with what to check -- on stderr, in the blocked line of every
channel it feeds, and in the feed's state in the ledger; the run exits 3.
A channel whose writes fail exits 3 too, and a clean run still exits 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.once.command import EXIT_FAILED, EXIT_OK
from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import run_once, sandbox_config

pytestmark = pytest.mark.integration

REFUSED = (
    "activeants POST /token: login refused (400 invalid_grant): "
    "check [apis.activeants] username and password (password_file or password_env)"
)
WRONG_PASSWORD = "not-the-password-7f3a"


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=20, seed=11)
    with sandbox.threaded():
        yield sandbox


async def feed_errors(database: Path) -> dict[str, str | None]:
    async with await Ledger.open(database) as ledger:
        return {state.feed: state.last_error for state in await ledger.feed_states()}


def test_a_wrong_active_ants_password_is_named_with_what_to_check_and_fails_the_run(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config = sandbox_config(world, tmp_path)
    (tmp_path / "credentials" / "activeants").write_text(WRONG_PASSWORD + "\n", encoding="utf-8")

    run = run_once(config)

    assert run.returncode == EXIT_FAILED, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if line.startswith("syncd once: ")]
    assert f"syncd once: source activeants failed: AuthError: {REFUSED}" in lines
    # Both channels sell Active Ants stock: each says why it pushed nothing.
    for channel in ("ankorstore", "fabric"):
        [blocked] = [line for line in lines if line.startswith(f"syncd once: {channel}: blocked:")]
        assert "activeants (never read successfully: AuthError: " in blocked
        assert REFUSED in blocked
    assert WRONG_PASSWORD not in run.stdout + run.stderr
    # Nothing reached the channels.
    assert world.ankorstore.counters.write_requests == 0
    assert sum(world.fabric.counters.snapshot()["writes"].values()) == 0
    errors = anyio.run(feed_errors, tmp_path / "ledger.db")
    assert REFUSED in (errors["activeants"] or "")

    as_json = run_once(config, "--json")

    assert as_json.returncode == EXIT_FAILED
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert report["exit_status"] == EXIT_FAILED
    assert report["sources"]["activeants"]["failing"] is True
    assert REFUSED in report["sources"]["activeants"]["failures"][-1]
    assert any(REFUSED in line for line in report["failures"])


def test_a_channel_whose_writes_fail_fails_the_run_and_a_clean_run_exits_0(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config = sandbox_config(world, tmp_path)
    # 501: fabric will never do that -- not retried, so every write fails at once.
    world.faults["fabric"].arm("status", count=-1, methods={"PATCH"}, status=501)

    failed = run_once(config, "--json")

    assert failed.returncode == EXIT_FAILED, failed.stderr[-3000:]
    report = json.loads(failed.stdout)
    fabric = report["channels"]["fabric"]
    assert fabric["failed"] > 0
    assert fabric["acknowledged"] == 0
    assert any(line.startswith("fabric: ") and "failed" in line for line in report["failures"])
    # Ankorstore was pushed all the same; only fabric failed.
    assert report["channels"]["ankorstore"]["acknowledged"] > 0
    assert report["channels"]["ankorstore"]["left"] == 0

    world.faults["fabric"].clear()
    clean = run_once(config)

    assert clean.returncode == EXIT_OK, clean.stderr[-3000:]
    assert "fabric: " in clean.stdout
    assert "syncd once: " not in clean.stderr
    # stderr is a pipe here: no progress line, no terminal control codes.
    assert "\x1b[" not in clean.stderr + failed.stderr
