"""A real `syncd run`: acknowledgements are checked against the channels, not trusted.

- A ledger restored from an older backup believes the channels still show
  what they showed then. The start-up read-back finds out, and the first
  cycle writes every difference (here: a channel left *higher* than the
  stock, which would oversell for good).
- A number raised by hand on either channel is corrected with the default
  settings (``drift_policy = "protect"``).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from syncd.config import load_config
from syncd.sandbox.world import SandboxWorld
from tests.integration.daemon._support import (
    DaemonProcess,
    daemon,
    set_channel_keys,
    short_dir,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration

SETTLE_S = 90.0
"""Generous: CI is a loaded 2-core machine; every wait ends as soon as its condition holds."""


def published(process: DaemonProcess, sku: str) -> dict[str, int | None]:
    reply = process.ask({"cmd": "explain", "sku": sku})
    return {entry["channel"]: entry["published"] for entry in reply["channels"]}


def shown(world: SandboxWorld, sku: str) -> dict[str, int | None]:
    """What each channel holds in the field syncd writes."""
    return {
        "ankorstore": world.ankorstore.listing(sku).stock_quantity,
        "fabric": world.fabric.inventory(sku),
    }


def both_channels_show_syncd(world: SandboxWorld, process: DaemonProcess, sku: str) -> bool:
    want = published(process, sku)
    return set(want) == {"ankorstore", "fabric"} and shown(world, sku) == want


def wait_published(world: SandboxWorld, process: DaemonProcess, sku: str) -> dict[str, int | None]:
    """Wait until the daemon answers and both channels show its numbers for ``sku``."""
    wait_until(process.answers, timeout=SETTLE_S, what="the daemon")
    wait_until(
        lambda: both_channels_show_syncd(world, process, sku),
        timeout=SETTLE_S,
        what="the first publication",
    )
    return published(process, sku)


def raised(now: dict[str, int | None], before: dict[str, int | None]) -> bool:
    """Every channel publishes more than the most any channel published before."""
    highest = max((v for v in before.values() if v is not None), default=0)
    return all(v is not None and v > highest for v in now.values())


def backup(database: Path, target: Path) -> None:
    with closing(sqlite3.connect(database)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def candidate(world: SandboxWorld) -> str:
    """A single variant both channels publish, kept only at Active Ants."""
    for variant in world.catalog.variants:
        if {"ankorstore", "fabric"} <= set(variant.channels) and variant.pack_size == 1:
            try:
                world.activeants.product(variant.sku)
            except KeyError:
                continue  # not stocked at Active Ants
            return variant.sku
    raise AssertionError("the sandbox catalog has no variant on both channels")


def test_a_ledger_restored_from_a_backup_converges_on_the_first_cycle() -> None:
    world = SandboxWorld.create(variants=20, seed=13)
    sku = candidate(world)
    world.activeants.set_stock(sku, 8)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        database = Path(load_config(config).daemon.database)
        saved = directory / "backup.db"
        with daemon(config, directory) as process:
            low = wait_published(world, process, sku)
            backup(database, saved)  # the operator's nightly backup
            world.activeants.set_stock(sku, 30)

            # The raise itself, on both channels: any other move of the published
            # number (an order of the sandbox's closing) is not it.
            def raise_shown() -> bool:
                # One reading of syncd's numbers for both checks: read twice, the raise
                # could be computed between them and pass before a channel shows it.
                want = published(process, sku)
                return (
                    set(want) == {"ankorstore", "fabric"}
                    and shown(world, sku) == want
                    and raised(want, low)
                )

            wait_until(raise_shown, timeout=SETTLE_S, what="the raise published")
            high = shown(world, sku)
            code, _ = process.stop()
            assert code == 0
        # While syncd is down the stock falls back, and the ledger is restored from
        # the backup: it believes the channels show the old, low numbers -- which are
        # exactly the numbers syncd computes again. Trusting it would leave the
        # channels at the high numbers for good.
        world.activeants.set_stock(sku, 8)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        backup(saved, database)
        assert shown(world, sku) == high
        with daemon(config, directory) as process:
            wait_until(process.answers, timeout=SETTLE_S, what="the restarted daemon")
            wait_until(
                lambda: shown(world, sku) == low,
                timeout=SETTLE_S,
                what="the channels brought back to the restored ledger's numbers",
            )
            assert process.events("outbox.acknowledgements_corrected")
            code, _ = process.stop()
            assert code == 0


def test_a_number_raised_by_hand_on_either_channel_is_corrected_by_default() -> None:
    world = SandboxWorld.create(variants=20, seed=17)
    sku = candidate(world)
    with world.threaded(), short_dir() as directory:
        config = write_config(world, directory)
        for channel in ("ankorstore", "fabric"):
            set_channel_keys(config, channel, "readback_interval = 1.0\n")
        with daemon(config, directory) as process:
            want = wait_published(world, process, sku)
            before = world.ankorstore.listing(sku).stock_quantity
            assert before is not None
            # Someone adds 40 units by hand on both channels.
            world.ankorstore.set_stock(sku, before + 40)
            world.fabric.submit_inventory(sku, (want["fabric"] or 0) + 40)
            wait_until(
                lambda: shown(world, sku) == want,
                timeout=SETTLE_S,
                what="both hand edits corrected",
            )
            code, _ = process.stop()
            assert code == 0
