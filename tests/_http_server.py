"""A real HTTP server on a loopback address, for tests of outgoing requests.

`serve(routes, host=...)` starts a `ThreadingHTTPServer` on a free port of
`host` (127.0.0.1 by default; Linux routes all of 127.0.0.0/8 to loopback, so
127.0.0.2 is a second, distinct address), optionally with TLS, and records
every request it receives. A route is a function of the recorded request that
returns a `Reply`; `HANG` makes the handler wait until the server stops, for
timeout tests. Readiness is polled against a deadline.

Never bind anything but a loopback address here.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

__all__ = ["HANG", "Recorded", "Reply", "Route", "TestServer", "form_parts", "serve"]

READY_TIMEOUT_S: Final = 10.0
HANG_LIMIT_S: Final = 30.0
"""A hanging handler gives up after this even if the server is never stopped."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    client_address: str


@dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200, **headers: str) -> Reply:
        import json

        return cls(status, json.dumps(value), headers, "application/json")


HANG: Final = Reply(status=-1)
"""A route returning this waits until the server stops (or `HANG_LIMIT_S`)."""

Route = Callable[[Recorded], Reply]


class TestServer:
    """A running server: its address, the requests it received, and a way to stop it."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, host: str, routes: dict[str, Route], tls: ssl.SSLContext | None) -> None:
        self.host = host
        self.routes = routes
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, 0), _handler_for(self))
        self._httpd.daemon_threads = True
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def hits(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler_for(server: TestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            recorded = Recorded(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
                client_address=self.client_address[0],
            )
            server.requests.append(recorded)
            route = server.routes.get(parts.path)
            reply = route(recorded) if route else Reply(404, "no such route")
            if reply is HANG:
                server.stopping.wait(HANG_LIMIT_S)
                self.close_connection = True
                return
            self._reply(reply)

        def _reply(self, reply: Reply) -> None:
            body = reply.body.encode() if isinstance(reply.body, str) else reply.body
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, format: str, *args: Any) -> None:
            return None  # keep test output quiet

    return Handler


@contextlib.contextmanager
def serve(
    routes: dict[str, Route], *, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> Iterator[TestServer]:
    """Run a server for the duration of the `with` block."""
    server = TestServer(host, routes, tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def form_parts(request: Recorded) -> dict[str, tuple[str | None, str | None, bytes]]:
    """A multipart/form-data body: field name → (file name, content type, bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.body)
    parts: dict[str, tuple[str | None, str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        content_type = part["content-type"]
        assert isinstance(payload, bytes)
        shown_type = None if content_type is None else str(content_type)
        parts[str(name)] = (part.get_filename(), shown_type, payload)
    return parts
