"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._serve import Serve


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Serve]:
    """`linkflow serve` on embedded defaults in a fresh data dir; stopped after the test."""
    running = Serve(tmp_path)
    running.start()
    yield running
    running.stop()
