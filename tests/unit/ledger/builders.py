"""Small constructors that keep ledger tests readable."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from syncd.model import (
    Account,
    CursorUpdate,
    OrderObservation,
    Posting,
    SnapshotDraft,
    StockStatus,
    TransactionDraft,
    TransactionKind,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
AV = StockStatus.AVAILABLE
VOID = StockStatus.VOID


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def acc(location: str, status: StockStatus, sku: str, lot: str = "") -> Account:
    return Account(location, status, sku, lot)


def transfer(
    source: Account,
    target: Account,
    quantity: int,
    *,
    ids: tuple[str | None, str | None] = (None, None),
    movement: str = "transfer",
) -> tuple[Posting, Posting]:
    return (
        Posting(source, -quantity, movement=movement, external_id=ids[0]),
        Posting(target, quantity, movement=movement, external_id=ids[1]),
    )


def movement(
    key: str,
    *postings: Posting,
    source: str = "astral",
    cursor: CursorUpdate | None = None,
    kind: TransactionKind = TransactionKind.MOVEMENT,
) -> TransactionDraft:
    return TransactionDraft(
        kind=kind,
        source=source,
        key=key,
        observed_at=T0,
        postings=tuple(postings),
        cursor=cursor,
    )


def snapshot(
    key: str,
    location: str,
    levels: Mapping[str, int] | Mapping[tuple[StockStatus, str, str], int],
    *,
    complete: bool = False,
    source: str = "activeants",
    cursor: CursorUpdate | None = None,
) -> SnapshotDraft:
    """``levels`` may be keyed by SKU alone (available, no lot)."""
    full = {(AV, k, "") if isinstance(k, str) else k: v for k, v in levels.items()}
    return SnapshotDraft(
        source=source,
        key=key,
        observed_at=T0,
        location=location,
        levels=full,
        complete=complete,
        cursor=cursor,
    )


def order(
    ref: str,
    lines: Mapping[str, int],
    *,
    channel: str = "ankorstore",
    minutes: int = 0,
    held: bool = False,
    status: str = "brand_confirmed",
    location: str = "activeants",
) -> OrderObservation:
    return OrderObservation(
        channel=channel,
        order_ref=ref,
        status=status,
        observed_at=at(minutes),
        open_lines=dict(lines),
        location=location,
        held_by_warehouse=held,
    )
