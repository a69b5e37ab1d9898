"""How ledger values are written to and read from SQLite columns (pure).

Timestamps are stored as ISO-8601 UTC with a fixed microsecond precision, so
text order is time order and SQL can compare them directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.ledger.errors import InvalidObservationError
from syncd.model import Account, Explanation, StockStatus

MAX_QUANTITY = 10**15
"""Largest quantity one posting, level or reservation line may carry.

SQLite stores 64-bit integers: a larger Python int cannot be bound at all (an
``OverflowError`` deep in the driver) and a sum past 2**63 silently turns
into a float. Sources already skip absurd vendor numbers (syncd.sources.
jsonvalues.MAX_UNITS, 10**12); this bound is the ledger's own guard, with room
for many maximal postings on one account before any sum could overflow.
"""


def check_quantity(value: int, what: str) -> None:
    """Refuse (`InvalidObservationError`, nothing written) a quantity beyond `MAX_QUANTITY`."""
    if not -MAX_QUANTITY <= value <= MAX_QUANTITY:
        # str() of a huge int is slow and, past 4 300 digits, an error itself.
        shown = str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit number"
        raise InvalidObservationError(f"{what} {shown} is beyond +-{MAX_QUANTITY}")


def encode_time(value: datetime) -> str:
    """UTC ISO-8601 text; naive datetimes are refused (their zone is a guess)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidObservationError(f"timestamp {value!r} has no time zone")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def decode_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def decode_optional_time(value: str | None) -> datetime | None:
    return None if value is None else decode_time(value)


def encode_strings(values: Mapping[str, str]) -> str:
    return json.dumps(dict(values), sort_keys=True, separators=(",", ":"))


def decode_strings(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    loaded = json.loads(value)
    return {str(k): str(v) for k, v in loaded.items()}


_STATUSES: dict[str, StockStatus] = {status.value: status for status in StockStatus}


def account_from_row(location: str, status: str, sku: str, lot: str) -> Account:
    # A dict lookup, not StockStatus(status): balances() builds 100 000s of these.
    return Account(location, _STATUSES[status], sku, lot)


def account_key(account: Account) -> tuple[str, str, str, str]:
    """Column values of an account, with the status as its stored text."""
    return (account.location, account.status.value, account.sku, account.lot)


def explanation_to_json(explanation: Explanation) -> dict[str, Any]:
    """A JSON-ready dict with every field `syncd explain` shows."""
    return {
        "channel": explanation.channel,
        "sku": explanation.sku,
        "inputs": dict(explanation.inputs),
        "steps": _steps(explanation),
        "limiting_component": explanation.limiting_component,
        "result": explanation.result,
    }


def _steps(explanation: Explanation) -> list[dict[str, Any]]:
    return [
        {"rule": s.rule, "before": s.before, "after": s.after, "detail": s.detail}
        for s in explanation.steps
    ]


# One encoder instance: json.dumps() with any non-default argument builds a
# new JSONEncoder per call, which dominated a 220 000-row outbox update.
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str)
# What that encoder (ensure_ascii) escapes strings with; a C function in CPython.
_escape = json.encoder.encode_basestring_ascii


def encode_json(value: Mapping[str, Any]) -> str:
    return _ENCODER.encode(value)


class ExplanationEncoder:
    """``encode_json(explanation_to_json(e))``, byte for byte, at a fraction of the cost.

    A full recompute stores one explanation per (channel, SKU) -- 180 000 on a
    100 000-variant catalog -- and the generic encoder spent more time on
    them than the allocation itself. Here the fixed layout is written as
    text (keys in sorted order, as ``sort_keys`` does), strings escaped by
    the same C function ``json`` uses, and the ``steps`` tuples, which
    allocation shares between every SKU with equal numbers, encoded once per
    object (held here, so an id is never reused while cached). Anything but
    plain ints and strings falls back to the generic encoder. Use one
    encoder per batch of rows.
    """

    def __init__(self) -> None:
        self._steps: dict[int, tuple[object, str]] = {}

    def encode(self, explanation: Explanation) -> str:
        limiting = explanation.limiting_component
        result = explanation.result
        if type(result) is not int or not (limiting is None or type(limiting) is str):
            return encode_json(explanation_to_json(explanation))
        inputs = _inputs_json(explanation.inputs)
        found = self._steps.get(id(explanation.steps))
        if found is None or found[0] is not explanation.steps:
            found = (explanation.steps, _ENCODER.encode(_steps(explanation)))
            self._steps[id(explanation.steps)] = found
        return (
            f'{{"channel":{_escape(explanation.channel)},"inputs":{inputs},'
            f'"limiting_component":{"null" if limiting is None else _escape(limiting)},'
            f'"result":{result},"sku":{_escape(explanation.sku)},"steps":{found[1]}}}'
        )


def _inputs_json(inputs: Mapping[str, int]) -> str:
    parts = []
    for key, value in sorted(inputs.items()):
        if type(value) is not int or type(key) is not str:
            return _ENCODER.encode(dict(inputs))
        parts.append(f"{_escape(key)}:{value}")
    return "{" + ",".join(parts) + "}"


def decode_json(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    loaded = json.loads(value)
    if not isinstance(loaded, dict):
        raise ValueError(f"expected a JSON object, got {type(loaded).__name__}")
    return loaded
