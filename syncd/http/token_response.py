"""What a token endpoint's answer means: its lifetime and its error code.

Pure functions over the decoded JSON, used by :mod:`syncd.http.auth`. They
never return or quote the token itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


def token_lifetime(document: Mapping[str, Any], default: float | None) -> float | None:
    raw = document.get("expires_in")
    lifetime: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        lifetime = float(raw)
    elif isinstance(raw, str):
        try:
            lifetime = float(raw.strip())
        except ValueError:
            lifetime = None
    if lifetime is None:
        lifetime = _rfc1123_lifetime(document)
    if lifetime is None:
        lifetime = default
    if lifetime is None or not math.isfinite(lifetime) or lifetime <= 0:
        return None
    return lifetime


def _rfc1123_lifetime(document: Mapping[str, Any]) -> float | None:
    # OWIN servers may spell the keys with a leading dot (seed brief activeants §2.3).
    issued = document.get("issued", document.get(".issued"))
    expires = document.get("expires", document.get(".expires"))
    if not isinstance(issued, str) or not isinstance(expires, str):
        return None
    try:
        # parsedate ignores the weekday, which the seed's sample gets wrong (L95-96).
        delta = parsedate_to_datetime(expires) - parsedate_to_datetime(issued)
    except (TypeError, ValueError, IndexError):
        return None
    return delta.total_seconds()


def oauth_error(response: httpx.Response) -> str:
    """The RFC 6749 ``error`` code (e.g. ``invalid_client``) -- safe to log, unlike the body."""
    try:
        document = response.json()
    except ValueError:
        return ""
    code = document.get("error") if isinstance(document, dict) else None
    return code if isinstance(code, str) and code.isascii() and len(code) <= 64 else ""
