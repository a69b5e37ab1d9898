"""The push queue read in SQL: planner order, interlock figures, through the index.

The SQL is checked against the Python definitions it serves: the planner's
order (`syncd.engine.plan.order_key`, classes from `syncd.channels.updates`)
and the interlock's figures (`syncd.safety.is_change`, `is_zeroing`), on
random outbox contents written straight into a real ledger file.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.channels.updates import Move, classify
from syncd.engine.plan import order_key
from syncd.ledger.codec import encode_time
from syncd.ledger.outbox_life import OutboxStatus, PushClass, push_class
from syncd.ledger.outbox_queue import (
    FIGURES_SQL,
    PendingFigures,
    figures_params,
    next_pending_query,
)
from syncd.ledger.store import Ledger
from syncd.model import OutboxRow
from syncd.safety import is_change, is_zeroing

from .builders import T0

CHANNELS = ("ankorstore", "fabric")


@st.composite
def _rows(draw: st.DrawFn) -> tuple[OutboxRow, ...]:
    rows = []
    for channel in CHANNELS:
        skus = draw(st.lists(st.sampled_from("ABCDEFGHIJKLMNOP"), unique=True, max_size=14))
        for sku in skus:
            desired = draw(st.integers(0, 4))
            rows.append(
                OutboxRow(
                    channel=channel,
                    sku=sku,
                    desired=desired,
                    acknowledged=draw(st.none() | st.integers(0, 4)),
                    seq=draw(st.integers(1, 3)),
                    status=draw(st.sampled_from(OutboxStatus)),
                    # Few distinct times, so ties fall back to the SKU.
                    updated_at=T0 + timedelta(seconds=draw(st.integers(0, 4))),
                    reason=draw(st.none() | st.just("422")),
                    own_reserved=draw(st.integers(0, desired)),
                )
            )
    return tuple(rows)


def _write(path: Path, rows: tuple[OutboxRow, ...]) -> None:
    with sqlite3.connect(path) as raw:
        raw.execute("DELETE FROM outbox")
        raw.executemany(
            "INSERT INTO outbox (channel, sku, desired, acknowledged, seq, status, reason,"
            " updated_at, own_reserved) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.channel,
                    r.sku,
                    r.desired,
                    r.acknowledged,
                    r.seq,
                    str(r.status),
                    r.reason,
                    encode_time(r.updated_at),
                    r.own_reserved,
                )
                for r in rows
            ],
        )


def _is_pending(row: OutboxRow) -> bool:
    return row.status != "parked" and row.acknowledged != row.desired


def _planner_order(rows: tuple[OutboxRow, ...], channel: str) -> list[OutboxRow]:
    """The order the brief asks for, from the planner's own classes."""
    pending = [r for r in rows if r.channel == channel and _is_pending(r)]
    return sorted(pending, key=order_key)


@pytest.fixture(scope="module")
def queue_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("queue") / "ledger.sqlite"

    async def create() -> None:
        async with await Ledger.open(path):
            pass

    anyio.run(create)
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=_rows(),
    limit=st.none() | st.integers(0, 30),
    increases=st.booleans(),
    skip=st.sets(st.sampled_from("ABCDEFGHIJKLMNOP"), max_size=4),
)
def test_next_pending_is_the_planner_order_cut_at_the_limit(
    queue_file: Path,
    rows: tuple[OutboxRow, ...],
    limit: int | None,
    increases: bool,
    skip: set[str],
) -> None:
    _write(queue_file, rows)

    async def read() -> dict[str, list[OutboxRow]]:
        async with await Ledger.open(queue_file) as ledger:
            return {
                channel: await ledger.next_pending(channel, limit, increases=increases, skip=skip)
                for channel in CHANNELS
            }

    got = anyio.run(read)
    for channel in CHANNELS:
        expected = [
            r
            for r in _planner_order(rows, channel)
            if r.sku not in skip and (increases or classify(r) != Move.INCREASE)
        ][:limit]
        assert got[channel] == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows(), until=st.none() | st.integers(-1, 5))
def test_pending_figures_equal_what_the_interlock_counts(
    queue_file: Path, rows: tuple[OutboxRow, ...], until: int | None
) -> None:
    _write(queue_file, rows)
    confirmed_until = None if until is None else T0 + timedelta(seconds=until)

    async def read() -> dict[str, PendingFigures]:
        async with await Ledger.open(queue_file) as ledger:
            return {
                channel: await ledger.pending_figures(channel, confirmed_until=confirmed_until)
                for channel in CHANNELS
            }

    got = anyio.run(read)
    for channel in CHANNELS:
        pending = [r for r in rows if r.channel == channel and _is_pending(r)]
        unconfirmed = [
            r for r in pending if confirmed_until is None or r.updated_at > confirmed_until
        ]
        assert got[channel] == PendingFigures(
            pending=len(pending),
            unconfirmed=len(unconfirmed),
            changes=sum(1 for r in unconfirmed if is_change(r)),
            zeroes=sum(1 for r in unconfirmed if is_zeroing(r)),
        )


def test_push_class_is_the_planners_move() -> None:
    assert {c.name: c.value for c in PushClass} == {m.name: m.value for m in Move}
    for desired in range(4):
        for acknowledged in (None, 0, 1, 2, 3):
            row = OutboxRow("c", "A", desired, acknowledged, 1, "pending", T0)
            assert int(push_class(desired, acknowledged)) == int(classify(row))


def _plan(path: Path, sql: str, params: object) -> list[str]:
    with sqlite3.connect(path) as raw:
        return [str(r[3]) for r in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("increases", "skip"), [(True, ()), (False, ()), (True, ("A", "B")), (False, ("A",))]
)
def test_next_pending_reads_the_index_in_order_without_scanning(
    queue_file: Path, increases: bool, skip: tuple[str, ...]
) -> None:
    sql, params = next_pending_query("ankorstore", 500, increases=increases, skip=skip)
    plan = _plan(queue_file, sql, params)
    assert any(
        step.startswith("SEARCH outbox USING INDEX outbox_queue (channel=?") for step in plan
    )
    assert not any("SCAN outbox" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan  # no sort: the index is the order


@pytest.mark.parametrize("until", [None, T0])
def test_pending_figures_are_counted_off_the_index_alone(
    queue_file: Path, until: datetime | None
) -> None:
    plan = _plan(queue_file, FIGURES_SQL, figures_params("ankorstore", until))
    assert plan == ["SEARCH outbox USING COVERING INDEX outbox_queue (channel=?)"], plan


@pytest.mark.anyio
async def test_next_pending_refuses_a_negative_limit(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="limit"):
        await ledger.next_pending("ankorstore", -1)
    assert await ledger.next_pending("ankorstore", 0) == []
