"""Rate limits with the `limits` library: per client address, per principal, and for auth.

Storage is in process memory in embedded mode and Redis when configured (so
every API process shares the counts). The strategy is the sliding-window
counter: as cheap as fixed windows, without their double burst at a window
edge. A limit that is hit answers 429 with `Retry-After` (whole seconds, at
least 1). If Redis is unreachable, requests are let through and the failure
is logged: losing rate limiting for a moment is better than refusing all
traffic.
"""

from __future__ import annotations

import math
import time
from typing import Final

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from linkflow.observability.logging import get_logger
from linkflow.services.errors import RateLimited

__all__ = ["RateLimiter", "limits_storage"]

log = get_logger(__name__)


def limits_storage(redis_url: str | None, redis: Redis | None) -> Storage:
    """Memory storage, or Redis storage over `redis`'s connection pool (the process's one)."""
    if redis_url is None or redis is None:
        return MemoryStorage()
    scheme, _, rest = redis_url.partition("://")
    return RedisStorage(
        f"async+{scheme}://{rest}",
        implementation="redispy",
        wrap_exceptions=True,
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]  # limits types its options as scalars
    )


class RateLimiter:
    """The three limits of the API, over one storage."""

    def __init__(
        self,
        storage: Storage,
        *,
        enabled: bool,
        per_ip: str,
        per_principal: str,
        auth: str,
    ) -> None:
        self.storage: Final = storage
        self.enabled: Final = enabled
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self.per_ip: Final = parse(per_ip)
        self.per_principal: Final = parse(per_principal)
        self.auth: Final = parse(auth)

    async def check(self, item: RateLimitItem, *identity: str) -> None:
        """Count one request against `item` for `identity`; `RateLimited` beyond it."""
        if not self.enabled:
            return
        try:
            allowed = await self._strategy.hit(item, *identity)
            if allowed:
                return
            stats = await self._strategy.get_window_stats(item, *identity)
        except (StorageError, RedisError, OSError) as error:
            log.error("rate_limit.storage_unavailable", error=str(error))
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"too many requests: the limit is {item}; retry in {retry_after} s",
            retry_after_s=retry_after,
        )

    async def close(self) -> None:
        if isinstance(self.storage, MemoryStorage):
            await self.storage.reset()
            timer = self.storage.timer
            if timer is not None and not timer.done():
                timer.cancel()
