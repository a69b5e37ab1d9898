"""Reading loosely typed JSON values from vendor APIs. Pure.

Vendors type the same field differently across endpoints (brief
seed-activeants G14: integers sent as strings, SKUs sent as numbers), so
syncd accepts the shapes that carry an unambiguous value and nothing else.
"""

from __future__ import annotations

from typing import Any


def coerce_int(value: Any) -> int | None:
    """An integer from JSON that may carry it as a number or a numeric string (G14)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if digits.isdigit():
            return int(text)
    return None


def opaque_id(value: Any) -> str | None:
    """An identifier as a non-empty string (numbers become their decimal text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None
