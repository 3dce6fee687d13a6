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


class TestSecretsStayOutOfTheLog:
    """Issue 13: httpx logged every node request's URL, query-string credentials included."""

    def test_query_strings_and_userinfo_of_any_logger_are_redacted(self) -> None:
        """A library's line, one of ours and a traceback: each URL's query is `?[redacted]`,
        a path's query too, a user:password `***`; text with a plain `?` is left alone."""
        out = io.StringIO()
        configure_logging(level="info", json=True, stream=out)
        logging.getLogger("some.client").warning(
            "HTTP Request: GET %s", "https://api.example/v1?apikey=k3y&page=2"
        )
        get_logger("test").warning("called", url="https://ada:pa55@db.example/x?sig=s1g")
        try:
            raise ValueError("for url 'http://h/p?token=t0k'")
        except ValueError:
            logging.getLogger("other.lib").exception("GET /webhooks/w?token=t0k failed? yes")
        text = out.getvalue()
        for secret in ("k3y", "pa55", "s1g", "t0k"):
            assert secret not in text
        assert "https://api.example/v1?[redacted]" in text
        assert "https://***@db.example/x?[redacted]" in text
        assert "/webhooks/w?[redacted] failed? yes" in text

    def test_http_libraries_log_nothing_below_warning_even_at_debug(self) -> None:
        """httpx narrates requests and httpcore dumps headers at DEBUG: neither reaches the
        log at level debug, and a header dump is dropped even if a level is lowered later."""
        out = io.StringIO()
        configure_logging(level="debug", json=False, stream=out)
        logging.getLogger("httpx").info("HTTP Request: GET http://h/")
        logging.getLogger("httpcore.http11").debug("send_request_headers authorization=Bearer x")
        logging.getLogger("httpcore").setLevel(logging.DEBUG)
        logging.getLogger("httpcore.http11").debug("receive_response_headers cookie=c00kie")
        logging.getLogger("httpx").warning("shown")
        get_logger("test").debug("ours at debug")
        text = out.getvalue()
        assert "HTTP Request" not in text
        assert "authorization" not in text
        assert "c00kie" not in text
        assert "shown" in text
        assert "ours at debug" in text
