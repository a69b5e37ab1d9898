"""Reading a channel back: acknowledgements are corrected from what the channel holds."""

from __future__ import annotations

import pytest

from syncd.ledger.readback import Correction
from syncd.ledger.store import Ledger
from syncd.readback import ReadBack
from tests.unit.engine.test_engine import Clock, FakeChannel, make_engine, snapshot, stocked

pytestmark = pytest.mark.anyio


async def published(ledger: Ledger) -> tuple[FakeChannel, ReadBack, ReadBack]:
    """Every SKU published at 10 and acknowledged; read-backs for start and periodic use."""
    channel, clock = FakeChannel(), Clock()
    engine = make_engine(ledger, channel, clock)
    await snapshot(ledger, stocked(), "s1")
    await engine.recompute()
    assert (await engine.push_channel("ankorstore")).settled
    return (
        channel,
        ReadBack(engine, "ankorstore", policy="report", now=clock),
        ReadBack(engine, "ankorstore", policy="protect", now=clock),
    )


async def row(ledger: Ledger, sku: str) -> tuple[int, int | None, str]:
    (found,) = [r for r in await ledger.outbox_rows("ankorstore") if r.sku == sku]
    return found.desired, found.acknowledged, found.status


async def test_at_start_every_difference_is_corrected_whatever_the_policy(ledger: Ledger) -> None:
    channel, at_start, _ = await published(ledger)
    # The ledger's acknowledgements are older than what the channel holds (a
    # restored backup, say): higher, lower, and one the channel no longer lists.
    channel.shown["S01"] = 14
    channel.shown["S02"] = 3
    del channel.shown["S03"]
    report = await at_start.run(startup=True)
    assert sorted(report.corrected) == ["S01", "S02", "S03"]
    assert await row(ledger, "S01") == (10, 14, "pending")
    assert await row(ledger, "S02") == (10, 3, "pending")
    assert await row(ledger, "S03") == (10, None, "pending")
    assert await row(ledger, "S04") == (10, 10, "acknowledged")
    # ... and the ordinary push writes syncd's value back, decreases first.
    engine = at_start._engine
    cycle = await engine.push_channel("ankorstore")
    assert cycle.settled
    sent = [u.sku for u in channel.batches[-1]]
    assert sorted(sent) == ["S01", "S02", "S03"]
    assert sent[0] == "S01"  # the decrease first, the raise of S02 last
    assert sent[-1] == "S02"
    assert (channel.shown["S01"], channel.shown["S02"], channel.shown["S03"]) == (10, 10, 10)


async def test_protect_corrects_a_higher_number_at_once_and_reports_a_lower_one(
    ledger: Ledger,
) -> None:
    channel, _, periodic = await published(ledger)
    channel.shown["S01"] = 14  # raised by hand on the channel: could oversell
    channel.shown["S02"] = 3  # lowered: an order syncd may not have read yet
    report = await periodic.run()
    assert report.corrected == ["S01"]
    assert [(d.sku, d.shown) for d in report.standing] == [("S02", 3)]
    assert await row(ledger, "S01") == (10, 14, "pending")
    assert await row(ledger, "S02") == (10, 10, "acknowledged")


async def test_report_only_reports(ledger: Ledger) -> None:
    channel, report_only, _ = await published(ledger)
    channel.shown["S01"] = 14
    report = await report_only.run()
    assert report.corrected == []
    assert [(d.sku, d.shown) for d in report.standing] == [("S01", 14)]
    assert await row(ledger, "S01") == (10, 10, "acknowledged")


async def test_a_correction_never_overrides_a_newer_value_or_a_send_in_flight(
    ledger: Ledger,
) -> None:
    await published(ledger)
    (s01,) = [r for r in await ledger.outbox_rows("ankorstore") if r.sku == "S01"]
    # Compared at seq 1 with acknowledged 10 -- but the row moved on meanwhile.
    stale = Correction("S01", s01.seq - 1, 10, 14)
    wrong_ack = Correction("S01", s01.seq, 9, 14)
    assert await ledger.correct_acknowledged("ankorstore", [stale, wrong_ack], s01.updated_at) == []
    await ledger.mark_sent("ankorstore", [("S01", s01.seq, 10)], None, s01.updated_at)
    current = Correction("S01", s01.seq, 10, 14)
    assert await ledger.correct_acknowledged("ankorstore", [current], s01.updated_at) == []
    assert await ledger.correct_acknowledged(
        "ankorstore", [current], s01.updated_at, include_sent=True
    ) == ["S01"]
