"""Structured logging with structlog.

JSON lines in production (one object per event, ready for a log pipeline),
readable colourless console lines locally. Ids of the request or execution in
progress ride contextvars (`bind_context`), so every log line written while
handling them carries them without being passed around.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import orjson
import structlog

__all__ = ["bind_context", "configure_logging", "get_logger"]


def _orjson_dumps(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def configure_logging(
    *, level: str = "info", json: bool = False, stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's logging for this process.

    Library loggers (uvicorn, sqlalchemy, alembic) go through the same renderer,
    so a process writes one format only.
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
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Alembic narrates every migration step at INFO; only a debugging operator wants that.
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


@contextmanager
def bind_context(**ids: object) -> Iterator[None]:
    """Bind ids (request_id, execution_id, ...) to every log line inside the block."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield
