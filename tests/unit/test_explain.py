"""`syncd explain`: every published number traced back to ledger rows."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from syncd.engine import Engine, FeedInfo
from syncd.explain import (
    ExplainError,
    UnknownSku,
    bundle_components,
    cli_explain,
    explain_sku,
    open_read_only,
)
from syncd.explain_render import render_explain
from syncd.ledger.store import Ledger
from syncd.model import (
    Bundle,
    Catalog,
    ChannelRule,
    OrderObservation,
    SnapshotDraft,
    StockStatus,
    Variant,
)
from syncd.safety import SafetyPolicy
from tests.unit.daemon._support import T0, FakeChannel

pytestmark = pytest.mark.anyio


async def published_world(path: Path) -> None:
    """S00 = 10, S01 = 10 with 3 reserved by order ORD-7; bundle B1 = 2 x S00 + 1 x S01."""
    catalog = Catalog(
        variants={"S00": Variant("S00"), "S01": Variant("S01"), "B1": Variant("B1")},
        bundles={"B1": Bundle("B1", {"S00": 2, "S01": 1})},
    )
    channel = FakeChannel("fabric")
    async with await Ledger.open(path) as ledger:
        await ledger.record_snapshot(
            SnapshotDraft(
                source="activeants",
                key="snap-1",
                observed_at=T0,
                location="activeants",
                levels={(StockStatus.AVAILABLE, sku, ""): 10 for sku in ("S00", "S01")},
            )
        )
        await ledger.mark_feed("activeants", success_at=T0)
        await ledger.record_orders(
            "fabric_orders",
            "page-1",
            T0,
            [
                OrderObservation(
                    channel="fabric",
                    order_ref="ORD-7",
                    status="open",
                    observed_at=T0,
                    open_lines={"S01": 3},
                    location="activeants",
                )
            ],
            complete=False,
        )
        engine = Engine(
            ledger,
            catalog,
            [ChannelRule("fabric", ("activeants",), buffer=1, pack_rounding=False)],
            {"fabric": channel},
            policies={"fabric": SafetyPolicy(confirm_increase_after_zero=False)},
            feeds=[FeedInfo("activeants", ("activeants",), stale_after=10**9)],
            now=lambda: T0,
        )
        await engine.recompute(full=True)
        await engine.push_channel("fabric")
    assert channel.shown == {"S00": 9, "S01": 6, "B1": 4}


@pytest.fixture
async def ledger_path(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    await published_world(path)
    return path


@pytest.fixture
async def ledger(ledger_path: Path) -> AsyncIterator[Ledger]:
    opened = await Ledger.open(ledger_path)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_bundle_is_explained_down_to_its_components_orders_and_postings(
    ledger: Ledger,
) -> None:
    reply = await explain_sku(ledger, "B1", channels=["fabric", "ankorstore"], origin="daemon")
    [entry] = reply["channels"]  # ankorstore publishes nothing here
    assert (entry["published"], entry["acknowledged"]) == (4, 4)
    assert entry["limiting_component"] == "S00"
    assert entry["components"] == [
        {"sku": "S00", "per_bundle": 2, "available": 10, "complete": 5},
        {"sku": "S01", "per_bundle": 1, "available": 7, "complete": 7},
    ]
    assert [(s["rule"], s["before"], s["after"]) for s in entry["steps"]] == [
        ("bundle", 0, 5),
        ("buffer", 5, 4),
    ]
    assert entry["inputs"]["S01:reserved:fabric:ORD-7"] == 3
    assert reply["reservations"] == [
        {
            "channel": "fabric",
            "order_ref": "ORD-7",
            "sku": "S01",
            "quantity": 3,
            "location": "activeants",
            "since": reply["reservations"][0]["since"],
        }
    ]
    observed = {(p["sku"], p["source"], p["observed_at"]) for p in reply["postings"]}
    assert ("S00", "activeants", T0.isoformat()) in observed
    assert reply["sources"] == [
        {"feed": "activeants", "last_success": T0.isoformat(), "cursor": None}
    ]


async def test_nothing_known_about_a_sku_is_an_error(ledger: Ledger) -> None:
    with pytest.raises(UnknownSku):
        await explain_sku(ledger, "NOPE", channels=["fabric"], origin="daemon")


async def test_the_rendered_explanation_shows_every_step_and_its_causes(ledger: Ledger) -> None:
    text = render_explain(await explain_sku(ledger, "B1", channels=["fabric"], origin="ledger"))
    assert "SKU B1 (from the ledger file" in text
    assert "fabric: publishes 4 (acknowledged)" in text
    assert "S00: 10 available // 2 = 5 complete bundle(s)  <- limiting" in text
    assert "S01:reserved:fabric:ORD-7" in text
    assert "held by fabric order ORD-7" in text
    assert "buffer" in text
    assert "hold back 1 units" in text
    assert "= 4" in text
    assert "fabric order ORD-7: S01 3 unit(s) from activeants" in text
    assert "activeants: 2026-11-23 09:00:00+0000" in text


def test_bundle_components_are_read_from_the_bundle_step() -> None:
    stored = {
        "steps": [
            {
                "rule": "bundle",
                "before": 0,
                "after": 2,
                "detail": "min(PY 30 // 10 = 3, PZ 10 // 5 = 2), limited by PZ",
            }
        ]
    }
    assert [c["sku"] for c in bundle_components(stored)] == ["PY", "PZ"]
    assert bundle_components({"steps": [{"rule": "pool", "detail": "x"}]}) == []


async def test_the_ledger_file_is_read_without_being_changed(ledger_path: Path) -> None:
    before = hashlib.sha256(ledger_path.read_bytes()).hexdigest()
    ledger = await open_read_only(ledger_path)
    try:
        reply = await explain_sku(ledger, "S01", channels=["fabric"], origin="ledger")
    finally:
        await ledger.close()
    assert reply["channels"][0]["published"] == 6
    assert hashlib.sha256(ledger_path.read_bytes()).hexdigest() == before


async def test_a_missing_or_foreign_ledger_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExplainError, match="no ledger at"):
        await open_read_only(tmp_path / "missing.db")
    other = tmp_path / "other.db"
    await anyio.Path(other).write_bytes(b"")
    with pytest.raises(ExplainError, match="not a ledger this syncd can read"):
        await open_read_only(other)


def write_config(directory: Path, database: Path) -> Path:
    config = directory / "syncd.toml"
    config.write_text(
        f'[daemon]\ndatabase = "{database}"\nstatus_socket = "{directory}/none.sock"\n',
        encoding="utf-8",
    )
    return config


def explain_args(config: Path, sku: str, *, json: bool = False) -> argparse.Namespace:
    return argparse.Namespace(config=str(config), sku=sku, channel=None, json=json)


def test_cli_reads_the_ledger_when_no_daemon_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "ledger.db"
    anyio.run(published_world, database)
    config = write_config(tmp_path, database)
    assert cli_explain(explain_args(config, "S01")) == 0
    out = capsys.readouterr().out
    assert "SKU S01 (from the ledger file" in out
    assert "fabric: publishes 6 (acknowledged)" in out
    assert cli_explain(explain_args(config, "S01", json=True)) == 0
    assert '"published": 6' in capsys.readouterr().out


def test_cli_exit_codes_for_unknown_skus_and_unreadable_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "ledger.db"
    anyio.run(published_world, database)
    config = write_config(tmp_path, database)
    assert cli_explain(explain_args(config, "NOPE")) == 1
    assert "nothing is known about SKU 'NOPE'" in capsys.readouterr().err
    assert cli_explain(explain_args(tmp_path / "absent.toml", "S01")) == 2
    assert "cannot read [daemon] from" in capsys.readouterr().err
