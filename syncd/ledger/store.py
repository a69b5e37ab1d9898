"""`Ledger`: the daemon's SQLite memory, one file, one connection, one writer.

Everything a source observes becomes an immutable transaction of signed
postings on accounts (location x status x variant x lot), as ASTRAL models
stock (seed 000 L13123-13135); balances are maintained in the same SQLite
transaction, and feed cursors are committed with the postings they cover.
Outbox, push log and held cycles share the same file and connection
(outbox.py, interlock.py).

Usage::

    async with await Ledger.open(path) as ledger:
        await ledger.record(draft)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType

from syncd.clock import Clock, SystemClock
from syncd.ledger import (
    feeds,
    integrity,
    invariants,
    movements,
    queries,
    reservations,
    snapshots,
    tokens,
)
from syncd.ledger.codec import decode_optional_time, encode_time
from syncd.ledger.connection import Database
from syncd.ledger.desired import DesiredMixin
from syncd.ledger.freshness import FeedFreshness
from syncd.ledger.interlock import InterlockMixin
from syncd.ledger.outbox import OutboxMixin
from syncd.ledger.queries import LedgerEntry
from syncd.ledger.readback import ReadBackMixin
from syncd.ledger.tokens import StoredToken, TokenKey, protect_file
from syncd.ledger.transactions import current_cursor
from syncd.model import (
    Account,
    CursorUpdate,
    FeedState,
    OrderObservation,
    Reservation,
    SnapshotDraft,
    TransactionDraft,
)

_REPORTED_PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "user_version")


class Ledger(DesiredMixin, OutboxMixin, InterlockMixin, ReadBackMixin):
    """Append-only, double-entry stock ledger over one SQLite file."""

    def __init__(self, db: Database, *, clock: Clock | None = None) -> None:
        self._db = db
        self._file_id: integrity.FileId | None = None
        self.clock: Clock = clock or SystemClock()
        """Stamps every record ("now") and measures feed ages: the assembly's one clock."""
        self.freshness = FeedFreshness(self.clock)
        """When each feed last succeeded *in this process*, on the monotonic clock."""

    @classmethod
    async def open(cls, path: str | Path, *, clock: Clock | None = None) -> Ledger:
        """Open (creating if needed) and migrate the ledger file at ``path``.

        ``clock`` stamps records and measures feed freshness; the process's
        one clock (:func:`syncd.assembly.assemble` requires the same one).

        The file holds OAuth tokens (:mod:`syncd.ledger.tokens`), so it is
        created owner-and-group only and an existing one loses any access for
        others (SQLite gives its ``-wal`` and ``-shm`` files the same mode).
        """
        protect_file(Path(path))
        ledger = cls(await Database.open(path), clock=clock)
        try:
            ledger._file_id = integrity.file_id(ledger.path)
        except OSError:
            ledger._file_id = None  # an in-memory or vanished file: nothing to watch
        return ledger

    @property
    def path(self) -> Path:
        return self._db.path

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- writes -----------------------------------------------------------

    async def record(self, draft: TransactionDraft) -> bool:
        """Record a source's transaction; False when it changes nothing.

        The postings must sum to zero (`UnbalancedTransactionError`, nothing
        written, otherwise). Postings whose ``external_id`` is already
        recorded are skipped; see movements.py for partial duplicates.
        """
        async with self._db.write() as conn:
            return await movements.record_draft(conn, draft, self.clock.now())

    async def record_snapshot(self, draft: SnapshotDraft) -> bool:
        """Record absolute levels as adjustments against ``void``; False if replayed."""
        async with self._db.write() as conn:
            return await snapshots.record_snapshot(conn, draft, self.clock.now())

    async def record_orders(
        self,
        source: str,
        key: str,
        observed_at: datetime,
        orders: Sequence[OrderObservation],
        *,
        complete: bool,
        cursor: CursorUpdate | None = None,
        channels: Collection[str] = (),
    ) -> bool:
        """Set each observed order's open reservation lines; False if replayed.

        With ``complete=True`` the observation covers every open order of
        ``channels`` and of every channel in ``orders``: open orders of those
        channels that are absent are released. An empty complete observation
        must name its ``channels``.
        """
        async with self._db.write() as conn:
            return await reservations.record_orders(
                conn,
                source=source,
                key=key,
                observed_at=observed_at,
                orders=orders,
                complete=complete,
                channels=channels,
                cursor=cursor,
                recorded_at=self.clock.now(),
            )

    async def mark_feed(
        self,
        feed: str,
        *,
        success_at: datetime | None = None,
        error: str | None = None,
        error_at: datetime | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        """Record a feed's success and/or error (``error_at`` defaults to now)."""
        at = error_at or self.clock.now()
        if success_at is not None:
            encode_time(success_at)
        async with self._db.write() as conn:
            await feeds.mark_feed(
                conn, feed, success_at=success_at, error=error, error_at=at, extra=extra
            )
        if success_at is not None:
            self.freshness.succeeded(feed, success_at)

    # --- OAuth token cache (syncd.ledger.tokens) ----------------------------

    async def load_token(self, key: TokenKey) -> StoredToken | None:
        async with self._db.read() as conn:
            return await tokens.load_token(conn, key)

    async def save_token(self, key: TokenKey, token: StoredToken) -> None:
        async with self._db.write() as conn:
            await tokens.forget_expired(conn, token.obtained_at)
            await tokens.save_token(conn, key, token)

    async def forget_token(self, key: TokenKey, value: str) -> None:
        async with self._db.write() as conn:
            await tokens.forget_token(conn, key, value)

    # --- reads ------------------------------------------------------------

    async def balances(self, skus: Collection[str] | None = None) -> dict[Account, int]:
        """Non-zero balances, optionally only for ``skus``."""
        async with self._db.read() as conn:
            return await queries.balances(conn, skus)

    async def allocation_inputs(
        self, locations: Sequence[str], skus: Collection[str] | None = None
    ) -> tuple[int, dict[str, int], list[tuple[str, str, str, int, str]]]:
        """``(txn, pools, reservations)`` for one channel's recompute, read at one moment.

        See `syncd.ledger.queries.allocation_inputs`: only ``available``
        balances at ``locations`` are read, summed per SKU in SQL.
        """
        async with self._db.read() as conn:
            return await queries.allocation_inputs(conn, locations, skus)

    async def open_reservations(self, skus: Collection[str] | None = None) -> list[Reservation]:
        async with self._db.read() as conn:
            return await queries.open_reservations(conn, skus)

    async def last_order_sighting(self, channel: str) -> datetime | None:
        """The newest ``observed_at`` recorded for any order of ``channel`` (None: none yet)."""
        async with (
            self._db.read() as conn,
            conn.execute("SELECT MAX(last_seen) FROM orders WHERE channel = ?", (channel,)) as c,
        ):
            row = await c.fetchone()
        return decode_optional_time(row[0] if row else None)

    async def cursor(self, feed: str) -> str | None:
        async with self._db.read() as conn:
            return await current_cursor(conn, feed)

    async def feed_states(self) -> list[FeedState]:
        async with self._db.read() as conn:
            return await feeds.feed_states(conn)

    async def last_txn_id(self) -> int:
        async with self._db.read() as conn:
            return await queries.last_txn_id(conn)

    async def changed_skus_since(
        self, txn_id: int, sources: Collection[str] | None = None
    ) -> set[str]:
        """SKUs whose balances moved in a transaction after ``txn_id`` (recorded by ``sources``)."""
        async with self._db.read() as conn:
            return await queries.changed_skus_since(conn, txn_id, sources)

    async def explain_rows(self, sku: str, limit: int = 50) -> list[LedgerEntry]:
        """The postings behind ``sku``'s balances, newest first, at most ``limit``."""
        async with self._db.read() as conn:
            return await queries.explain_rows(conn, sku, limit)

    async def pragmas(self) -> dict[str, str | int]:
        """The durability settings actually in force (for status and tests)."""
        values: dict[str, str | int] = {}
        async with self._db.read() as conn:
            for name in _REPORTED_PRAGMAS:
                async with conn.execute(f"PRAGMA {name}") as cursor:
                    row = await cursor.fetchone()
                values[name] = row[0] if row else ""
        return values

    async def check_integrity(self) -> integrity.IntegrityReport:
        """``PRAGMA quick_check`` and the invariants (see :mod:`syncd.ledger.integrity`)."""
        async with self._db.read() as conn:
            return await integrity.check(conn)

    async def rebuild_balances(self) -> list[str]:
        """Recompute every balance from the postings, in one transaction; the accounts fixed."""
        async with self._db.write() as conn:
            return await integrity.rebuild_balances(conn)

    def file_problem(self) -> str | None:
        """Why the path no longer names the file this ledger opened (removed, replaced)."""
        if self._file_id is None:
            return None
        return integrity.file_problem(self.path, self._file_id)

    async def check_invariants(self) -> list[str]:
        """Violated invariants, one line each; empty when the ledger is sound."""
        async with self._db.read() as conn:
            return await invariants.check_invariants(conn)
