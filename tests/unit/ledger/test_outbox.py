"""Outbox: latest desired absolute value, seq, acknowledgements, parking."""

from __future__ import annotations

import pytest

from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.store import Ledger
from syncd.model import Desired, Explanation, ExplanationStep

from .builders import at

CH = "ankorstore"


def desired(sku: str, quantity: int, channel: str = CH) -> Desired:
    explanation = Explanation(
        channel=channel,
        sku=sku,
        inputs={"activeants/available": quantity + 2},
        steps=(ExplanationStep("buffer", quantity + 2, quantity, "2 held back"),),
        result=quantity,
    )
    return Desired(channel, sku, quantity, explanation)


async def _row(ledger: Ledger, sku: str) -> tuple[int, int | None, int, str]:
    (row,) = [r for r in await ledger.outbox_rows(CH) if r.sku == sku]
    return row.desired, row.acknowledged, row.seq, row.status


@pytest.mark.anyio
async def test_seq_moves_only_when_the_value_changes(ledger: Ledger) -> None:
    assert await ledger.set_desired([desired("A", 5), desired("B", 0)], at(0)) == 2
    assert await ledger.set_desired([desired("A", 5), desired("B", 1)], at(1)) == 1
    assert await _row(ledger, "A") == (5, None, 1, "pending")
    assert await _row(ledger, "B") == (1, None, 2, "pending")
    assert [r.sku for r in await ledger.pending(CH)] == ["A", "B"]
    assert [r.sku for r in await ledger.pending(CH, limit=1)] == ["A"]
    assert await ledger.pending("fabric") == []


@pytest.mark.anyio
async def test_acknowledged_value_is_no_longer_pending(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_sent(CH, [("A", 1, 5)], "req-1", at(1))
    assert await _row(ledger, "A") == (5, None, 1, "sent")
    assert [r.sku for r in await ledger.pending(CH)] == ["A"]  # resent after a crash
    await ledger.mark_acknowledged(CH, [("A", 1, 5)], "req-1", {"status": 200}, at(2))
    assert await _row(ledger, "A") == (5, 5, 1, "acknowledged")
    assert await ledger.pending(CH) == []
    # Same value again: nothing to push.
    assert await ledger.set_desired([desired("A", 5)], at(3)) == 0
    assert await ledger.pending(CH) == []


@pytest.mark.anyio
async def test_reply_for_an_older_seq_is_superseded(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_sent(CH, [("A", 1, 5)], "req-1", at(1))
    await ledger.set_desired([desired("A", 8)], at(2))
    await ledger.mark_acknowledged(CH, [("A", 1, 5)], "req-1", None, at(3))
    assert await _row(ledger, "A") == (8, 5, 2, "pending")
    assert [(r.seq, r.quantity, r.status) for r in await ledger.push_log(CH, "A")] == [
        (1, 5, "superseded"),
        (1, 5, "sent"),
    ]


@pytest.mark.anyio
async def test_late_ack_of_a_value_since_reverted_is_not_lost(ledger: Ledger) -> None:
    """5 acknowledged, 7 sent, desired back to 5, then 7 acknowledged: the
    channel shows 7, so 5 must still be pushed."""
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_acknowledged(CH, [("A", 1, 5)], "r1", None, at(1))
    await ledger.set_desired([desired("A", 7)], at(2))
    await ledger.mark_sent(CH, [("A", 2, 7)], "r2", at(3))
    await ledger.set_desired([desired("A", 5)], at(4))
    await ledger.mark_acknowledged(CH, [("A", 2, 7)], "r2", None, at(5))
    assert await _row(ledger, "A") == (5, 7, 3, "pending")
    assert [(r.sku, r.seq, r.desired) for r in await ledger.pending(CH)] == [("A", 3, 5)]
    # An even older reply arriving now does not move acknowledged back.
    await ledger.mark_acknowledged(CH, [("A", 1, 5)], "r1", None, at(6))
    assert (await _row(ledger, "A"))[1] == 7


@pytest.mark.anyio
async def test_impossible_replies_are_refused(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    with pytest.raises(InvalidObservationError, match="never issued"):
        await ledger.mark_acknowledged(CH, [("A", 2, 5)], "r", None, at(1))
    with pytest.raises(InvalidObservationError, match="carries 5"):
        await ledger.mark_sent(CH, [("A", 1, 6)], "r", at(1))
    with pytest.raises(InvalidObservationError, match="no outbox row"):
        await ledger.mark_sent(CH, [("Z", 1, 6)], "r", at(1))
    assert await ledger.push_log() == []


@pytest.mark.anyio
async def test_negative_desired_value_is_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidObservationError, match="never pushed"):
        await ledger.set_desired([desired("A", 2), desired("B", -1)], at(0))
    assert await ledger.outbox_rows() == []


@pytest.mark.anyio
async def test_parked_item_waits_until_unparked(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5), desired("B", 2)], at(0))
    assert await ledger.mark_parked(CH, "A", 1, "422 unknown variant", at(1))
    assert [r.sku for r in await ledger.pending(CH)] == ["B"]
    (row,) = [r for r in await ledger.outbox_rows(CH) if r.sku == "A"]
    assert (row.status, row.reason) == ("parked", "422 unknown variant")
    await ledger.set_desired([desired("A", 6)], at(2))
    assert [r.sku for r in await ledger.pending(CH)] == ["B"]
    assert await ledger.unpark(CH, "A")
    assert not await ledger.unpark(CH, "A")
    assert {r.sku for r in await ledger.pending(CH)} == {"A", "B"}


@pytest.mark.anyio
async def test_refusal_of_a_superseded_value_does_not_park(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_sent(CH, [("A", 1, 5)], "r1", at(1))
    await ledger.set_desired([desired("A", 4)], at(2))
    assert not await ledger.mark_parked(CH, "A", 1, "422 too many", at(3))
    assert await _row(ledger, "A") == (4, None, 2, "pending")
    assert (await ledger.push_log(CH, "A", limit=1))[0].status == "superseded"


@pytest.mark.anyio
async def test_failed_push_stays_pending(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_sent(CH, [("A", 1, 5)], "r1", at(1))
    await ledger.mark_failed(CH, [("A", 1, 5)], "r1", "503 after retries", at(2))
    assert await _row(ledger, "A") == (5, None, 1, "failed")
    assert [r.sku for r in await ledger.pending(CH)] == ["A"]


@pytest.mark.anyio
async def test_every_push_carries_the_explanation_of_its_value(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_sent(CH, [("A", 1, 5)], "r1", at(1))
    await ledger.set_desired([desired("A", 3)], at(2))
    (sent,) = [e for e in await ledger.push_log(CH, "A") if e.status == "sent"]
    assert sent.explanation is not None
    assert sent.explanation["result"] == 5
    assert sent.explanation["steps"][0]["rule"] == "buffer"
    current = await ledger.explanation(CH, "A")
    assert current is not None
    assert current["result"] == 3
    assert await ledger.explanation(CH, "nope") is None


@pytest.mark.anyio
async def test_unpark_items_logs_who_asked_and_leaves_other_rows_alone(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5), desired("B", 2), desired("C", 3)], at(0))
    await ledger.mark_sent(CH, [("C", 1, 3)], "r1", at(1))
    await ledger.mark_acknowledged(CH, [("C", 1, 3)], "r1", "ok", at(1))
    assert await ledger.mark_parked(CH, "A", 1, "422 unknown variant", at(2))
    # C was acknowledged, then refused on a resend: once unparked it is in sync again.
    assert await ledger.mark_parked(CH, "C", 1, "always in stock", at(2))
    named = await ledger.unpark_items(CH, ["A", "B"], at(3), "unparked by ops: variant mapped")
    assert named == ["A"]  # B was never parked
    assert await _row(ledger, "A") == (5, None, 1, "pending")
    assert await _row(ledger, "C") == (3, 3, 1, "parked")
    assert await ledger.unpark_items(CH, None, at(4), "unparked by ops") == ["C"]
    assert await _row(ledger, "C") == (3, 3, 1, "acknowledged")
    assert await ledger.unpark_items(CH, None, at(5), "again") == []
    [entry, *_] = await ledger.push_log(CH, "A")
    assert (entry.status, entry.seq, entry.quantity, entry.reply) == (
        "unparked",
        1,
        5,
        "unparked by ops: variant mapped",
    )
    assert entry.at == at(3)


@pytest.mark.anyio
async def test_counts_and_parked_rows_match_the_rows_themselves(ledger: Ledger) -> None:
    await ledger.set_desired([desired(s, 3) for s in "ABCDE"] + [desired("A", 1, "fabric")], at(0))
    await ledger.mark_sent(CH, [("B", 1, 3)], "r1", at(1))
    await ledger.mark_acknowledged(CH, [("B", 1, 3)], "r1", "ok", at(1))
    for sku in ("D", "C"):
        assert await ledger.mark_parked(CH, sku, 1, "422", at(2))
    assert await ledger.outbox_counts(CH) == (2, 2)  # A and E pending; C and D parked
    assert [r.sku for r in await ledger.parked_rows(CH)] == ["C", "D"]
    assert [r.sku for r in await ledger.parked_rows(CH, limit=1)] == ["C"]
    rows = await ledger.outbox_rows(CH)
    assert len(await ledger.pending(CH)) == 2
    assert sum(r.status == "parked" for r in rows) == 2
    assert await ledger.outbox_counts("fabric") == (1, 0)
    assert await ledger.parked_rows("fabric") == []
