"""What every fake shares: a recording loopback server, injected faults, JSON bodies.

A fake answers every path through its `handle` (its routes may hold ids, as REST
paths do); `fail_next(reply, times)` makes the next requests get `reply` instead,
so a test can stage a 429, a 500, a hang (`HANG`) or a malformed body and then see
the retry reach the real route. Tests synchronise on `requests` (the server's
record, in arrival order), never on time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests._http_server import HANG, Recorded, Reply, Route, TestServer, serve

__all__ = ["HANG", "FakeApi", "Recorded", "Reply", "body_json", "run_fake"]


def body_json(request: Recorded) -> Any:
    """The request's JSON body (None when it has none or it is not JSON)."""
    try:
        return json.loads(request.body) if request.body else None
    except ValueError:
        return None


class FakeApi:
    """The base of a fake: one handler for every path, staged faults, the running server."""

    def __init__(self) -> None:
        self.server: TestServer | None = None
        self._faults: list[Reply] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        assert self.server is not None, "the fake is not running"
        return self.server.url("").rstrip("/")

    @property
    def requests(self) -> list[Recorded]:
        assert self.server is not None, "the fake is not running"
        return self.server.requests

    def fail_next(self, reply: Reply, times: int = 1) -> None:
        """Answer the next `times` requests with `reply`, whatever they ask."""
        with self._lock:
            self._faults.extend([reply] * times)

    def handle(self, request: Recorded) -> Reply:
        """The service's answer to `request`; subclasses route by method and path."""
        raise NotImplementedError

    def answer(self, request: Recorded) -> Reply:
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                return fault
            return self.handle(request)


class _EveryPath(dict[str, Route]):
    """The server's route table, answering every path with the fake's handler."""

    def __init__(self, route: Route) -> None:
        super().__init__()
        self._route = route

    def get(self, _path: str, _default: Any = None) -> Route:
        return self._route


F = TypeVar("F", bound=FakeApi)


@contextmanager
def run_fake(fake: F) -> Iterator[F]:
    """Serve `fake` on 127.0.0.1 for the `with` block."""
    with serve(_EveryPath(fake.answer)) as server:
        fake.server = server
        try:
            yield fake
        finally:
            fake.server = None
