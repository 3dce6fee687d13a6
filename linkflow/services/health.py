"""Readiness: can this process reach what it needs (the database, and Redis when configured)?

Each check has its own short timeout, so a hung dependency makes the probe
answer "not ready" quickly instead of hanging the load balancer's request.
"""

from __future__ import annotations

import asyncio
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from linkflow.store import Database, StoreUnavailable

__all__ = ["Health"]

CHECK_TIMEOUT_S: Final = 2.0


class Health:
    def __init__(self, database: Database, redis: Redis | None) -> None:
        self.database = database
        self.redis = redis

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

    async def check(self) -> dict[str, str]:
        """Each dependency's status: ``"ok"`` or why not."""
        checks = {"database": self._database()}
        if self.redis is not None:
            checks["redis"] = self._redis()
        results = await asyncio.gather(*checks.values())
        return dict(zip(checks, results, strict=True))
