"""What never reaches a log line: credentials, tokens and anything shaped like them.

Secrets are scrubbed by `Redactor`, which :mod:`syncd.logs` runs just before
rendering, after exceptions and stack traces have been formatted into text:

- values under sensitive keys (``authorization``, ``token``, ``client_secret``,
  ``set-cookie`` ...), case-insensitively, in nested mappings, lists and
  ``(name, value)`` header pairs;
- ``Bearer <token>``, ``Authorization: ...`` and ``client_secret=...``-style
  fragments inside any string (URLs, form bodies, JSON text, tracebacks);
- JSON Web Tokens (``eyJ....eyJ....``) anywhere, and a value after a key such
  as ``password:`` in prose when it is token-shaped (has a digit, or 20
  characters without a break) -- "token: expired" and "token request
  refused" stay readable, and so does ``POST /oauth/token: 500`` (a path);
- any value registered with `register_secret` -- the config loader registers
  every resolved credential, so even an f-string that embeds one is masked --
  and the newest access tokens the HTTP layer obtained (`register_token`).
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from structlog.typing import EventDict, WrappedLogger

REDACTED = "[redacted]"

MIN_SECRET_LENGTH = 4
"""Shorter registered values are ignored: masking every ``abc`` in every log
line would make the journal unreadable, and no credential syncd uses is that
short."""

MAX_TRANSIENT_SECRETS = 32
"""Access tokens masked by value at once (the newest); older ones have expired."""

SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "x_api_key",
        "cookie",
        "set_cookie",
        "private_key",
    }
)
"""Key names (lower case, ``-`` read as ``_``) whose values are always masked."""

_SENSITIVE_SUFFIXES = ("_token", "_secret", "_password", "_api_key", "_apikey", "_cookie")

_MAX_DEPTH = 12
"""Nesting deeper than this is replaced wholesale rather than walked (cycles)."""

# Key names as they appear inside free text: JSON, reprs, query strings, headers.
# Not after a "/": ``POST /oauth/token: 500`` is a path and its status, not a field.
_TEXT_KEY = (
    r"(?<![A-Za-z0-9_.\-/])[A-Za-z0-9_.\-]*?"
    r"(?:token|secret|password|passwd|api[_\-]?key|apikey|authorization|cookie)"
)
_QUOTED_FIELD = re.compile(
    # "key": "value", 'key'='value': keep the quotes, mask the value.
    r"""(?P<key>(?P<q>["'])?""" + _TEXT_KEY + r"""(?(q)(?P=q))\s*[:=]\s*)"""
    r"""(?P<vq>["'])(?:(?!(?P=vq)).)*(?P=vq)""",
    re.IGNORECASE | re.DOTALL,
)
_QUOTED_PAIR = re.compile(
    # ('key', 'value') as a repr prints a header pair. Only after "(" or "[": in
    # JSON, ``"event": "token", "msg": ...`` is a value followed by the next key.
    r"""(?P<key>[(\[]\s*(?P<q>["'])""" + _TEXT_KEY + r"""(?P=q)\s*,\s*)"""
    r"""(?P<vq>["'])(?:(?!(?P=vq)).)*(?P=vq)""",
    re.IGNORECASE | re.DOTALL,
)
_VALUE = r"(?!\[redacted\])[^\s&,;\"'<>#\])}]+"
_BARE_FIELD = re.compile(
    # key=value and key:value in URLs and form bodies: whatever the value.
    r"(?P<key>" + _TEXT_KEY + r"[\"']?[:=])" + _VALUE,
    re.IGNORECASE,
)
_PROSE_FIELD = re.compile(
    # "key: value" / "key = value" in prose: only a token-shaped value goes, so
    # "token: expired" or "secret: none configured" stay readable.
    r"(?P<key>" + _TEXT_KEY + r"[\"']?(?:\s+[:=]\s*|[:=]\s+))"
    r"(?=[^\s&,;\"'<>#\])}]*?(?:[0-9]|[^\s&,;\"'<>#\])}]{20}))" + _VALUE,
    re.IGNORECASE,
)
_HEADER_LINE = re.compile(
    # An HTTP header line: the whole value goes (cookies carry several pairs).
    r"(?P<key>(?<![A-Za-z0-9_\-])(?:proxy-authorization|authorization|set-cookie|cookie)\s*:[ \t]*+)"
    r"(?![\"'])(?!\[redacted\])[^\r\n]+",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\bbearer\s+)(?!\[redacted\])[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_URL_PASSWORD = re.compile(
    r"(?P<key>\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)(?!\[redacted\])[^/\s@]+(?=@)", re.IGNORECASE
)
_JWT = re.compile(
    # A JSON Web Token (three base64url parts, header and payload JSON objects):
    # OAuth access tokens often are one, and no word of prose looks like it.
    r"(?P<key>)\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*"
)


def _mask_after_key(match: re.Match[str]) -> str:
    quote_char = match.groupdict().get("vq") or ""
    return f"{match.group('key')}{quote_char}{REDACTED}{quote_char}"


_TEXT_PATTERNS = (
    _HEADER_LINE,
    _BEARER,
    _JWT,
    _QUOTED_FIELD,
    _QUOTED_PAIR,
    _BARE_FIELD,
    _PROSE_FIELD,
    _URL_PASSWORD,
)


def _normalise_key(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def is_sensitive_key(key: object) -> bool:
    """True when a mapping key or header name names a secret."""
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    name = _normalise_key(key)
    return name in SENSITIVE_KEYS or name.endswith(_SENSITIVE_SUFFIXES)


def _variants(secret: str) -> set[str]:
    """The ways a secret shows up in text: raw, URL/form-encoded, JSON/repr-escaped."""
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Redactor:
    """Scrubs secrets from structlog event dicts; also a structlog processor.

    Pure apart from its registry of runtime secrets, which is guarded by a
    lock so the config loader may register from any thread.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._transient: deque[str] = deque(maxlen=MAX_TRANSIENT_SECRETS)
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str) -> None:
        """Mask ``secret`` (and its encoded forms) wherever it appears from now on."""
        value = secret.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            self._secrets |= _variants(value)
            self._compile()

    def register_transient(self, secret: str) -> None:
        """Mask a short-lived secret (an access token) while it is among the newest few.

        Tokens are renewed every hour or so for months: keeping every one would
        grow the pattern without end, and an expired token is worth nothing.
        """
        value = secret.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value in self._transient:
                return
            self._transient.append(value)
            self._compile()

    def _compile(self) -> None:
        forms = set(self._secrets)
        for value in self._transient:
            forms |= _variants(value)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None

    def scrub_text(self, text: str) -> str:
        """``text`` with every registered secret and secret-looking fragment masked."""
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        for fragment in _TEXT_PATTERNS:
            text = fragment.sub(_mask_after_key, text)
        return text

    def scrub_registered(self, text: str) -> str:
        """Mask only registered secrets: the last-resort pass over a rendered line."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def scrub(self, value: Any, _depth: int = 0) -> Any:
        """A copy of ``value`` with secrets masked; plain numbers and None pass through."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.scrub_text(value)
        if _depth >= _MAX_DEPTH:
            return REDACTED
        if isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "replace")
            scrubbed = self.scrub_text(text)
            return value if scrubbed == text else scrubbed
        if isinstance(value, Mapping):
            return {
                self.scrub(key, _depth + 1): self._scrub_field(key, item, _depth)
                for key, item in value.items()
            }
        if isinstance(value, tuple) and len(value) == 2 and is_sensitive_key(value[0]):
            # A (name, value) header pair, as httpx and ASGI carry them.
            return (value[0], self._masked(value[1]))
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.scrub(item, _depth + 1) for item in value]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, BaseException):
            return f"{type(value).__name__}: {self.scrub_text(str(value))}"
        # Anything else is rendered through repr(): mask it only if that leaks.
        shown = repr(value)
        scrubbed = self.scrub_text(shown)
        return value if scrubbed == shown else scrubbed

    def _scrub_field(self, key: object, value: Any, depth: int) -> Any:
        if is_sensitive_key(key):
            return self._masked(value)
        return self.scrub(value, depth + 1)

    @staticmethod
    def _masked(value: Any) -> Any:
        # None and "" say "no secret configured", which is worth seeing.
        return value if value is None or value in ("", b"") else REDACTED

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        scrubbed: EventDict = self.scrub(event_dict)
        return scrubbed


_DEFAULT_REDACTOR = Redactor()


def default_redactor() -> Redactor:
    """The process-wide redactor that `configure_logging` installs by default."""
    return _DEFAULT_REDACTOR


def register_secret(value: str) -> None:
    """Never log ``value``: called by the config loader for every resolved secret."""
    _DEFAULT_REDACTOR.register(value)


def register_token(value: str) -> None:
    """Never log this access token: called by the HTTP layer for every token it obtains."""
    _DEFAULT_REDACTOR.register_transient(value)
