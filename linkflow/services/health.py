"""Readiness: can this process reach what it needs (the database, Redis when configured,
its writer)?

Each check has its own short timeout, so a hung dependency makes the probe
answer "not ready" quickly instead of hanging the load balancer's request. The
database and Redis are pinged; further checks (`add`, or `checks=`) are any
coroutine that returns when the part works: `writer_answers` sends an empty batch
through the group-commit writer (its queue, its connection or writer process, a
commit), `queue_answers` reads the queue's depth.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from linkflow.queue import Queue
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database, StoreUnavailable

__all__ = ["Check", "Health", "queue_answers", "writer_answers"]

CHECK_TIMEOUT_S: Final = 2.0
PROBE_EXECUTION: Final = uuid.UUID(int=0)
"""The execution a writer probe "updates": no column of no row (no execution has it)."""

Check = Callable[[], Awaitable[object]]
"""Returns when the part answers; raises (or outlasts the timeout) when it does not."""


def writer_answers(writer: GroupCommitWriter) -> Check:
    """Whether the writer takes and commits a batch: an update of no column, queued like
    every write. A writer whose loop died, whose process cannot start or whose database
    refuses writes (a SQLite lock held too long) does not answer."""

    async def check() -> None:
        await writer.update_execution(PROBE_EXECUTION)

    return check


def queue_answers(queue: Queue) -> Check:
    """Whether the shared queue (Redis) answers a read of its depth."""
    return queue.depth


class Health:
    def __init__(
        self, database: Database, redis: Redis | None, *, checks: Mapping[str, Check] | None = None
    ) -> None:
        self.database = database
        self.redis = redis
        self._checks: dict[str, Check] = dict(checks or {})

    def add(self, name: str, check: Check) -> None:
        """Check `name` too (ok when `check()` returns within the timeout)."""
        self._checks[name] = check

    async def _database(self) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self.database.ping()
        except TimeoutError:
            return "timed out"
        except StoreUnavailable as error:
            return str(error)
        return "ok"

    async def _redis(self) -> str:
        assert self.redis is not None
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self.redis.ping()
        except TimeoutError:
            return "timed out"
        except (RedisError, OSError) as error:
            return f"cannot reach Redis: {error}"
        return "ok"

    @staticmethod
    async def _run(check: Check) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await check()
        except TimeoutError:
            return "timed out"
        except Exception as error:  # noqa: BLE001 - reported as the part's state, not raised
            return str(error) or type(error).__name__
        return "ok"

    async def check(self) -> dict[str, str]:
        """Each dependency's status: ``"ok"`` or why not."""
        checks = {"database": self._database()}
        if self.redis is not None:
            checks["redis"] = self._redis()
        for name, check in self._checks.items():
            checks[name] = self._run(check)
        results = await asyncio.gather(*checks.values())
        return dict(zip(checks, results, strict=True))
