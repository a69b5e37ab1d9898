"""A value's explanation basis as stored in the outbox, and back (pure).

Allocation keeps, per published value, the numbers and references its
explanation is made of (`syncd.allocation.Value`); the outbox stores them as
one short JSON object in its ``explanation`` column, e.g. for a single::

    {"n":[50,3,1,3],"r":2,"h":[["reserved:ankorstore:A-1",3]],"t":7141}

``n`` is [pool, reserved, pack, own]; ``r`` the stored channel rule
(``allocation_rules``); ``h`` the reservations that lowered the pool (units
of this SKU); ``t`` the ledger transaction the balances were read at. The
balances themselves are not copied: the ledger is append-only, so the
postings up to ``t`` give them back exactly (`syncd.ledger.desired`). A
bundle adds ``b`` (component, units per bundle, the component's base), ``l``
(the limiting component) and ``v`` (the singles it is made of); its ``h``
entries name their single first. About 40 bytes per value, where the
explanation written out took 230.

`fingerprint` covers everything but ``t``: a value whose numbers, rule and
reservations did not move keeps its stored basis (and its older ``t``, whose
balances give the same pool), so an unchanged recompute writes nothing.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from syncd.allocation import BundleBasis, Value
from syncd.model import ChannelRule

_escape = json.encoder.encode_basestring_ascii


def encode_rule(rule: ChannelRule) -> str:
    """The parts of a channel rule an explanation shows, as canonical JSON."""
    return json.dumps(
        {
            "buffer": rule.buffer,
            "cap": rule.cap,
            "channel": rule.channel,
            "locations": list(rule.locations),
            "percentage": rule.percentage,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def decode_rule(text: str) -> ChannelRule:
    data = json.loads(text)
    return ChannelRule(
        channel=str(data["channel"]),
        locations=tuple(str(loc) for loc in data["locations"]),
        buffer=int(data["buffer"]),
        percentage=float(data["percentage"]),
        cap=None if data["cap"] is None else int(data["cap"]),
    )


def encode_core(value: Value, rule_id: int) -> str:
    """The basis of ``value`` without its transaction (see `with_txn`)."""
    _, _, _, own, pool, reserved, pack, basis = value
    if isinstance(basis, BundleBasis):
        parts = ",".join(f"[{_escape(c)},{m},{b}]" for c, m, b in basis.components)
        leaves = ",".join(map(_escape, basis.leaves))
        text = (
            f'{{"b":[{parts}],"l":{_escape(basis.limiting)},"n":[{pool},{reserved},{pack},{own}],'
            f'"r":{rule_id},"v":[{leaves}]'
        )
        if basis.held:
            held = ",".join(f"[{_escape(s)},{_escape(lb)},{u}]" for s, lb, u in basis.held)
            text += f',"h":[{held}]'
        return text
    text = f'{{"n":[{pool},{reserved},{pack},{own}],"r":{rule_id}'
    if basis:
        held = ",".join(f"[{_escape(label)},{units}]" for label, units in basis)
        text += f',"h":[{held}]'
    return text


def with_txn(core: str, txn: int) -> str:
    """The stored basis: ``core`` and the transaction its balances were read at."""
    return f'{core},"t":{txn}}}'


def fingerprint(value: Value, rule_id: int) -> int:
    """A 64-bit fingerprint of a value's basis without its transaction.

    Only ever compared for the same (channel, SKU) and the same desired value:
    a collision could at worst leave the previous basis of an unchanged value
    in place, never a value unsent. A single without reservations -- nearly
    every value -- is all integers, fingerprinted by Python's tuple hash
    (the same in every process for integers; no text is built for a value
    that turns out unchanged); anything naming SKUs or orders by checksums
    of its encoded text, since string hashes differ from process to process.
    """
    _, _, _, own, pool, reserved, pack, basis = value
    if not basis:
        return hash((pool, reserved, pack, own, rule_id))
    data = encode_core(value, rule_id).encode()
    # Two independent 32-bit checksums side by side, inside SQLite's signed 64 bits.
    return (zlib.crc32(data) << 31) ^ zlib.adler32(data)


@dataclass(frozen=True, slots=True)
class StoredBasis:
    """A basis read back: the value it describes and where its inputs are."""

    value: Value
    rule_id: int
    txn: int


def is_basis(stored: dict[str, Any]) -> bool:
    """True for a compact basis, False for an explanation stored written out (older rows)."""
    return "n" in stored and "steps" not in stored


def decode_basis(channel: str, sku: str, desired: int, stored: dict[str, Any]) -> StoredBasis:
    """The `Value` a stored basis describes (``desired`` is the outbox's value)."""
    pool, reserved, pack, own = (int(n) for n in stored["n"])
    held = stored.get("h") or []
    basis: Any
    if "b" in stored:
        basis = BundleBasis(
            components=tuple((str(c), int(m), int(b)) for c, m, b in stored["b"]),
            limiting=str(stored["l"]),
            leaves=tuple(str(leaf) for leaf in stored["v"]),
            held=tuple((str(s), str(label), int(u)) for s, label, u in held),
        )
    else:
        basis = tuple((str(label), int(units)) for label, units in held)
    value: Value = (channel, sku, desired, own, pool, reserved, pack, basis)
    return StoredBasis(value, int(stored["r"]), int(stored["t"]))
