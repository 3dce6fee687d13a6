"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._http_server import serve
from tests.e2e._cluster import Gate
from tests.e2e._serve import Serve


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Serve]:
    """`linkflow serve` on embedded defaults in a fresh data dir; stopped after the test."""
    running = Serve(tmp_path)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A loopback HTTP gate a node calls; it answers once the test opens it."""
    held = Gate()
    with serve({"/gate": held.route}) as server:
        held.server = server
        yield held
        held.opened.set()
