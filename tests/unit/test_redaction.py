"""The redactor on its own: what it masks, and what it leaves readable for operators."""

from __future__ import annotations

import pytest

from syncd.redaction import REDACTED, Redactor

# Distinctive values that must never reach the output (as in test_logs).
SECRET = "s3cr3t-Qz7xv9wLr2"
REGISTERED = "ank-client-SECRET-8d2f/p@ss+1"  # needs URL/form/JSON encoding


# --- the redactor on its own ---------------------------------------------------


def test_redactor_keeps_what_is_useful_to_operators() -> None:
    redactor = Redactor()
    event = {
        "event": "auth.token_refreshed",
        "token_url": "https://api.example.test/oauth/token",
        "token_expires_in": 3600,
        "idempotency_key": "ankorstore:order:42",
        "client_secret_file": "/run/credentials/syncd.service/ankorstore",
        "access_token": None,
        "refresh_token": "",
        "password": SECRET,
    }
    assert redactor.scrub(event) == {**event, "password": REDACTED}


def test_too_short_registered_values_are_ignored() -> None:
    redactor = Redactor(["abc", "  "])
    assert redactor.scrub_text("abc abc") == "abc abc"


def test_longest_registered_secret_is_masked_whole() -> None:
    redactor = Redactor(["abcd1234", "abcd1234-extended"])
    assert redactor.scrub_text("k=abcd1234-extended!") == f"k={REDACTED}!"


def test_masking_is_idempotent() -> None:
    redactor = Redactor([REGISTERED])
    once = redactor.scrub_text(f"Authorization: Bearer {SECRET} client_secret={REGISTERED}")
    assert redactor.scrub_text(once) == once


def test_exception_values_render_as_type_and_scrubbed_message() -> None:
    redactor = Redactor([REGISTERED])
    scrubbed = redactor.scrub({"error": PermissionError(f"401 for {REGISTERED}")})
    assert scrubbed == {"error": f"PermissionError: 401 for {REDACTED}"}


# --- over- and under-redaction ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "token request refused: 401 (invalid_client)",
        "token: expired",
        "reason: token expired",
        "secret: none configured",
        "ankorstore POST /oauth/token: response body too large (limit 65536 bytes)",
        "fabric POST /auth/token/: 503 Service Unavailable",
        '{"event": "http.token_requested", "msg": "token request budget spent"}',
        "source.poll_failed request 8c1f0e3a9b7d4e2f8a6b5c4d3e2f1a0b failed",
    ],
)
def test_ordinary_words_about_tokens_and_requests_stay_readable(text: str) -> None:
    assert Redactor().scrub_text(text) == text


JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiI5NCIsImp0aSI6IjEyMyJ9."
    "c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu"
)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"unexpected body {JWT} from server", "unexpected body"),
        ("access token: abcd1234efgh5678", "access token: "),
        ("password = correcthorsebatterystaple", "password = "),
        ("token=abc", "token="),
        ('{"access_token": "opaque"}', '{"access_token": "'),
        ("('authorization', 'Bearer xyz')", "('authorization', '"),
    ],
)
def test_token_shaped_values_are_masked(text: str, kept: str) -> None:
    scrubbed = Redactor().scrub_text(text)
    assert REDACTED in scrubbed
    assert scrubbed.startswith(kept)
    for part in ("abcd1234", "correcthorse", "=abc", "opaque", "xyz", JWT[:20]):
        assert part not in scrubbed


def test_obtained_tokens_are_masked_while_they_are_among_the_newest() -> None:
    redactor = Redactor()
    redactor.register_transient("opaque-token-1")
    assert redactor.scrub_text("sent opaque-token-1") == f"sent {REDACTED}"
    for n in range(2, 40):
        redactor.register_transient(f"opaque-token-{n}")
    # Only the newest are kept: the pattern cannot grow for months.
    assert redactor.scrub_text("opaque-token-39") == REDACTED
    assert redactor.scrub_text("opaque-token-1 ") == "opaque-token-1 "
