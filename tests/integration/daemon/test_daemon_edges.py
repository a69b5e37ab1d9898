"""The edges, with real processes: duplicates, a damaged ledger, a lost ledger, one writer.

Each test runs ``syncd run`` (and ``syncd once``, ``syncd ledger``) as its
own process against the sandbox simulators served from this process.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.model import StockStatus
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    DaemonProcess,
    daemon,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

PAGE = 4096


def syncd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A syncd command as an operator runs it: its own process."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_refused(config: Path) -> subprocess.CompletedProcess[str]:
    """``syncd run`` expected to refuse at start (it would otherwise run until killed)."""
    return syncd("run", "--config", str(config), timeout=60)


async def _balance(path: Path, sku: str, location: str) -> int:
    async with await Ledger.open(path) as ledger:
        balances = await ledger.balances({sku})
    return sum(
        quantity
        for account, quantity in balances.items()
        if account.location == location and account.status is StockStatus.AVAILABLE
    )


async def _pushed(path: Path, channel: str, sku: str) -> list[tuple[int, str]]:
    """Every value the push log records for ``channel``/``sku``: (quantity, status), oldest first."""
    async with await Ledger.open(path) as ledger:
        entries = await ledger.push_log(channel, sku, limit=1000)
    return [
        (entry.quantity, entry.status) for entry in reversed(entries) if entry.quantity is not None
    ]


# --- 5. duplicates in one read --------------------------------------------------------------


def test_a_product_listed_twice_never_publishes_the_larger_figure() -> None:
    world = SandboxWorld.create(variants=60, seed=13)
    candidates = [
        v
        for v in world.catalog.variants
        if v.at_activeants and not v.at_astral and "fabric" in v.channels
    ]
    assert candidates, "the seeded catalog has a fabric variant stocked at Active Ants only"
    variant = candidates[0]
    low, high = 2, 400
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        database = directory / "ledger.db"
        with daemon(config, directory) as process:
            wait_until(process.answers, what="the daemon")
            wait_until(process.settled, what="the first publication")
            world.activeants.set_stock(variant.sku, 50)
            wait_until(
                lambda: world.fabric.inventory(variant.sku) > low,
                what="fabric above the figure to come",
            )
            wait_until(process.settled, what="settled at 50 units")
            before = world.fabric.inventory(variant.sku)
            # A faulty read lists the product twice, the larger (stale) figure first.
            world.activeants.list_twice(variant.sku, high - low)
            world.activeants.set_stock(variant.sku, low)
            wait_until(
                lambda: world.fabric.inventory(variant.sku) <= low,
                what="fabric lowered to the smaller of the two figures",
            )
            skipped = [
                e
                for e in process.events("source.item_skipped")
                if e.get("source") == "activeants" and "listed twice" in str(e.get("reason"))
            ]
            assert skipped, "the duplicate is reported"
            assert skipped[0]["item"] == variant.activeants_sku
            counters = process.ask({"cmd": "metrics"})["counters"]
            assert counters['skipped{source="activeants"}'] >= 1  # counted, as status reports
            wait_until(process.settled, what="settled")
            assert world.fabric.inventory(variant.sku) <= low
            assert process.stop()[0] == 0
        assert anyio.run(_balance, database, variant.sku, "activeants") == low
        pushed = anyio.run(_pushed, database, "fabric", variant.sku)
        # Nothing derived from the duplicate's 400 units ever went out: no value above
        # what 50 units gave, and the last one from the 2 units that are there.
        assert max(quantity for quantity, _ in pushed) == before
        assert pushed[-1][0] <= low


# --- 6. ledger integrity --------------------------------------------------------------------


@contextmanager
def sandbox_dir(world: SandboxWorld) -> Iterator[tuple[Path, Path]]:
    with world.threaded(), short_dir() as directory:
        yield write_config(world, directory), directory / "ledger.db"


def first_ledger(config: Path, directory: Path) -> None:
    """Run the daemon until it published once, then stop it cleanly (the WAL checkpointed)."""
    with daemon(config, directory) as process:
        wait_until(process.answers, what="the daemon")
        wait_until(process.settled, what="the first publication")
        assert process.stop()[0] == 0


def test_an_edited_balance_is_refused_until_rebuilt_from_the_postings() -> None:
    world = SandboxWorld.create(variants=20, seed=21)
    with sandbox_dir(world) as (config, database):
        first_ledger(config, database.parent)
        with closing(sqlite3.connect(database)) as conn:
            account_id, sku, quantity = conn.execute(
                "SELECT a.id, a.sku, b.quantity FROM accounts a JOIN balances b"
                " ON b.account_id = a.id WHERE a.status = 'available' AND b.quantity > 0"
                " ORDER BY a.id LIMIT 1"
            ).fetchone()
            conn.execute(
                "UPDATE balances SET quantity = ? WHERE account_id = ?",
                (quantity + 500, account_id),
            )
            conn.commit()
        refused = run_refused(config)
        assert refused.returncode == 1
        assert f"the ledger {database} is inconsistent:" in refused.stderr
        assert f"postings sum to {quantity} but the balance is {quantity + 500}" in refused.stderr
        assert f"syncd ledger rebuild-balances --config {config}" in refused.stderr
        once = syncd("once", "--config", str(config))
        assert once.returncode == 1
        assert "is inconsistent" in once.stderr

        rebuilt = syncd("ledger", "rebuild-balances", "--config", str(config))
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "1 balance(s) recomputed from their postings" in rebuilt.stdout
        assert sku in rebuilt.stdout
        assert syncd("ledger", "check", "--config", str(config)).returncode == 0
        with daemon(config, database.parent) as process:
            wait_until(process.answers, what="the daemon on the rebuilt ledger")
            wait_until(process.settled, what="publication after the rebuild")
            assert process.stop()[0] == 0


def test_a_damaged_page_is_refused_with_the_recovery() -> None:
    world = SandboxWorld.create(variants=60, seed=22)
    with sandbox_dir(world) as (config, database):
        first_ledger(config, database.parent)
        assert not database.with_name(database.name + "-wal").exists()
        pages = database.stat().st_size // PAGE
        assert pages > 12
        with database.open("r+b") as raw:  # a torn or bit-rotted stretch of the file
            raw.seek((pages // 2) * PAGE)
            raw.write(os.urandom(4 * PAGE))
        refused = run_refused(config)
        assert refused.returncode == 1
        assert f"the ledger {database} is damaged" in refused.stderr
        assert f"mv {database} {database}.damaged" in refused.stderr
        assert "rebuild-balances" not in refused.stderr
        rebuild = syncd("ledger", "rebuild-balances", "--config", str(config))
        assert rebuild.returncode == 1
        assert "cannot repair a damaged file" in rebuild.stderr

        # The documented recovery: move it aside and start a fresh ledger.
        os.rename(database, database.with_name("ledger.db.damaged"))
        with daemon(config, database.parent) as process:
            wait_until(process.answers, what="the daemon on a fresh ledger")
            wait_until(process.settled, what="publication from a fresh ledger")
            assert process.stop()[0] == 0


@pytest.mark.parametrize("how", ["unlinked", "replaced"])
def test_a_ledger_file_lost_while_running_stops_the_daemon_with_a_failure(how: str) -> None:
    world = SandboxWorld.create(variants=20, seed=23)
    with sandbox_dir(world) as (config, database), daemon(config, database.parent) as process:
        wait_until(process.answers, what="the daemon")
        wait_until(process.settled, what="the first publication")
        if how == "unlinked":
            database.unlink()
        else:
            copy = database.with_name("copy.db")
            copy.write_bytes(database.read_bytes())
            os.replace(copy, database)
        code = process.proc.wait(timeout=30)
        assert code == 1
        [lost] = process.events("daemon.ledger_lost")
        verb = "removed" if how == "unlinked" else "replaced by another file"
        assert lost["reason"] == (f"the ledger file {database} was {verb} while syncd was running")
        assert process.events("daemon.stopped")[-1]["exit_status"] == 1


# --- 7. one writer --------------------------------------------------------------------------


def _fingerprint(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file in the ledger's directory: size and content hash."""
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.is_symlink() and not path.name.endswith(".log"):
            found[path.name] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def _requests(world: SandboxWorld) -> int:
    return sum(
        sum(state.counters.requests.values())
        for state in (world.activeants, world.fabric, world.fashiontrade)
    )


@contextmanager
def paused(process: DaemonProcess) -> Iterator[None]:
    """The daemon stopped in its tracks (it still holds its lock): nothing it writes moves."""
    process.signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.signal(signal.SIGCONT)


def test_once_beside_a_running_daemon_is_refused_and_writes_nothing() -> None:
    world = SandboxWorld.create(variants=20, seed=24)
    with sandbox_dir(world) as (config, database):
        # A second config reaching the same ledger through a symlink.
        alias = database.with_name("alias.db")
        alias.symlink_to(database.name)
        linked = config.with_name("linked.toml")
        linked.write_text(
            config.read_text(encoding="utf-8").replace(
                f'database = "{database}"', f'database = "{alias}"'
            ),
            encoding="utf-8",
        )
        assert f'database = "{alias}"' in linked.read_text(encoding="utf-8")
        with daemon(config, database.parent) as process:
            wait_until(process.answers, what="the daemon")
            wait_until(process.settled, what="the first publication")
            with paused(process):
                before, served = _fingerprint(database.parent), _requests(world)
                for path, named in ((config, database), (linked, alias)):
                    once = syncd("once", "--config", str(path))
                    assert once.returncode == 1
                    assert (
                        f"another syncd is running on {named} (pid {process.pid});"
                        " nothing was read or written"
                    ) in once.stderr
                # A second daemon through the symlink is refused the same way.
                run = run_refused(linked)
                assert run.returncode == 1
                assert f"another syncd is running on {alias} (pid {process.pid})" in run.stderr
                assert _fingerprint(database.parent) == before
                assert _requests(world) == served
                assert not alias.with_name("alias.db.lock").exists()
            assert process.answers()
            assert process.stop()[0] == 0
        # With the daemon gone, the same command runs.
        done = syncd("once", "--config", str(linked))
        assert "another syncd is running" not in done.stderr
