"""Fixtures of the integration tests: the writer the execution plane writes through (in
this process, or in a child as the processes users run write), and a SQLite database
whatever backend a module runs on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database


@pytest.fixture
async def sqlite_database(sqlite_url: str) -> AsyncIterator[Database]:
    """A `Database` on a fresh SQLite file (whatever `db_url` a module runs on)."""
    database = Database(sqlite_url)
    yield database
    await database.engine.dispose()


@pytest.fixture
async def writer(database: Database) -> AsyncIterator[GroupCommitWriter]:
    """The group-commit writer on `database`, started; closed (flushed) after the test."""
    writer = GroupCommitWriter(database)
    writer.start()
    yield writer
    await writer.close()


@pytest.fixture
async def process_writer(database: Database) -> AsyncIterator[GroupCommitWriter]:
    """The writer `serve`, `api` and `worker` use: batches in a child process (one per
    connection); closed after the test."""
    writer = GroupCommitWriter(database, process=True)
    writer.start()
    yield writer
    await writer.close()
