"""A dry run prints exactly the plan a real run then executes.

Both are ``python -m syncd once`` processes against the sandbox, on the same
ledger file and the same simulator state: first ``--dry-run --json`` (which
works on a copy and writes nothing), then the real run with ``--json``,
whose report lists every action it executed. The two lists must be equal,
action for action: the same values in the same batches and order, the same
holds, waits and parks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.sandbox.world import SandboxWorld
from tests.integration._cycle_support import (
    CHANNELS,
    run_once,
    sandbox_config,
    single_skus,
    write_counters,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def world() -> Iterator[SandboxWorld]:
    sandbox = SandboxWorld.create(variants=40, seed=11)
    with sandbox.threaded():
        yield sandbox


def planned(config: Path, *args: str) -> dict[str, list[dict[str, Any]]]:
    result = run_once(config, "--dry-run", "--json", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    plan: dict[str, list[dict[str, Any]]] = json.loads(result.stdout)["plan"]
    return plan


def executed(config: Path, *args: str) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    result = run_once(config, "--json", *args)
    report = json.loads(result.stdout)
    return result.returncode, {c: report["channels"][c]["actions"] for c in CHANNELS}


def kinds(actions: dict[str, list[dict[str, Any]]]) -> set[str]:
    return {action["action"] for channel in actions.values() for action in channel}


def test_the_printed_plan_is_what_the_real_run_executes(
    world: SandboxWorld, tmp_path: Path
) -> None:
    config = sandbox_config(world, tmp_path)

    # The first publication: every value is new to this ledger.
    plan = planned(config)
    counters = write_counters(world)
    status, actions = executed(config)
    assert status == 0
    assert actions == plan
    assert "send" in kinds(plan)
    assert write_counters(world) != counters

    # Stock moves both ways, one product to zero.
    stocked = [
        sku
        for sku in single_skus(world, "fabric", count=20)
        if world.activeants.product(sku).available > 3
    ]
    singles = stocked[:6]
    assert len(singles) == 6
    for step, sku in enumerate(singles):
        level = world.activeants.product(sku).available
        world.activeants.set_stock(sku, 0 if step == 0 else level + 5 if step % 2 else level - 3)
    plan = planned(config)
    status, actions = executed(config)
    assert status == 0
    assert actions == plan
    sent = {
        u["sku"] for c in plan.values() for a in c if a["action"] == "send" for u in a["updates"]
    }
    assert set(singles) <= sent
    rank = {"to_zero": 0, "decrease": 1, "unknown": 2, "increase": 3}
    for channel in plan.values():
        moves = [rank[u["move"]] for a in channel if a["action"] == "send" for u in a["updates"]]
        assert moves == sorted(moves)  # decreases first

    # A bad read zeroes the warehouse: the plan is a hold, and so is the run.
    for variant in world.catalog.variants:
        if variant.at_activeants:
            world.activeants.set_stock(variant.sku, 0)
    sandbox_config(world, tmp_path, relaxed=False)  # the share limits apply again
    plan = planned(config)
    counters = write_counters(world)
    status, actions = executed(config)
    assert status == 1
    assert actions == plan
    assert kinds(plan) == {"hold"}
    assert write_counters(world) == counters

    # Confirmed, the run records the hold and sends what it held: the dry run said so.
    plan = planned(config, "--confirm")
    status, actions = executed(config, "--confirm")
    assert status == 0
    assert actions == plan
    assert [a["action"] for a in plan["fabric"]][:2] == ["hold", "send"]
    assert write_counters(world) != counters
