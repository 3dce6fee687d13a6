"""Structured logging with structlog.

JSON lines in production (one object per event, ready for a log pipeline),
readable colourless console lines locally. Ids of the request or execution in
progress ride contextvars (`bind_context`), so every log line written while
handling them carries them without being passed around.

Secrets stay out of the log (issue 13: httpx logged `HTTP Request: GET
https://api.example/v1?apikey=...` for every node request with a query-string
credential):
- every line, whatever logger wrote it and tracebacks included, is written with
  the query string of any URL or path replaced by `?[redacted]` and any
  user:password in a URL by `***`: query strings carry API keys, signatures and
  resume tokens;
- the HTTP client, protocol and database driver libraries (`QUIET_LIBRARIES`) log
  at WARNING at the least, whatever the level: below it they narrate every request
  (aiosqlite every statement, parameters included), and
  httpcore's and h11's/h2's DEBUG records dump request headers (Authorization
  among them), so those are dropped even if a level is lowered later.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TextIO

import orjson
import structlog
from structlog.typing import EventDict

__all__ = [
    "QUIET_LIBRARIES",
    "bind_context",
    "configure_logging",
    "get_logger",
    "log_trace_ids",
    "redact",
]

QUIET_LIBRARIES: Final = ("httpx", "httpcore", "h11", "h2", "hpack", "urllib3", "botocore",
                          "aiobotocore", "s3transfer", "websockets", "aiosqlite", "asyncpg",
                          "psycopg")  # fmt: skip
"""Loggers kept at WARNING or above: below it they log URLs, headers or both; the
database drivers log every statement with its parameters (password hashes, a user's
data) at DEBUG."""
_HEADER_DUMPERS: Final = ("httpcore", "h11", "h2", "hpack")
# A URL (scheme://...) or an absolute path, then its query: everything up to
# whitespace, a quote, an angle bracket, a backslash (a JSON escape) or a fragment.
_QUERY: Final = re.compile(r"((?:\b[A-Za-z][A-Za-z0-9+.-]*://|/)[^\s?\"'<>\\]*)\?[^\s\"'<>#\\]+")
_USERINFO: Final = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@\"'<>\\]+@")


def redact(text: str) -> str:
    """`text` with URL query strings and user:password parts masked."""
    if "?" in text:
        text = _QUERY.sub(r"\1?[redacted]", text)
    if "@" in text:
        text = _USERINFO.sub(r"\1***@", text)
    return text


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """The process's formatter, whose every rendered line goes through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _DropHeaderDumps(logging.Filter):
    """Refuses the protocol libraries' records below WARNING: they hold raw headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not record.name.startswith(_HEADER_DUMPERS)


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    *, level: str = "info", json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's logging for this process.

    Library loggers (uvicorn, sqlalchemy, alembic) go through the same renderer,
    so a process writes one format only, and every line is redacted (see the
    module's docstring).
    """
    out = stream or sys.stderr
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if json:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        shared.append(structlog.processors.format_exc_info)
    else:
        # Plain tracebacks: rich's (the default) prints every frame's locals, which may
        # hold a secret, and takes ~0.1 s of CPU per traceback: a burst of them stalls
        # every request in flight.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        _RedactingFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(_DropHeaderDumps())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    # Alembic narrates every migration step at INFO; only a debugging operator wants that.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))


def _add_trace_ids(_logger: Any, _method: str, event: EventDict) -> EventDict:
    """`trace_id` and `span_id` of the span current when the line is written, if any."""
    from opentelemetry import trace  # loaded by then: tracing is on

    current = trace.get_current_span().get_span_context()
    if current.is_valid:
        event["trace_id"] = f"{current.trace_id:032x}"
        event["span_id"] = f"{current.span_id:016x}"
    return event


def log_trace_ids() -> None:
    """From now on, log lines written inside a span (LinkFlow's and the libraries') carry
    its `trace_id` and `span_id`. `observability.tracing` calls this when tracing starts:
    without it, no line pays for the lookup."""
    processors = list(structlog.get_config()["processors"])
    if _add_trace_ids not in processors:
        processors.insert(1, _add_trace_ids)  # after the contextvars: its ids win
        structlog.configure(processors=processors)
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, _RedactingFormatter):
            chain = list(formatter.foreign_pre_chain or ())
            if _add_trace_ids not in chain:
                formatter.foreign_pre_chain = [*chain[:1], _add_trace_ids, *chain[1:]]


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


@contextmanager
def bind_context(**ids: object) -> Iterator[None]:
    """Bind ids (request_id, execution_id, ...) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield
