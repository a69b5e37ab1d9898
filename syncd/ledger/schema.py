"""The ledger's SQLite schema and its migrations (``PRAGMA user_version``).

Each migration is a tuple of single statements, never a script:
``sqlite3.executescript`` commits on its own, which would break the rule that
all pending migrations are applied in ONE transaction -- a crash half-way
through an upgrade must leave the previous schema intact.

The shape copies ASTRAL's double-entry model (seed 000 L13123-13135): immutable
transactions group signed postings on accounts (location x status x variant x
lot); balances are a materialised sum kept in the same SQLite transaction by a
trigger, so no code path can change postings without changing balances.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite
import anyio
import structlog

from syncd.ledger.errors import LedgerError

_log = structlog.get_logger(__name__)

_V1: tuple[str, ...] = (
    # One row per balance key (seed 000 L13137-13141). ``lot`` is '' when the
    # stock is not lot-tracked, so the UNIQUE constraint covers it (NULLs
    # would compare distinct and allow duplicate accounts).
    """
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        location TEXT NOT NULL,
        status TEXT NOT NULL,
        sku TEXT NOT NULL,
        lot TEXT NOT NULL DEFAULT '',
        UNIQUE (location, status, sku, lot)
    )
    """,
    "CREATE INDEX accounts_sku ON accounts (sku)",
    # "a single trigger or event that initiated a set of stock changes"
    # (seed 000 L13135). (source, key) is the idempotency key.
    """
    CREATE TABLE transactions (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        observed_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        skipped_duplicates INTEGER NOT NULL DEFAULT 0,
        UNIQUE (source, key)
    )
    """,
    # Signed deltas, immutable once written (seed 000 L13129-13131).
    """
    CREATE TABLE postings (
        id INTEGER PRIMARY KEY,
        txn_id INTEGER NOT NULL REFERENCES transactions (id),
        account_id INTEGER NOT NULL REFERENCES accounts (id),
        quantity INTEGER NOT NULL,
        movement TEXT NOT NULL,
        batches INTEGER,
        unit_multiplier INTEGER NOT NULL DEFAULT 1 CHECK (unit_multiplier >= 1),
        external_id TEXT,
        ref TEXT
    )
    """,
    # Partial: snapshot and reservation postings have no external id, and a
    # 100 000-variant snapshot should not pay for 200 000 NULL index entries.
    """
    CREATE UNIQUE INDEX postings_external_id ON postings (external_id)
    WHERE external_id IS NOT NULL
    """,
    "CREATE INDEX postings_txn ON postings (txn_id)",
    "CREATE INDEX postings_account ON postings (account_id)",
    """
    CREATE TABLE balances (
        account_id INTEGER PRIMARY KEY REFERENCES accounts (id),
        quantity INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    # Balances follow postings inside the same statement, hence the same
    # transaction: sum(postings) == balance holds by construction.
    """
    CREATE TRIGGER postings_update_balance AFTER INSERT ON postings
    BEGIN
        INSERT INTO balances (account_id, quantity) VALUES (NEW.account_id, NEW.quantity)
        ON CONFLICT (account_id) DO UPDATE SET quantity = quantity + excluded.quantity;
    END
    """,
    # Append-only: corrections are new postings, never edits (seed 000 L13131,
    # brief seed-astral section 5.3 "A mirror must never delete or update").
    """
    CREATE TRIGGER postings_immutable_update BEFORE UPDATE ON postings
    BEGIN SELECT RAISE(ABORT, 'postings are append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER postings_immutable_delete BEFORE DELETE ON postings
    BEGIN SELECT RAISE(ABORT, 'postings are append-only: DELETE refused'); END
    """,
    """
    CREATE TRIGGER transactions_immutable_update BEFORE UPDATE ON transactions
    BEGIN SELECT RAISE(ABORT, 'transactions are append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER transactions_immutable_delete BEFORE DELETE ON transactions
    BEGIN SELECT RAISE(ABORT, 'transactions are append-only: DELETE refused'); END
    """,
    # Cursors live next to the transaction that committed them.
    """
    CREATE TABLE cursors (
        feed TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        txn_id INTEGER NOT NULL REFERENCES transactions (id),
        updated_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE feeds (
        feed TEXT PRIMARY KEY,
        last_success TEXT,
        last_error TEXT,
        last_error_at TEXT,
        extra TEXT NOT NULL DEFAULT '{}'
    )
    """,
    # Orders as channels last reported them; reservation_lines is the derived
    # "what is open now" view, kept equal to the reserved:<channel> balances.
    """
    CREATE TABLE orders (
        channel TEXT NOT NULL,
        order_ref TEXT NOT NULL,
        status TEXT NOT NULL,
        location TEXT NOT NULL,
        held_by_warehouse INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (channel, order_ref)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE reservation_lines (
        channel TEXT NOT NULL,
        order_ref TEXT NOT NULL,
        sku TEXT NOT NULL,
        location TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        since TEXT NOT NULL,
        PRIMARY KEY (channel, order_ref, sku)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX reservation_lines_sku ON reservation_lines (sku)",
    # Latest desired absolute value per (channel, variant) and what the
    # channel last confirmed. CHECKs make a negative push unrepresentable.
    """
    CREATE TABLE outbox (
        channel TEXT NOT NULL,
        sku TEXT NOT NULL,
        desired INTEGER NOT NULL CHECK (desired >= 0),
        acknowledged INTEGER CHECK (acknowledged IS NULL OR acknowledged >= 0),
        acked_seq INTEGER NOT NULL DEFAULT 0,
        seq INTEGER NOT NULL CHECK (seq >= 1),
        status TEXT NOT NULL
            CHECK (status IN ('pending', 'sent', 'acknowledged', 'parked', 'failed')),
        reason TEXT,
        explanation TEXT,
        updated_at TEXT NOT NULL,
        sent_at TEXT,
        acked_at TEXT,
        PRIMARY KEY (channel, sku)
    ) WITHOUT ROWID
    """,
    """
    CREATE INDEX outbox_pending ON outbox (channel, updated_at, sku)
    WHERE status != 'parked' AND (acknowledged IS NULL OR acknowledged != desired)
    """,
    """
    CREATE TABLE push_log (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        sku TEXT NOT NULL,
        seq INTEGER NOT NULL,
        quantity INTEGER CHECK (quantity IS NULL OR quantity >= 0),
        status TEXT NOT NULL
            CHECK (status IN ('sent', 'acknowledged', 'superseded', 'parked', 'failed')),
        request_id TEXT,
        reply TEXT,
        at TEXT NOT NULL,
        explanation TEXT
    )
    """,
    "CREATE INDEX push_log_item ON push_log (channel, sku, id)",
    # Cycles the safety interlock refused to push until someone confirms.
    """
    CREATE TABLE held_cycles (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        created_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        confirmed_at TEXT
    )
    """,
)

_V2: tuple[str, ...] = (
    # ``unparked``: an operator made a parked item pushable again (`syncd unpark`).
    # SQLite cannot change a CHECK in place, so the log is copied into a new
    # table; rows keep their ids, so the history reads exactly as before.
    """
    CREATE TABLE push_log_v2 (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        sku TEXT NOT NULL,
        seq INTEGER NOT NULL,
        quantity INTEGER CHECK (quantity IS NULL OR quantity >= 0),
        status TEXT NOT NULL
            CHECK (status IN ('sent', 'acknowledged', 'superseded', 'parked', 'failed',
                              'unparked')),
        request_id TEXT,
        reply TEXT,
        at TEXT NOT NULL,
        explanation TEXT
    )
    """,
    """
    INSERT INTO push_log_v2 (id, channel, sku, seq, quantity, status, request_id, reply, at,
                             explanation)
    SELECT id, channel, sku, seq, quantity, status, request_id, reply, at, explanation
    FROM push_log
    """,
    "DROP TABLE push_log",
    "ALTER TABLE push_log_v2 RENAME TO push_log",
    "CREATE INDEX push_log_item ON push_log (channel, sku, id)",
    # `syncd status` lists parked rows every few seconds: without this it would
    # read the whole outbox (hundreds of thousands of rows) to find a handful.
    "CREATE INDEX outbox_parked ON outbox (channel, sku) WHERE status = 'parked'",
)

_V3: tuple[str, ...] = (
    # OAuth access tokens, so a `syncd once` every minute reuses one token for its
    # lifetime instead of asking for one per run (Ankorstore allows 60 token
    # requests per hour, seed 000 L228). Keyed by API, token URL and client id:
    # a token is never offered to another API, endpoint or account. Times are
    # epoch seconds (wall clock: the next process has no other common clock).
    """
    CREATE TABLE oauth_tokens (
        api TEXT NOT NULL,
        token_url TEXT NOT NULL,
        client_id TEXT NOT NULL,
        access_token TEXT NOT NULL CHECK (access_token <> ''),
        obtained_at REAL NOT NULL,
        expires_at REAL NOT NULL CHECK (expires_at > obtained_at),
        PRIMARY KEY (api, token_url, client_id)
    ) WITHOUT ROWID
    """,
)

_V4: tuple[str, ...] = (
    # Units of the channel's own open orders included in ``desired`` (Ankorstore
    # subtracts its own orders itself, so syncd writes sellable + those units).
    # The interlocks judge ``desired - own_reserved``: a bad read that empties
    # the pool must count as a zero even where open orders keep ``desired`` up.
    "ALTER TABLE outbox ADD COLUMN own_reserved INTEGER NOT NULL DEFAULT 0"
    " CHECK (own_reserved >= 0 AND own_reserved <= desired)",
)

_V5: tuple[str, ...] = (
    # The push planner's order class of a pending row (syncd.channels.updates.Move,
    # syncd.ledger.outbox_life.push_class): 0 to zero, 1 other decrease, 2 never
    # acknowledged (the channel's value is unknown), 3 increase. Computed by SQLite
    # from the row, so no write can leave it stale; VIRTUAL because ALTER TABLE can
    # only add those, and the index below stores it anyway.
    """
    ALTER TABLE outbox ADD COLUMN push_class INTEGER GENERATED ALWAYS AS (
        CASE WHEN acknowledged IS NULL THEN 2
             WHEN desired < acknowledged THEN (CASE WHEN desired = 0 THEN 0 ELSE 1 END)
             ELSE 3 END
    ) VIRTUAL
    """,
    # The push queue: pending rows of a channel in planner order (class, then
    # oldest first), so the next ``budget x 50`` rows are read straight off the
    # index instead of reading and sorting the whole queue each round. The
    # trailing columns make it covering for the interlock's figures (one index-
    # only pass over the pending rows); ``status`` included so that SQLite does
    # not look each row up to re-check the index's own WHERE.
    """
    CREATE INDEX outbox_queue ON outbox
        (channel, push_class, updated_at, sku, desired, acknowledged, own_reserved, status)
    WHERE status != 'parked' AND (acknowledged IS NULL OR acknowledged != desired)
    """,
    # Replaced by outbox_queue (same rows): one index less to write per desired value.
    "DROP INDEX outbox_pending",
)


_V6: tuple[str, ...] = (
    # Lean recompute, from the previous version (numbered 6 because the outbox's
    # own migration goes before it; until both are merged it applies as 5). The outbox's ``explanation``
    # now holds a value's compact basis (numbers and references, see
    # syncd/ledger/basis.py) instead of the explanation written out; older rows
    # keep theirs and are shown as stored. ``basis_key`` fingerprints the basis,
    # so a recompute that finds value and basis unchanged writes nothing and
    # reads no explanation back (NULL: never fingerprinted, rewritten once).
    "ALTER TABLE outbox ADD COLUMN basis_key INTEGER",
    # The channel rules a basis was computed under, referenced by id: a few
    # rows for the whole outbox instead of the rule written into every value.
    """
    CREATE TABLE allocation_rules (
        id INTEGER PRIMARY KEY,
        rule TEXT NOT NULL UNIQUE
    )
    """,
    # A recompute reads only ``available`` balances, grouped by SKU and location:
    # this index holds exactly those accounts in that order (about half of them;
    # the rest are ``void`` counter-accounts and reservation pools).
    "CREATE INDEX accounts_available ON accounts (sku, location, lot) WHERE status = 'available'",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
"""Migration N (1-based) brings ``user_version`` from N-1 to N. Append only."""

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNewError(LedgerError):
    """The file was written by a newer syncd; refusing to guess its meaning."""


async def configure(db: aiosqlite.Connection) -> None:
    """Per-connection settings: WAL, ``synchronous=FULL``, foreign keys.

    ``synchronous=FULL`` syncs the WAL at every commit, so a power loss can
    never take back a transaction (and its cursor) the daemon believed
    committed. These pragmas are no-ops inside a transaction, hence they run
    before anything else.
    """
    async with db.execute("PRAGMA journal_mode = WAL") as cursor:
        row = await cursor.fetchone()
    if row is None or str(row[0]).lower() != "wal":
        raise LedgerError(f"could not switch the ledger to WAL mode (got {row!r})")
    await db.execute("PRAGMA synchronous = FULL")
    await db.execute("PRAGMA foreign_keys = ON")
    # Staging tables for set-based writes live in memory, not next to the WAL.
    await db.execute("PRAGMA temp_store = MEMORY")
    await db.execute("PRAGMA busy_timeout = 5000")


async def migrate(
    db: aiosqlite.Connection, migrations: Sequence[Sequence[str]] = MIGRATIONS
) -> int:
    """Apply every pending migration in one ``BEGIN IMMEDIATE`` transaction.

    Returns the version the file is at afterwards. Idempotent: a file already
    at the latest version is left untouched.
    """
    await db.execute("BEGIN IMMEDIATE")
    try:
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        target = len(migrations)
        if current > target:
            raise SchemaTooNewError(
                f"ledger schema version {current} is newer than this syncd ({target})"
            )
        for statements in migrations[current:]:
            for statement in statements:
                await db.execute(statement)
        if current != target:
            # PRAGMA takes no bound parameters; target is our own integer.
            await db.execute(f"PRAGMA user_version = {int(target)}")
        await db.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await db.execute("ROLLBACK")
        raise
    if current != target:
        _log.info("ledger.migrated", from_version=current, to_version=target)
    return target
