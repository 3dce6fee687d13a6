"""A PostgreSQL process keeps its connections: a burst of concurrent sessions (a worker
running many executions) reuses them instead of opening and closing one per use."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from linkflow.store import Database
from linkflow.store.database import POSTGRES_POOL_SIZE

pytestmark = pytest.mark.postgres


async def _backends(database: Database, count: int) -> set[int]:
    """The server processes that served `count` concurrent sessions."""
    gate, all_open = asyncio.Event(), asyncio.Event()
    pids: set[int] = set()

    async def one() -> None:
        async with database.session() as session:
            pids.add(int((await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
            if len(pids) == count:
                all_open.set()
            await gate.wait()  # hold the connection until all are open at once

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    async with asyncio.timeout(10):  # a pool too small never opens them all at once
        await all_open.wait()
    gate.set()
    await asyncio.gather(*tasks)
    return pids


async def test_a_burst_of_sessions_reuses_the_connections_of_the_last_one(pg_url: str) -> None:
    database = Database(pg_url)
    try:
        first = await _backends(database, POSTGRES_POOL_SIZE)
        second = await _backends(database, POSTGRES_POOL_SIZE)
        assert second == first  # no connection closed and opened again between bursts
        assert POSTGRES_POOL_SIZE >= 16
    finally:
        await database.dispose()


async def test_the_pool_size_is_a_setting(pg_url: str) -> None:
    database = Database(pg_url, pool_size=2)
    try:
        first = await _backends(database, 2)
        burst = await _backends(database, 4)  # two beyond the pool: opened, then closed
        assert first <= burst
        assert len(burst) == 4
        assert await _backends(database, 2) <= burst
    finally:
        await database.dispose()
