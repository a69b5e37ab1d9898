"""Recording a source's transaction draft (movements, cursor-only pages).

Duplicate postings (same ``external_id``, e.g. an ASTRAL posting UUID seen
again on an overlapping page, brief seed-astral section 5.3) are skipped.
How a *partially* duplicate draft is handled:

* The postings already recorded were balanced, when first recorded, by their
  own siblings. So the postings that are new must balance among themselves:
  they are recorded as one transaction when they sum to zero, and the whole
  draft is refused (`UnbalancedTransactionError`, nothing written) when they
  do not. Inserting an unbalanced remainder would break the double-entry rule
  (seed 000 L13125) and hide a source bug behind a silent ``void`` entry.
* A duplicate id whose account or quantity differs from the recorded posting
  is refused (`ConflictingPostingError`): postings are immutable (L13131).
* When every posting is a duplicate the draft carries no stock news. It is a
  no-op, unless it also moves the feed's cursor: the cursor is then committed
  (as a transaction with no postings under the draft's key), because a
  source whose cursor never advanced would re-read the same page forever.
"""

from __future__ import annotations

from datetime import datetime

import aiosqlite
import structlog

from syncd.ledger.codec import check_quantity, encode_time
from syncd.ledger.errors import InvalidObservationError, UnbalancedTransactionError
from syncd.ledger.transactions import (
    StagedRow,
    current_cursor,
    drop_duplicates,
    insert_transaction,
    stage,
    staged_totals,
    store_cursor,
    transaction_exists,
    write_staged,
)
from syncd.model import TransactionDraft, TransactionKind

_log = structlog.get_logger(__name__)


def staged_rows(draft: TransactionDraft) -> list[StagedRow]:
    """Validate a draft and turn it into staging rows (pure).

    Raises `UnbalancedTransactionError` when the postings do not sum to zero
    and `InvalidObservationError` for any other malformed field.
    """
    encode_time(draft.observed_at)  # refuses naive timestamps
    if not draft.source or not draft.key:
        raise InvalidObservationError("a transaction needs a source and a key")
    if draft.kind is TransactionKind.SNAPSHOT:
        raise InvalidObservationError("snapshots are recorded with record_snapshot()")
    seen: set[str] = set()
    rows: list[StagedRow] = []
    for posting in draft.postings:
        if isinstance(posting.quantity, bool) or not isinstance(posting.quantity, int):
            raise InvalidObservationError(f"posting quantity {posting.quantity!r} is not an int")
        check_quantity(posting.quantity, f"{posting.account.sku}: posting quantity")
        if posting.unit_multiplier < 1:
            raise InvalidObservationError(
                f"unit multiplier {posting.unit_multiplier} < 1 (seed 000 L13601-13605)"
            )
        if posting.external_id is not None:
            if posting.external_id in seen:
                raise InvalidObservationError(
                    f"posting {posting.external_id} appears twice in one draft"
                )
            seen.add(posting.external_id)
        account = posting.account
        rows.append(
            (
                account.location,
                account.status.value,
                account.sku,
                account.lot,
                posting.quantity,
                posting.movement,
                posting.batches,
                posting.unit_multiplier,
                posting.external_id,
                None,
            )
        )
    total = sum(row[4] for row in rows)
    if total != 0:
        raise UnbalancedTransactionError(
            f"{draft.source}/{draft.key}: postings sum to {total:+d}, not 0; nothing recorded"
        )
    return rows


async def record_draft(
    conn: aiosqlite.Connection, draft: TransactionDraft, recorded_at: datetime
) -> bool:
    """Record a draft inside an open write transaction; False if a no-op."""
    rows = staged_rows(draft)
    if await transaction_exists(conn, draft.source, draft.key):
        return False
    await stage(conn, rows)
    duplicates = await drop_duplicates(conn)
    remaining, total = await staged_totals(conn)
    if total != 0:
        raise UnbalancedTransactionError(
            f"{draft.source}/{draft.key}: {duplicates} postings were already recorded and"
            f" the {remaining} new ones sum to {total:+d}, not 0; nothing recorded"
        )
    kind = draft.kind
    if rows and remaining == 0:
        cursor_moves = draft.cursor is not None and draft.cursor.value != await current_cursor(
            conn, draft.cursor.feed
        )
        if not cursor_moves:
            _log.debug("ledger.duplicate_draft", source=draft.source, key=draft.key)
            return False
        kind = TransactionKind.CURSOR
    txn_id = await insert_transaction(
        conn,
        kind=kind,
        source=draft.source,
        key=draft.key,
        observed_at=draft.observed_at,
        recorded_at=recorded_at,
        metadata=draft.metadata,
        skipped_duplicates=duplicates,
    )
    written = await write_staged(conn, txn_id)
    if draft.cursor is not None:
        await store_cursor(conn, draft.cursor, txn_id, recorded_at)
    _log.debug(
        "ledger.recorded",
        kind=kind.value,
        source=draft.source,
        key=draft.key,
        txn_id=txn_id,
        postings=written,
        duplicates=duplicates,
    )
    return True
