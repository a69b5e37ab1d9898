"""syncd's log pipeline: JSON lines, console, stdlib routing, and no secret ever printed."""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import structlog

from syncd.logs import LogFormat, configure_logging
from syncd.redaction import REDACTED, Redactor, default_redactor, register_secret

# Distinctive values that must never reach the output.
SECRET = "s3cr3t-Qz7xv9wLr2"
REGISTERED = "ank-client-SECRET-8d2f/p@ss+1"  # needs URL/form/JSON encoding


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    syncd_level = logging.getLogger("syncd").level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("syncd").setLevel(syncd_level)
    logging.captureWarnings(False)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _configured(
    fmt: LogFormat = "json", level: str = "info", stream: io.StringIO | None = None
) -> tuple[Any, io.StringIO]:
    out = io.StringIO() if stream is None else stream
    configure_logging(fmt, level, out, redactor=Redactor([REGISTERED]))
    return structlog.get_logger("syncd.test"), out


def _json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


# --- format ------------------------------------------------------------------


def test_json_lines_carry_timestamp_level_event_and_context() -> None:
    log, out = _configured("json")
    structlog.contextvars.bind_contextvars(request_id="req-42")

    log.info("push.sent", channel="ankorstore", variants=50, status=200)

    (line,) = _json_lines(out)
    assert list(line)[:3] == ["timestamp", "level", "event"]
    assert line["event"] == "push.sent"
    assert line["level"] == "info"
    assert line["request_id"] == "req-42"
    assert (line["channel"], line["variants"], line["status"]) == ("ankorstore", 50, 200)
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() == UTC.utcoffset(None)


def test_level_threshold_drops_quieter_events() -> None:
    log, out = _configured("json", level="warning")
    log.info("source.page_recorded")
    log.warning("source.stale", source="activeants")

    assert [line["event"] for line in _json_lines(out)] == ["source.stale"]


def test_debug_level_lets_debug_events_through() -> None:
    log, out = _configured("json", level="DEBUG")
    log.debug("ratelimit.budget", remaining=12)
    assert [line["event"] for line in _json_lines(out)] == ["ratelimit.budget"]


def test_logs_go_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    # stdout belongs to a command's own output (`syncd once --json`).
    configure_logging("json", "info")
    structlog.get_logger("syncd.test").warning("source.stale", source="astral")
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err)["event"] == "source.stale"


@pytest.mark.parametrize(("fmt", "level"), [("json", "loud"), ("xml", "info")])
def test_unknown_format_or_level_is_refused(fmt: Any, level: str) -> None:
    with pytest.raises(ValueError, match="unknown log"):
        configure_logging(fmt, level, io.StringIO())


def test_auto_writes_json_when_not_a_terminal() -> None:
    log, out = _configured("auto")
    log.info("daemon.started")
    assert _json_lines(out)[0]["event"] == "daemon.started"


def test_auto_is_readable_on_a_terminal() -> None:
    log, out = _configured("auto", stream=_Terminal())
    log.info("daemon.started", channels=2)

    text = out.getvalue()
    assert "daemon.started" in text
    assert "channels" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_stdlib_records_join_the_pipeline_at_warning_and_above() -> None:
    _, out = _configured("json", level="debug")
    logging.getLogger("httpx").info("HTTP Request: GET https://example.test/ 200")
    logging.getLogger("httpx").warning("HTTP Request: GET %s %d", "https://example.test/", 503)

    (line,) = _json_lines(out)
    assert line["event"] == "HTTP Request: GET https://example.test/ 503"
    assert line["level"] == "warning"
    assert line["logger"] == "httpx"
    assert "timestamp" in line


def test_reconfiguring_does_not_duplicate_stdlib_output() -> None:
    _configured("json")
    _, out = _configured("json")
    logging.getLogger("uvicorn.error").error("bind failed")
    assert len(_json_lines(out)) == 1


# --- redaction: every shape a secret can take -----------------------------------

_KEY_NAMES = [
    "authorization",
    "Authorization",
    "token",
    "access_token",
    "refresh_token",
    "password",
    "secret",
    "client_secret",
    "api_key",
    "cookie",
    "Set-Cookie",
    "X-API-Key",
    "ankorstore_client_secret",
]


@dataclass
class _Credentials:
    client_id: str
    client_secret: str


def _log_exception(log: Any) -> None:
    try:
        raise RuntimeError(f"token endpoint rejected client secret {REGISTERED}")
    except RuntimeError:
        log.exception("auth.refresh_failed", api="SKU-1")


def _log_chained_exception(log: Any) -> None:
    try:
        try:
            raise ValueError(f"bad credential {REGISTERED!r}")
        except ValueError as inner:
            raise ConnectionError("refresh failed") from inner
    except ConnectionError:
        log.exception("auth.refresh_failed", sku="SKU-1")


def _log_exception_as_value(log: Any) -> None:
    log.warning("auth.refresh_failed", error=PermissionError(f"401 for {REGISTERED} on SKU-1"))


def _log_stdlib(log: Any) -> None:
    logging.getLogger("httpx").warning(
        "HTTP Request: POST %s",
        f"https://api.example.test/oauth/token?client_id=SKU-1&client_secret={SECRET}",
    )


def _log_stdlib_exception(log: Any) -> None:
    try:
        raise OSError(f"connect failed: Authorization: Bearer {SECRET}")
    except OSError:
        logging.getLogger("uvicorn.error").exception("request for SKU-1 failed")


# Each case logs SECRET or REGISTERED in one shape, next to a harmless "SKU-1".
_CASES: dict[str, Callable[[Any], None]] = {
    "nested-dict": lambda log: log.info(
        "http.request", request={"headers": {"Authorization": f"Bearer {SECRET}"}, "sku": "SKU-1"}
    ),
    "deeply-nested": lambda log: log.info(
        "http.request", a=[{"b": {"c": [{"Refresh-Token": SECRET}]}}], sku="SKU-1"
    ),
    "header-tuples": lambda log: log.info(
        "http.request", headers=[("X-Api-Key", SECRET), ("Accept", "SKU-1")]
    ),
    "header-tuples-bytes": lambda log: log.info(
        "http.request", headers=[(b"authorization", f"Bearer {SECRET}".encode()), (b"x", b"SKU-1")]
    ),
    "bearer-in-text": lambda log: log.info("http.request", detail=f"sent Bearer {SECRET} SKU-1"),
    "header-line-in-text": lambda log: log.info(
        "http.request", raw=f"GET / HTTP/1.1\r\nCookie: session={SECRET}; x=1\r\nX-Sku: SKU-1"
    ),
    "client-secret-in-url": lambda log: log.info(
        "http.request",
        url=f"https://api.example.test/token?client_id=SKU-1&client_secret={SECRET}&x=1",
    ),
    "password-in-form-body": lambda log: log.info(
        "http.request", body=f"grant_type=password&username=SKU-1&password={SECRET}"
    ),
    "password-in-url-userinfo": lambda log: log.info(
        "http.request", url=f"https://syncd:{SECRET}@api.example.test/SKU-1"
    ),
    "json-text": lambda log: log.info(
        "http.response", body=f'{{"access_token": "{SECRET}", "sku": "SKU-1"}}'
    ),
    "registered-in-fstring-event": lambda log: log.info(f"using {REGISTERED} for SKU-1"),
    "registered-in-plain-value": lambda log: log.info(
        "config.loaded", note=f"x{REGISTERED}x SKU-1"
    ),
    "registered-url-encoded": lambda log: log.info(
        "http.request", body=f"client_secret_hint={quote(REGISTERED, safe='')}&sku=SKU-1"
    ),
    "registered-in-object-repr": lambda log: log.info(
        "config.loaded", creds=_Credentials(client_id="SKU-1", client_secret=REGISTERED)
    ),
    "registered-in-positional-args": lambda log: log.info("loaded %s for %s", REGISTERED, "SKU-1"),
    "exception-message": _log_exception,
    "chained-exception": _log_chained_exception,
    "exception-as-value": _log_exception_as_value,
    "stdlib-record": _log_stdlib,
    "stdlib-exception": _log_stdlib_exception,
}

_SECRETS_AS_PRINTED = [SECRET, REGISTERED, json.dumps(REGISTERED)[1:-1], "SECRET-8d2f"]


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("key", _KEY_NAMES)
def test_sensitive_keys_are_masked_whatever_their_case(fmt: LogFormat, key: str) -> None:
    log, out = _configured(fmt)
    log.info("http.request", sku="SKU-1", **{key: SECRET})

    text = out.getvalue()
    assert SECRET not in text
    assert REDACTED in text
    assert "SKU-1" in text


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize("case", sorted(_CASES))
def test_secret_never_reaches_the_output(fmt: LogFormat, case: str) -> None:
    log, out = _configured(fmt)
    _CASES[case](log)

    text = out.getvalue()
    assert text, "the event must still be logged"
    for printed in _SECRETS_AS_PRINTED:
        assert printed not in text
    assert REDACTED in text
    assert "SKU-1" in text, "redaction must not swallow what is not secret"
    if fmt == "json":
        _json_lines(out)  # still valid JSON lines


def test_register_secret_protects_the_default_pipeline() -> None:
    value = f"runtime-{uuid.uuid4().hex}"
    register_secret(value + "\n")  # read from a credential file, trailing newline and all
    out = io.StringIO()
    configure_logging("json", "info", out)

    structlog.get_logger().info(f"connected with {value}")

    assert value not in out.getvalue()
    assert default_redactor().scrub_text(value) == REDACTED


def test_lines_to_journald_carry_their_syslog_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w+") as journal:
        status = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
        configure_logging("json", "info", journal)
        log = structlog.get_logger()
        log.info("daemon.started")
        log.warning("source.stale")
        log.error("push.rejected")
        journal.seek(0)
        lines = journal.read().splitlines()

    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>"]
    assert json.loads(lines[2][3:])["event"] == "push.rejected"


def test_output_redirected_away_from_journald_is_plain_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with (tmp_path / "log").open("w+") as elsewhere:
        configure_logging("json", "info", elsewhere)
        structlog.get_logger().info("daemon.started")
        elsewhere.seek(0)
        assert json.loads(elsewhere.read())["event"] == "daemon.started"
