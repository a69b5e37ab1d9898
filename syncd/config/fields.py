"""Value types shared by the config sections.

Every section forbids unknown keys and validates strictly: TOML values are
already typed, so a quoted ``"10"`` where a number belongs is a mistake to
report, not to coerce. Integers are still accepted where a float is expected
(``timeout = 30``).
"""

from __future__ import annotations

import ipaddress
import re
import string
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo


class Section(BaseModel):
    """Base of every config table: unknown keys are errors, values are immutable.

    TOML has ``inf`` and ``nan`` floats; no syncd setting means anything with
    them (``cycle_interval = inf`` would be a daemon that never cycles), so
    every float must be finite.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


S = TypeVar("S", bound=Section)


def present_sections(table: Section, kind: type[S]) -> dict[str, S]:
    """The sub-sections of ``kind`` that ``table`` holds, by key, in field order.

    The keys of ``[apis]``, ``[sources]`` and ``[channels]`` are the names of the
    integrations: they are read from the model, never written out a second time.
    """
    found: dict[str, S] = {}
    for name in type(table).model_fields:
        value = getattr(table, name)
        if isinstance(value, kind):
            found[name] = value
    return found


Seconds = Annotated[float, Field(gt=0)]
"""A duration in seconds (float, > 0)."""

Share = Annotated[float, Field(ge=0, le=1)]
"""A fraction between 0 and 1."""

Rate = Annotated[float, Field(gt=0)]
"""A request rate (per minute, hour or day), > 0."""

Limit = Annotated[int, Field(gt=0)]
"""A request limit per window, as APIs document them: a whole number of requests, > 0.
Strict, so ``0.5``, ``30.0`` or ``"30"`` are refused rather than rounded."""

ByteSize = Annotated[int, Field(ge=1024)]
"""A size in bytes, at least 1 KiB."""

Count = Annotated[int, Field(ge=0)]
"""A whole number of units, >= 0."""

NonEmpty = Annotated[str, Field(min_length=1)]


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if parts.fragment:
        raise ValueError("a URL here takes no #fragment")
    return value


_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: traffic that never leaves the machine."""
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_api_url(value: str) -> str:
    """An API URL carries credentials (tokens, secrets): TLS and no userinfo.

    Plain ``http://`` is allowed only to a loopback host (the sandbox, a local
    proxy); anywhere else a token or client secret would cross the network in
    clear text. ``user:pass@`` would put a password in a config value that is
    logged and shown in errors, and httpx would send it as Basic auth too.
    """
    parts = urlsplit(value)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("a URL here takes no user:password@ (give credentials as secrets)")
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        raise ValueError(
            f"must be https:// (plain http is allowed only to a loopback host): {value!r}"
        )
    return value


def _check_base_url(value: str) -> str:
    if urlsplit(value).query:
        raise ValueError("a base URL takes no query")
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_check_url), AfterValidator(_check_api_url)]
"""An absolute https URL (http only to loopback), no userinfo, kept exactly as written
(token endpoints may need their slash)."""

BaseUrl = Annotated[Url, AfterValidator(_check_base_url)]
"""An API's base URL; a trailing slash is dropped so documented paths join cleanly."""

_LOCATION = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_RESERVED_LOCATIONS = frozenset({"reserved"})


def _check_location_name(value: str) -> str:
    if not _LOCATION.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a location name (lower-case letters, digits, '_', '.', '-')"
        )
    if value in _RESERVED_LOCATIONS:
        # Reservation pools are syncd's own `reserved:<channel>` locations.
        raise ValueError(f"{value!r} is reserved for syncd's reservation pools")
    return value


LocationName = Annotated[str, AfterValidator(_check_location_name)]
"""The name a source gives its location (``activeants``) or location prefix (``astral``)."""


_LOCATION_ID = re.compile(r"[A-Za-z0-9_.-]+")


def _check_location_ref(value: str) -> str:
    if value == "*":
        return value
    name, colon, rest = value.partition(":")
    _check_location_name(name)
    if colon and rest != "*" and not _LOCATION_ID.fullmatch(rest):
        raise ValueError(f"{value!r}: write '{name}', '{name}:*' or '{name}:<id>'")
    return value


LocationRef = Annotated[str, AfterValidator(_check_location_ref)]
"""A location a rule or an order refers to: ``activeants``, ``astral:<uuid>`` or ``astral:*``."""


def _to_path(value: Any) -> Any:
    if isinstance(value, str):
        if not value:
            raise ValueError("must not be empty")
        return Path(value)
    return value


def _to_optional_path(value: Any) -> Any:
    return None if value == "" else _to_path(value)  # `lock_file = ""` means "the default"


def _against_base(value: Path | None, info: ValidationInfo) -> Path | None:
    """Relative paths are relative to the config file (its directory is the context's base_dir)."""
    if value is None or value.is_absolute():
        return value
    base = (info.context or {}).get("base_dir")
    return Path(base) / value if base is not None else value


ConfigPath = Annotated[Path, BeforeValidator(_to_path), AfterValidator(_against_base)]
"""A filesystem path, relative to the config file's directory."""

OptionalConfigPath = Annotated[
    Path | None, BeforeValidator(_to_optional_path), AfterValidator(_against_base)
]
"""Like `ConfigPath`; ``""`` or no value means unset."""


def check_path_template(value: str, allowed: frozenset[str], required: frozenset[str]) -> str:
    """Check a ``str.format`` template names only ``allowed`` fields and all of ``required``."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"bad template {value!r}: {exc}") from None
    unknown = fields - allowed
    if unknown:
        names = ", ".join("{" + name + "}" for name in sorted(unknown))
        raise ValueError(
            f"unknown placeholder {names}; use {', '.join('{' + a + '}' for a in sorted(allowed))}"
        )
    missing = required - fields
    if missing:
        raise ValueError(f"must contain {', '.join('{' + m + '}' for m in sorted(missing))}")
    return value
