"""Desired values from a recompute into the outbox, and their explanations back out.

`DesiredMixin.write_desired` takes allocation's rows (`syncd.allocation.Value`)
and writes only what changed: the outbox keeps, per (channel, SKU), the
value, the channel's own orders in it and a fingerprint of the value's
compact basis (`syncd.ledger.basis`), and a recompute compares against those
three numbers -- it never reads an explanation back. A value that moved gets
a new ``seq`` and status exactly as `syncd.ledger.outbox` rules (the same
helpers decide); a value that stayed but whose basis moved (more stock
behind the same cap) gets its new basis only.

`DesiredMixin.explanation` renders the explanation `syncd explain` shows from
the stored basis, on demand: the rule from ``allocation_rules``, the
balances from the ledger's postings up to the basis' transaction, the steps
from `syncd.allocation.explain` -- the same function allocation's own
explanations come from. Rows written by an older syncd hold their
explanation written out and are returned as stored.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import aiosqlite
import structlog

from syncd.allocation import BundleBasis, Value, explain
from syncd.allocation.explanation import balance_inputs
from syncd.allocation.rules import matches
from syncd.ledger import queries
from syncd.ledger.basis import (
    decode_basis,
    decode_rule,
    encode_core,
    encode_rule,
    fingerprint,
    is_basis,
    with_txn,
)
from syncd.ledger.codec import decode_json, encode_time, explanation_to_json
from syncd.ledger.connection import Database
from syncd.ledger.errors import InvalidObservationError
from syncd.ledger.outbox import _move
from syncd.ledger.outbox_life import STATUS_OF, Computed, RowState, returns_to_acknowledged
from syncd.ledger.outbox_log import unconfirmed_send
from syncd.model import ChannelRule, Sku

_log = structlog.get_logger(__name__)

_UPSERT = """
INSERT INTO outbox (channel, sku, desired, seq, status, explanation, updated_at, own_reserved,
                    basis_key)
VALUES (?,?,?,?,?,?,?,?,?)
ON CONFLICT (channel, sku) DO UPDATE SET desired = excluded.desired,
    seq = excluded.seq, status = excluded.status,
    explanation = excluded.explanation, updated_at = excluded.updated_at,
    own_reserved = excluded.own_reserved, basis_key = excluded.basis_key
"""


class DesiredMixin:
    """Recompute results in, explanations out; part of `syncd.ledger.store.Ledger`."""

    _db: Database

    async def write_desired(
        self,
        values: Sequence[Value],
        rules: Iterable[ChannelRule],
        txn: int,
        at: datetime,
        *,
        complete: bool = False,
    ) -> int:
        """Store the values that changed; returns how many desired values changed.

        ``txn`` is the ledger transaction the values were computed at;
        ``complete`` says ``values`` cover every published SKU of their
        channels (a full recompute: the channel's rows are compared in one
        scan instead of looked up by SKU). A negative value, own orders
        outside 0..value, or the same (channel, SKU) twice are refused and
        nothing is written.
        """
        stamp = encode_time(at)
        groups = _checked_groups(values)
        by_name = {rule.channel: rule for rule in rules}
        changed = 0
        async with self._db.write() as conn:
            for channel, group in groups.items():
                rule_id = await _rule_id(conn, by_name[channel])
                changed += await _write_channel(
                    conn, channel, group, rule_id=rule_id, txn=txn, stamp=stamp, complete=complete
                )
        return changed

    async def explanation(self, channel: str, sku: Sku) -> dict[str, Any] | None:
        """Why the current desired value is what it is (for `syncd explain`).

        ``{"channel", "sku", "inputs", "steps", "limiting_component",
        "result"}``, rendered from the stored basis; None when the channel
        has no value for the SKU.
        """
        async with self._db.read() as conn:
            async with conn.execute(
                "SELECT explanation, desired FROM outbox WHERE channel = ? AND sku = ?",
                (channel, sku),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            stored = decode_json(row[0])
            if stored is None or not is_basis(stored):
                return stored
            return await _render(conn, channel, sku, int(row[1]), stored)


def _checked_groups(values: Sequence[Value]) -> dict[str, list[Value]]:
    """``values`` by channel, after refusing any that must never reach the outbox.

    Checked column by column with C-level builtins: a full recompute hands
    over 180 000 values, and a Python loop per value cost a fifth of a second.
    """
    groups: dict[str, list[Value]] = {}
    for channel, run in itertools.groupby(values, key=itemgetter(0)):
        groups.setdefault(channel, []).extend(run)
    for channel, group in groups.items():
        skus = list(map(itemgetter(1), group))
        if len(set(skus)) != len(skus):
            twice = min(sku for sku, count in Counter(skus).items() if count > 1)
            raise InvalidObservationError(f"{channel}/{twice} appears twice")
        quantities = list(map(itemgetter(2), group))
        owns = list(map(itemgetter(3), group))
        if (
            set(map(type, quantities)) != {int}
            or min(owns) < 0
            or not all(map(operator.le, owns, quantities))
        ):
            for _, sku, quantity, own, *_ in group:
                if type(quantity) is not int or not 0 <= own <= quantity:
                    _refuse(channel, sku, quantity, own)
    return groups


def _refuse(channel: str, sku: Sku, quantity: object, own: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise InvalidObservationError(f"{channel}/{sku}: {quantity!r}")
    if quantity < 0:
        raise InvalidObservationError(f"{channel}/{sku}: desired {quantity} < 0 is never pushed")
    raise InvalidObservationError(f"{channel}/{sku}: own orders {own} outside 0..{quantity}")


async def _rule_id(conn: aiosqlite.Connection, rule: ChannelRule) -> int:
    text = encode_rule(rule)
    await conn.execute("INSERT OR IGNORE INTO allocation_rules (rule) VALUES (?)", (text,))
    async with conn.execute("SELECT id FROM allocation_rules WHERE rule = ?", (text,)) as cursor:
        row = await cursor.fetchone()
    assert row is not None  # inserted just above
    return int(row[0])


_CHUNK = 20_000
"""Values compared and written per round: memory stays bounded on any catalog size."""


async def _write_channel(
    conn: aiosqlite.Connection,
    channel: str,
    values: list[Value],
    *,
    rule_id: int,
    txn: int,
    stamp: str,
    complete: bool,
) -> int:
    values.sort(key=itemgetter(1))  # already sorted when they come from allocation
    changed = rebased = 0
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        current = await _stored(conn, channel, chunk, by_range=complete)
        upserts, same = await _compare(
            conn, channel, chunk, current, rule_id=rule_id, txn=txn, stamp=stamp
        )
        changed += len(upserts)
        rebased += len(same)
    if changed or rebased:
        _log.debug("outbox.desired_changed", channel=channel, changed=changed, rebased=rebased)
    return changed


async def _compare(
    conn: aiosqlite.Connection,
    channel: str,
    values: list[Value],
    current: dict[Sku, tuple[int, int, int | None]],
    *,
    rule_id: int,
    txn: int,
    stamp: str,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Write the values of one chunk that differ from ``current``; (upserts, rebased)."""
    upserts: list[tuple[object, ...]] = []
    same: list[tuple[object, ...]] = []
    moved: list[tuple[Value, str, int]] = []
    suffix = f',"r":{rule_id},"t":{txn}}}'
    for value in values:
        _, sku, quantity, own, pool, reserved, pack, basis = value
        # A single without reservations (nearly every value): `fingerprint`, inline.
        key = fingerprint(value, rule_id) if basis else hash((pool, reserved, pack, own, rule_id))
        old = current.get(sku)
        if old is not None and old[0] == quantity and old[1] == own and old[2] == key:
            continue  # unchanged: nothing is encoded, nothing written
        if basis:
            text = with_txn(encode_core(value, rule_id), txn)
        else:  # `encode_core` and `with_txn` inline, the same text
            text = f'{{"n":[{pool},{reserved},{pack},{own}]{suffix}'
        if old is None:
            upserts.append((channel, sku, quantity, 1, "pending", text, stamp, own, key))
        elif old[0] != quantity:
            moved.append((value, text, key))
        else:
            same.append((text, own, key, channel, sku))
    unknown: list[tuple[str, Sku]] = []
    if moved:
        states = await _states(conn, channel, [value[1] for value, _, _ in moved])
        for value, text, key in moved:
            sku, quantity, own = value[1], value[2], value[3]
            before = states[sku]
            # The push log is asked only when the value returns to the acknowledged one:
            # after an unconfirmed send of another one, what the channel shows is unknown.
            doubt = returns_to_acknowledged(before, quantity) and await unconfirmed_send(
                conn, channel, sku, before
            )
            after = _move(channel, sku, before, Computed(quantity, doubt))
            if after.acknowledged is None and before.acknowledged is not None:
                unknown.append((channel, sku))
            upserts.append(
                (channel, sku, after.desired, after.seq, str(after.status), text, stamp, own, key)
            )
    await conn.executemany(_UPSERT, upserts)
    await conn.executemany(
        "UPDATE outbox SET acknowledged = NULL WHERE channel = ? AND sku = ?", unknown
    )
    await conn.executemany(
        "UPDATE outbox SET explanation = ?, own_reserved = ?, basis_key = ?"
        " WHERE channel = ? AND sku = ?",
        same,
    )
    return upserts, same


async def _stored(
    conn: aiosqlite.Connection, channel: str, values: list[Value], *, by_range: bool
) -> dict[Sku, tuple[int, int, int | None]]:
    """SKU -> (desired, own_reserved, basis_key) of the stored rows for ``values`` (sorted).

    ``by_range``: the values cover every SKU between their first and last
    (a full recompute), so the rows are read by a primary-key range instead
    of looked up one by one.
    """
    query = "SELECT sku, desired, own_reserved, basis_key FROM outbox WHERE channel = ?"
    params: tuple[object, ...]
    if by_range:
        query += " AND sku BETWEEN ? AND ?"
        params = (channel, values[0][1], values[-1][1])
    else:
        query += " AND sku IN (SELECT value FROM json_each(?))"
        params = (channel, json.dumps([value[1] for value in values]))
    found: dict[Sku, tuple[int, int, int | None]] = {}
    async with conn.execute(query, params) as cursor:
        for sku, desired, own, key in await cursor.fetchall():
            found[sku] = (desired, own, key)
    return found


async def _states(conn: aiosqlite.Connection, channel: str, skus: list[Sku]) -> dict[Sku, RowState]:
    """The life state of the rows whose value moved (their explanation is not read)."""
    found: dict[Sku, RowState] = {}
    async with conn.execute(
        "SELECT sku, desired, seq, acknowledged, acked_seq, status FROM outbox"
        " WHERE channel = ? AND sku IN (SELECT value FROM json_each(?))",
        (channel, json.dumps(skus)),
    ) as cursor:
        for r in await cursor.fetchall():
            found[r[0]] = RowState(r[1], r[2], r[3], r[4], STATUS_OF[r[5]])
    return found


async def _render(
    conn: aiosqlite.Connection, channel: str, sku: Sku, desired: int, stored: dict[str, Any]
) -> dict[str, Any]:
    basis = decode_basis(channel, sku, desired, stored)
    async with conn.execute(
        "SELECT rule FROM allocation_rules WHERE id = ?", (basis.rule_id,)
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise InvalidObservationError(f"{channel}/{sku}: channel rule {basis.rule_id} is missing")
    rule = decode_rule(row[0])
    shape = basis.value[7]
    skus = list(shape.leaves) if isinstance(shape, BundleBasis) else [sku]
    found = await queries.available_at(conn, skus, basis.txn)
    balances = {
        each: [(key, units) for loc, key, units in rows if matches(loc, rule.locations)]
        for each, rows in found.items()
    }
    explanation = explain(rule, basis.value, balance_inputs(basis.value, balances))
    return explanation_to_json(explanation)
