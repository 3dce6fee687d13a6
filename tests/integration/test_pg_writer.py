"""The group-commit writer on PostgreSQL: its own connections, in pipeline mode.

What the writer's connection does when PostgreSQL drops it (a restart, a failover,
an operator's `pg_terminate_backend`): the batch that meets the loss fails and its
callers are told; the next batch connects again and is stored.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select, text

from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database, Execution
from linkflow.store.pg_batches import APPLICATION_NAME, conninfo
from tests.integration._rows import new_execution, new_workspace

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["postgres"])
def db_url(request: pytest.FixtureRequest, pg_url: str) -> str:
    return pg_url


async def writer_backends(database: Database) -> list[int]:
    async with database.session() as session:
        rows = await session.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": APPLICATION_NAME},
        )
        return [pid for (pid,) in rows]


async def test_a_dropped_connection_fails_one_batch_and_the_next_connects_again(
    database: Database, writer: GroupCommitWriter
) -> None:
    workspace = await new_workspace(database)
    execution = await new_execution(database, workspace)
    await writer.update_execution(execution.id, attempt=2)
    backends = await writer_backends(database)
    assert backends, "the writer's connection is named in pg_stat_activity"
    async with database.transaction() as session:
        for pid in backends:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    failures = 0
    deadline = time.monotonic() + 30
    attempt = 3
    while True:
        try:
            await writer.update_execution(execution.id, attempt=attempt)
            break
        except Exception:  # noqa: BLE001 - the batch that met the lost connection
            failures += 1
            assert time.monotonic() < deadline, "the writer did not connect again"
            await asyncio.sleep(0.05)
    assert failures <= 1
    async with database.session() as session:
        stored = await session.scalar(select(Execution.attempt).where(Execution.id == execution.id))
    assert stored == attempt


def test_the_database_url_becomes_libpq_parameters() -> None:
    params = conninfo("postgresql+asyncpg://ada:s%40cret@db.example:6543/flows?ssl=require")
    assert params["host"] == "db.example"
    assert params["port"] == 6543
    assert params["user"] == "ada"
    assert params["password"] == "s@cret"
    assert params["dbname"] == "flows"
    assert params["sslmode"] == "require"
    assert params["application_name"] == APPLICATION_NAME
