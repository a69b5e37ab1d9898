"""`syncd once` as a separate process against the sandbox: exit status, reasons, confirm, dry run.

The simulators run in threads of the test process; syncd is
``python -m syncd once --config <sandbox config>`` exactly as cron or an
operator runs it. Every assertion reads the simulators' own state or the
ledger file the run left behind.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from syncd.ledger.store import Ledger
from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import (
    CHANNELS,
    fabric_inventory,
    matches_outbox,
    outbox,
    run_once,
    sandbox_config,
    shown,
    single_skus,
    write_counters,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=40, seed=5)
    with sandbox.threaded():
        yield sandbox


def listing(directory: Path) -> dict[str, bytes]:
    """Every file in the config directory (ledger, its companions) and its bytes."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


async def held_cycles(database: Path) -> dict[str, int]:
    async with await Ledger.open(database) as ledger:
        return {c: len(await ledger.held_cycles(c)) for c in CHANNELS}


def add_ghost_variant(catalog_csv: Path) -> str:
    """A catalog row whose Ankorstore variant id Ankorstore does not know."""
    with catalog_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    ghost = dict.fromkeys(header, "")
    ghost |= {
        "sku": "GHOST-1",
        "ankorstore_variant_id": str(uuid.uuid4()),
        "ankorstore_sku": "GHOST-1",
        "pack_size": "1",
        "channels": "ankorstore",
    }
    with catalog_csv.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([*rows, [ghost[c] for c in header]])
    return "GHOST-1"


def parse_table(stdout: str) -> dict[tuple[str, str], tuple[int | None, int]]:
    """(channel, sku) -> (now, would be) from the dry run's table."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["channel", "sku", "now", "would", "be", "change"]
    found: dict[tuple[str, str], tuple[int | None, int]] = {}
    for line in lines[1:]:
        if line.startswith("dry run:"):
            continue
        channel, sku, now, would, _change = line.split()
        found[(channel, sku)] = (None if now == "-" else int(now), int(would))
    return found


def test_exit_status_is_0_when_all_acknowledged_and_1_with_the_reason_when_parked(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config = sandbox_config(world, tmp_path)
    database = tmp_path / "ledger.db"

    done = run_once(config, "--json")

    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["problems"] == []
    rows = anyio.run(outbox, database)
    for channel in CHANNELS:
        assert sorted(rows[channel]) == sorted(world.catalog.published(channel))
        assert {r.status for r in rows[channel].values()} == {"acknowledged"}
        assert report["channels"][channel]["acknowledged"] == len(rows[channel])
    assert matches_outbox(world, rows) == {}

    # A variant Ankorstore does not know, and one operation it refuses.
    ghost = add_ghost_variant(tmp_path / "catalog.csv")
    for sku in single_skus(world, "ankorstore", count=6, minimum=1):
        world.activeants.move_stock(sku, 7)
    world.faults["ankorstore"].arm("invalid_operation", index=3)

    parked_run = run_once(config)

    assert parked_run.returncode == 1
    rows = anyio.run(outbox, database)
    parked = {sku: row.reason for sku, row in rows["ankorstore"].items() if row.status == "parked"}
    assert ghost in parked
    [refused] = [sku for sku in parked if sku != ghost]
    assert "/atomic:operations/3/" in (parked[refused] or "")
    for sku, reason in parked.items():
        assert f"syncd once: ankorstore: {sku} parked: {reason}" in parked_run.stderr
    assert "ankorstore: 2 variant(s) parked" in parked_run.stderr
    # Everything else landed: the channels show exactly the outbox.
    landed = {c: {s: r for s, r in rows[c].items() if s not in parked} for c in CHANNELS}
    assert matches_outbox(world, landed) == {}
    assert all(r.status == "acknowledged" for c in CHANNELS for r in landed[c].values())

    # A later run still fails: a parked variant is not acknowledged.
    counters = write_counters(world)
    again = run_once(config)
    assert again.returncode == 1
    assert f"syncd once: ankorstore: {refused} parked:" in again.stderr
    assert write_counters(world) == counters


def test_dry_run_writes_nothing_and_a_held_mass_zero_waits_for_confirmation(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config = sandbox_config(world, tmp_path, relaxed=False)
    database = tmp_path / "ledger.db"
    files = listing(tmp_path)
    before = shown(world)

    table = run_once(config, "--dry-run", "--confirm")

    assert table.returncode == 0, table.stderr[-3000:]
    assert write_counters(world) == dict.fromkeys(write_counters(world), 0)
    assert listing(tmp_path) == files  # no ledger, no companion files
    diff = parse_table(table.stdout)
    assert diff
    for (channel, sku), (now, _) in diff.items():
        assert now == before[channel][sku]
    assert "nothing was written" in table.stdout
    # The first publication would zero too many variants: the dry run says so.
    assert "dry run: fabric: would be held until confirmed: would set" in table.stdout

    pushed = run_once(config, "--confirm")
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    rows = anyio.run(outbox, database)
    for channel in CHANNELS:
        for sku, row in rows[channel].items():
            # What the dry run said it would publish is what the real run published.
            assert row.desired == diff.get((channel, sku), (None, before[channel][sku]))[1]

    # Stock moves; a dry run shows exactly that, against the live ledger, and writes nothing.
    moved = {
        sku: world.activeants.product(sku).available + 13
        for sku in single_skus(world, "fabric", count=3)
    }
    for sku, level in moved.items():
        world.activeants.set_stock(sku, level)
    files, counters, before = listing(tmp_path), write_counters(world), shown(world)

    as_json = run_once(config, "--dry-run", "--json")

    assert as_json.returncode == 0, as_json.stderr[-3000:]
    document = json.loads(as_json.stdout)
    assert document["dry_run"] is True
    changes = {(c["channel"], c["sku"]): c for c in document["changes"]}
    for sku, level in moved.items():
        assert changes[("fabric", sku)]["desired"] == level  # fabric publishes Active Ants'
    for change in changes.values():
        assert change["live"] == before[change["channel"]][change["sku"]]
    assert write_counters(world) == counters
    assert listing(tmp_path) == files  # the ledger's bytes, and no -wal/-shm beside it
    assert shown(world) == before

    # A bad read zeroes most of the warehouse, minutes after a confirmed cycle.
    for variant in world.catalog.variants:
        if variant.at_activeants:
            world.activeants.set_stock(variant.sku, 0)

    held = run_once(config)

    assert held.returncode == 1
    for channel in CHANNELS:
        [line] = [x for x in held.stderr.splitlines() if x.startswith(f"syncd once: {channel}:")]
        assert "cycle held" in line
        assert "variants to zero (limit 20%)" in line
        assert "--confirm" in line
    assert write_counters(world) == counters  # nothing was written
    assert shown(world) == before
    assert anyio.run(held_cycles, database) == {"ankorstore": 1, "fabric": 1}

    confirmed = run_once(config, "--confirm")

    assert confirmed.returncode == 0, confirmed.stderr[-3000:]
    assert matches_outbox(world, anyio.run(outbox, database)) == {}
    assert set(fabric_inventory(world).values()) == {0}  # fabric publishes Active Ants only
    assert anyio.run(held_cycles, database) == {"ankorstore": 0, "fabric": 0}


def test_a_product_back_in_stock_after_zero_is_published_by_the_next_run(
    world: SandboxWorld, tmp_path: Path
) -> None:
    """An increase from zero waits for a second consistent read: `syncd once` makes it.

    Each run is a new process, so the run itself must read the sources twice
    before pushing such an increase; otherwise cron runs would leave the
    product at 0 for ever.
    """
    config = sandbox_config(world, tmp_path)
    [sku] = single_skus(world, "fabric", count=1, minimum=1)
    world.activeants.set_stock(sku, 0)
    first = run_once(config)
    assert first.returncode == 0, first.stderr[-3000:]
    assert fabric_inventory(world)[sku] == 0

    world.activeants.set_stock(sku, 9)
    back = run_once(config)

    assert back.returncode == 0, back.stderr[-3000:]
    assert fabric_inventory(world)[sku] == 9
    assert matches_outbox(world, anyio.run(outbox, tmp_path / "ledger.db")) == {}
