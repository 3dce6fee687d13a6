"""`/health/live`, `/health/ready` and `/metrics` on a worker's or a scheduler's metrics port.

A worker and a scheduler have no HTTP API, so the port `--metrics-port` opens serves
their probes too, answering as the API's do (`api.routes.health`): live is 200 while
the process runs; ready is 200 with each check's state when all are ``ok``, else a 503
problem (``code: not_ready``, the states under ``checks``, ``Retry-After: 5``), so an
orchestrator stops counting on a worker that cannot reach the database, Redis or its
writer. Everything else is prometheus-client's exposition of the registry.

The server runs in a thread of its own (the stdlib's WSGI server, a thread per
request); the checks are coroutines of the process's event loop, so a readiness
request runs them there (`run_coroutine_threadsafe`) and waits a little longer than
their own timeouts: a loop too busy to answer by then is not ready either.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine, Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from linkflow.observability.logging import get_logger

__all__ = ["Ready", "serve_metrics_and_probes"]

log = get_logger(__name__)

READY_WAIT_S: Final = 4.0
"""How long a readiness request waits for the checks (each times out after 2 s)."""
_JSON: Final = "application/json"
_PROBLEM: Final = "application/problem+json"

Ready = Callable[[], Coroutine[Any, Any, dict[str, str]]]
StartResponse = Callable[[str, list[tuple[str, str]]], object]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung probe never holds the process at exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds: no line each."""


def _answer(start: StartResponse, status: int, body: object, kind: str = _JSON,
            headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:  # fmt: skip
    data = orjson.dumps(body)
    start(f"{status} {HTTPStatus(status).phrase}",
          [("Content-Type", kind), ("Content-Length", str(len(data))), *headers])  # fmt: skip
    return [data]


def _readiness(ready: Ready, loop: asyncio.AbstractEventLoop) -> dict[str, str]:
    try:
        return asyncio.run_coroutine_threadsafe(ready(), loop).result(timeout=READY_WAIT_S)
    except TimeoutError:
        return {"process": "its event loop did not answer in time"}
    except Exception as error:  # noqa: BLE001 - a probe reports, it never raises
        return {"process": f"the checks failed: {error}"}


def serve_metrics_and_probes(
    registry: CollectorRegistry, host: str, port: int, *, ready: Ready | None = None
) -> None:
    """Serve `registry` at http://host:port/metrics and the probes beside it, from a
    thread. `ready` (None: nothing to check) runs on the event loop of the caller (see
    the module's doc)."""
    metrics = make_wsgi_app(registry)
    loop = asyncio.get_running_loop() if ready is not None else None

    def app(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/health/live":
            return _answer(start, 200, {"status": "ok", "checks": {}})  # as the API's
        if path in ("/health", "/health/ready"):
            checks = {} if ready is None or loop is None else _readiness(ready, loop)
            failed = {name: state for name, state in checks.items() if state != "ok"}
            if not failed:
                return _answer(start, 200, {"status": "ok", "checks": checks})
            detail = "; ".join(f"{name}: {state}" for name, state in failed.items())
            body = {"type": "urn:linkflow:problem:not_ready", "title": "Service Unavailable",
                    "status": 503, "detail": detail, "code": "not_ready", "errors": [],
                    "checks": checks}  # fmt: skip
            return _answer(start, 503, body, _PROBLEM, [("Retry-After", "5")])
        return metrics(environ, start)  # type: ignore[no-any-return]

    server_class = _Server6 if ":" in host else _Server
    server = make_server(host, port, app, server_class, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-and-probes", daemon=True).start()
    log.info("serving metrics and probes", url=f"http://{host}:{port}/metrics",
             probes=f"http://{host}:{port}/health/ready")  # fmt: skip
