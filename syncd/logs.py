"""syncd's log output: structured events, JSON lines for journald, no secrets.

Every log line is a structlog event with a stable name (``event="push.sent"``)
and key/value fields, written to **stderr**: stdout stays free for a command's
own output (``syncd once --json``), and under systemd journald collects stderr
like stdout. The default is one JSON object per line; on a terminal ``auto``
picks a readable console renderer instead. Records from libraries that use the
standard `logging` module (httpx, uvicorn, asyncio) go through the same
pipeline, at WARNING and above so their chatter stays out of the journal.

Under journald each JSON line starts with its syslog priority (``<3>`` for an
error), so ``journalctl -u syncd -p warning`` shows warnings and worse.

Secrets are scrubbed by :mod:`syncd.redaction` just before rendering, after
exceptions and stack traces have been formatted into text.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from syncd.redaction import Redactor, default_redactor

LogFormat = Literal["auto", "json", "console"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_FOREIGN_MIN_LEVEL = logging.WARNING
"""Third-party libraries log through the pipeline at this level or above."""

_LIBRARIES_WITH_OWN_HANDLERS = ("uvicorn", "uvicorn.access", "uvicorn.error")

_SYSLOG_PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


class _ScrubbedRenderer:
    """The final renderer, plus a registered-secret pass over its output.

    Belt and braces: the event dict is already scrubbed, but a renderer may
    call ``__str__``/``__structlog__`` on objects the dict pass only saw as
    ``repr``. When writing to journald, each line is prefixed with its syslog
    priority (``<4>`` for a warning, sd-daemon(3)), so ``journalctl -p``
    filters syncd's JSON lines by level.
    """

    def __init__(self, renderer: Processor, redactor: Redactor, *, priority_prefix: bool) -> None:
        self._renderer = renderer
        self._redactor = redactor
        self._priority_prefix = priority_prefix

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        priority = _SYSLOG_PRIORITY.get(str(event_dict.get("level", "")), 6)
        rendered = self._renderer(logger, method_name, event_dict)
        if isinstance(rendered, bytes | bytearray):
            rendered = bytes(rendered).decode("utf-8", "replace")
        line = self._redactor.scrub_registered(str(rendered))
        return f"<{priority}>{line}" if self._priority_prefix else line


def _is_journal_stream(stream: TextIO) -> bool:
    """True when ``stream`` is the journald connection systemd gave syncd.

    systemd exports ``JOURNAL_STREAM=<device>:<inode>`` of that connection
    (systemd.exec(5)); comparing it with the stream's own identity avoids
    prefixing output that was redirected elsewhere.
    """
    device, sep, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return (str(status.st_dev), str(status.st_ino)) == (device, inode)


class _PipelineHandler(logging.Handler):
    """Feeds stdlib `logging` records into the structlog pipeline and the same stream."""

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        # WriteLogger shares one lock per file, so stdlib and structlog lines never interleave.
        self._writer = structlog.WriteLogger(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.msg(self.format(record))
        except Exception:
            self.handleError(record)


_LEADING_FIELDS = ("timestamp", "level", "event", "logger")


def _leading_fields_first(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """Put when/how bad/what first, so a JSON line reads well in ``journalctl``."""
    ordered = {key: event_dict[key] for key in _LEADING_FIELDS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; use one of debug, info, warning, error, critical"
        ) from None


def _wants_console(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return bool(isatty is not None and isatty())
    if fmt in ("json", "console"):
        return fmt == "console"
    raise ValueError(f"unknown log format {fmt!r}; use auto, json or console")


def _renderer_for(console: bool, out: TextIO) -> Processor:
    if console:
        return structlog.dev.ConsoleRenderer(
            colors=bool(getattr(out, "isatty", lambda: False)()),
            exception_formatter=structlog.dev.plain_traceback,
        )
    return structlog.processors.JSONRenderer()


def configure_logging(
    fmt: LogFormat = "auto",
    level: str | int = "info",
    stream: TextIO | None = None,
    *,
    redactor: Redactor | None = None,
) -> None:
    """Set up structlog and stdlib logging for the whole process.

    Lines go to ``stream`` (default: stderr). ``fmt="auto"`` writes JSON
    lines unless ``stream`` is a terminal. Events
    carry an ISO-8601 UTC ``timestamp``, ``level`` and any contextvars bound
    with ``structlog.contextvars.bind_contextvars`` (request ids). Calling it
    again replaces the previous configuration (SIGHUP may change the level).
    Raises ValueError for an unknown format or level.
    """
    out = sys.stderr if stream is None else stream
    threshold = _parse_level(level)
    console = _wants_console(fmt, out)
    scrubber = default_redactor() if redactor is None else redactor

    # Exceptions and stacks become text *before* the redactor, so their
    # messages are scrubbed like any other string.
    finish: list[Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        scrubber,
    ]
    if not console:
        finish.append(_leading_fields_first)
    finish.append(
        _ScrubbedRenderer(
            _renderer_for(console, out),
            scrubber,
            priority_prefix=not console and _is_journal_stream(out),
        )
    )

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *finish,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        context_class=dict,
        # Not cached, so a reconfiguration reaches loggers created at import time.
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, threshold, finish)


def _route_stdlib(out: TextIO, threshold: int, finish: list[Processor]) -> None:
    """Send stdlib `logging` records through ``finish`` to ``out``."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *finish],
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _PipelineHandler):
            root.removeHandler(handler)
    root.addHandler(_PipelineHandler(out, formatter))
    root.setLevel(max(threshold, _FOREIGN_MIN_LEVEL))
    # syncd's own stdlib loggers (if any) follow the configured level.
    logging.getLogger("syncd").setLevel(threshold)
    for name in _LIBRARIES_WITH_OWN_HANDLERS:
        # uvicorn may install its own handlers; its records belong in our pipeline.
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
        library.setLevel(logging.NOTSET)
    logging.captureWarnings(True)
