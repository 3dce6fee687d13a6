"""Revocations every API process sees at once: each process's `AuthCache` is cleared.

`AuthCache` keeps a checked credential for a few seconds per process; a change in one
process clears only that process's cache, and the others see it within their TTL. For
the changes that must bite everywhere at once (an instance admin suspending a user),
`revoke_everywhere` clears this process's cache and publishes on a Redis channel that
every API process of the installation listens to (`listening`, run for the app's
lifetime), and each clears its own.

Without Redis there is no channel: a single `linkflow serve` has one cache and is
exact; several `linkflow api` processes on one PostgreSQL without Redis see the change
within `LINKFLOW_AUTH_CACHE_TTL_S` (0 makes every process check every request).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Final

from redis.asyncio import Redis
from redis.exceptions import RedisError

from linkflow.observability.logging import get_logger
from linkflow.services.auth_cache import AuthCache

__all__ = ["AuthRevocations"]

log = get_logger(__name__)

RESUBSCRIBE_DELAY_S: Final = 1.0
"""After Redis went away, the listener tries again this often (and clears the cache on
its return: what was published meanwhile was missed)."""


class AuthRevocations:
    def __init__(self, cache: AuthCache, redis: Redis | None, prefix: str) -> None:
        self.cache = cache
        self.redis = redis
        self.channel = f"{prefix}:auth:revoked"

    async def revoke_everywhere(self) -> None:
        """Clear this process's cache and every other API process's."""
        self.cache.clear()
        if self.redis is not None:
            await self.redis.publish(self.channel, b"clear")

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """Clear this process's cache whenever another process revokes, while inside."""
        if self.redis is None:
            yield
            return
        subscribed = asyncio.Event()
        task = asyncio.create_task(self._listen(self.redis, subscribed), name="auth-revocations")
        with contextlib.suppress(TimeoutError):
            # Subscribed before the app serves, so no revocation slips past at start-up.
            await asyncio.wait_for(subscribed.wait(), timeout=5)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, redis: Redis, subscribed: asyncio.Event) -> None:
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.cache.clear()  # anything published while we were away
                    subscribed.set()
                    async for _message in pubsub.listen():
                        self.cache.clear()
            except (RedisError, OSError) as error:
                log.warning("auth_revocations.redis_unreachable", error=str(error))
                await asyncio.sleep(RESUBSCRIBE_DELAY_S)
