"""Reading loosely typed JSON values from vendor APIs. Pure.

Vendors type the same field differently across endpoints (brief
seed-activeants G14: integers sent as strings, SKUs sent as numbers), so
syncd accepts the shapes that carry an unambiguous value and nothing else.
"""

from __future__ import annotations

from typing import Any

from syncd.config.catalog import MAX_MULTIPLIER
from syncd.model import MAX_UNITS

__all__ = ["MAX_MULTIPLIER", "MAX_UNITS", "coerce_int", "describe_number", "in_range", "opaque_id"]


_MAX_DIGITS = 30
"""Numeric strings longer than this are not quantities (and Python refuses to
convert strings of over 4 300 digits at all)."""


def coerce_int(value: Any) -> int | None:
    """An integer from JSON that may carry it as a number or a numeric string (G14).

    Only ASCII digits count: ``"²"`` or ``"١٢"`` are not quantities a vendor sends.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isascii() and digits.isdigit() and len(digits) <= _MAX_DIGITS:
            return int(text)
    return None


def in_range(value: int, limit: int = MAX_UNITS) -> bool:
    """Whether ``value`` is a plausible quantity: at most ``limit`` either way."""
    return -limit <= value <= limit


def describe_number(value: int) -> str:
    """A number for a problem message, shortened when absurdly long."""
    return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit number"


def opaque_id(value: Any) -> str | None:
    """An identifier as a non-empty string (numbers become their decimal text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None
