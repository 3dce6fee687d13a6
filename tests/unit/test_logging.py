"""Structured logs: JSON lines with the ids bound for the work in progress."""

from __future__ import annotations

import io
import json
import logging

from linkflow.observability.logging import bind_context, configure_logging, get_logger


def test_json_logs_carry_bound_ids_and_library_lines_share_the_format() -> None:
    """request_id/execution_id bound in a block appear on every line inside it only."""
    out = io.StringIO()
    configure_logging(level="info", json=True, stream=out)
    with bind_context(request_id="req-1", execution_id="exe-9"):
        get_logger("test").info("node finished", node_id="a")
        logging.getLogger("some.library").warning("from the standard library")
    get_logger("test").info("after")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "node finished"
    assert lines[0]["request_id"] == "req-1"
    assert lines[0]["execution_id"] == "exe-9"
    assert lines[0]["node_id"] == "a"
    assert lines[0]["level"] == "info"
    assert lines[1]["event"] == "from the standard library"
    assert lines[1]["request_id"] == "req-1"
    assert "request_id" not in lines[2]


def test_console_logs_are_readable_lines() -> None:
    """Locally, one human-readable line per event, below-level events dropped."""
    out = io.StringIO()
    configure_logging(level="warning", json=False, stream=out)
    get_logger("test").info("hidden")
    get_logger("test").warning("shown", count=2)
    text = out.getvalue()
    assert "hidden" not in text
    assert "shown" in text
    assert "count=2" in text


def test_console_tracebacks_show_no_local_variables() -> None:
    """A logged exception names the frames, but never the values of their locals
    (a password or token in a local must not reach the log)."""
    out = io.StringIO()
    configure_logging(level="info", json=False, stream=out)

    def failing() -> None:
        secret = "hunter2-very-secret"
        raise ValueError(f"boom {len(secret)}")

    try:
        failing()
    except ValueError:
        get_logger("test").exception("it failed")
    text = out.getvalue()
    assert "it failed" in text
    assert "ValueError: boom 19" in text
    assert "in failing" in text
    assert "hunter2-very-secret" not in text
