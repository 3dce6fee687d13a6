"""Fixtures of the integration tests: the writer the execution plane writes through."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database


@pytest.fixture
async def writer(database: Database) -> AsyncIterator[GroupCommitWriter]:
    """The group-commit writer on `database`, started; closed (flushed) after the test."""
    writer = GroupCommitWriter(database)
    writer.start()
    yield writer
    await writer.close()
