"""Outbox: a value sent but never confirmed may be what the channel shows.

Found by the deterministic simulation (tests/sim): 5 acknowledged, 4 sent and
applied by the channel but its reply lost, then the desired value back to 5.
The row must not claim the channel shows 5.
"""

from __future__ import annotations

import pytest

from syncd.ledger.readback import Correction
from syncd.ledger.store import Ledger
from syncd.model import Desired, Explanation

from .builders import at

CH = "fabric"


def desired(sku: str, quantity: int) -> Desired:
    explanation = Explanation(channel=CH, sku=sku, inputs={}, steps=(), result=quantity)
    return Desired(CH, sku, quantity, explanation)


async def _acknowledge_five(ledger: Ledger) -> None:
    await ledger.set_desired([desired("A", 5)], at(0))
    await ledger.mark_sent(CH, [("A", 1, 5)], "r1", at(1))
    await ledger.mark_acknowledged(CH, [("A", 1, 5)], "r1", None, at(2))


@pytest.mark.anyio
async def test_value_back_to_acknowledged_after_a_failed_send_is_pushed_again(
    ledger: Ledger,
) -> None:
    await _acknowledge_five(ledger)
    await ledger.set_desired([desired("A", 4)], at(3))
    await ledger.mark_sent(CH, [("A", 2, 4)], "r2", at(4))
    await ledger.mark_failed(CH, [("A", 2, 4)], "r2", "ReadError", at(5))
    await ledger.set_desired([desired("A", 5)], at(6))
    (row,) = await ledger.pending(CH)
    assert (row.desired, row.acknowledged, row.seq, row.status) == (5, None, 3, "pending")


@pytest.mark.anyio
async def test_value_back_to_acknowledged_after_a_crash_mid_send_is_pushed_again(
    ledger: Ledger,
) -> None:
    await _acknowledge_five(ledger)
    await ledger.set_desired([desired("A", 4)], at(3))
    await ledger.mark_sent(CH, [("A", 2, 4)], "r2", at(4))
    # The process died here: no reply was ever recorded.
    await ledger.set_desired([desired("A", 5)], at(6))
    assert [(r.desired, r.acknowledged) for r in await ledger.pending(CH)] == [(5, None)]
    await ledger.mark_sent(CH, [("A", 3, 5)], "r3", at(7))
    await ledger.mark_acknowledged(CH, [("A", 3, 5)], "r3", None, at(8))
    assert await ledger.pending(CH) == []
    # Confirmed now: another round trip back to 5 is a plain "nothing to do".
    await ledger.set_desired([desired("A", 6)], at(9))
    await ledger.set_desired([desired("A", 5)], at(10))
    assert await ledger.pending(CH) == []


@pytest.mark.anyio
async def test_value_never_sent_in_between_stays_acknowledged(ledger: Ledger) -> None:
    await _acknowledge_five(ledger)
    await ledger.set_desired([desired("A", 4)], at(3))
    await ledger.set_desired([desired("A", 5)], at(4))
    assert await ledger.pending(CH) == []
    (row,) = await ledger.outbox_rows(CH)
    assert (row.acknowledged, row.status) == (5, "acknowledged")


@pytest.mark.anyio
async def test_resend_after_a_read_back_correction_then_a_crash_is_pushed_again(
    ledger: Ledger,
) -> None:
    """Found by the outbox life property test (tests/unit/ledger/test_outbox_life.py).

    5 acknowledged; someone sets the channel to 9 and a read-back caches 9; 5 is
    sent again under the same seq and syncd dies before the reply; the value
    computed next is 9. The resend may have landed, so 9 is not in place.
    """
    await _acknowledge_five(ledger)
    assert await ledger.correct_acknowledged(CH, [Correction("A", 1, 5, 9)], at(3)) == ["A"]
    await ledger.mark_sent(CH, [("A", 1, 5)], "r2", at(4))
    # The process died here: no reply was ever recorded.
    await ledger.set_desired([desired("A", 9)], at(5))
    (row,) = await ledger.pending(CH)
    assert (row.desired, row.acknowledged, row.seq, row.status) == (9, None, 2, "pending")


@pytest.mark.anyio
async def test_parked_value_back_to_acknowledged_after_a_lost_send_is_pushed_once_unparked(
    ledger: Ledger,
) -> None:
    """5 acknowledged, 4 sent (reply lost, maybe applied), 4 refused and parked, back to 5:
    once unparked, 5 is pushed: the channel may show 4."""
    await _acknowledge_five(ledger)
    await ledger.set_desired([desired("A", 4)], at(3))
    await ledger.mark_sent(CH, [("A", 2, 4)], "r2", at(4))
    await ledger.mark_failed(CH, [("A", 2, 4)], "r2", "ReadTimeout", at(5))
    await ledger.mark_sent(CH, [("A", 2, 4)], "r3", at(6))
    assert await ledger.mark_parked(CH, "A", 2, "422", at(7))
    await ledger.set_desired([desired("A", 5)], at(8))
    assert await ledger.pending(CH) == []  # parked: nothing goes out
    assert await ledger.unpark_items(CH, ["A"], at(9), "unparked by ops") == ["A"]
    (row,) = await ledger.pending(CH)
    assert (row.desired, row.acknowledged, row.seq, row.status) == (5, None, 3, "pending")
