"""Rate limits with the `limits` library: per client address, per principal, for auth,
and per webhook endpoint.

Storage is in process memory in embedded mode and Redis when configured (so
every API process shares the counts). The strategy is the sliding-window
counter: as cheap as fixed windows, without their double burst at a window
edge. A limit that is hit answers 429 with `Retry-After` (whole seconds, at
least 1). If Redis is unreachable, requests are let through and the failure
is logged: losing rate limiting for a moment is better than refusing all
traffic.

Webhooks are not counted against the per-address limit (one service calling a
webhook 20 times a second is normal); each endpoint has its own limit instead,
for all its callers together: the node's `rate_limit`, else
`LINKFLOW_WEBHOOK_RATE_LIMIT` (unset: none). A call to an endpoint with no
limit costs a dictionary lookup, no storage round trip. Calls to unknown
endpoints do count against the per-address limit, so scanning for ids is
still limited.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Final

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from linkflow.observability.logging import get_logger
from linkflow.services.errors import RateLimited

__all__ = ["UNLIMITED", "RateLimiter", "WebhookLimits", "limits_storage"]

log = get_logger(__name__)

UNLIMITED: Final = "unlimited"
"""A webhook node's `rate_limit` that lifts the server's default."""


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
        await self.hit(item, *identity)

    async def hit(self, item: RateLimitItem, *identity: str, code: str | None = None) -> None:
        """`check`, whether or not the API's limits are enabled (a webhook node's own
        limit is the workflow's choice, not the server's); 429s carry `code`."""
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
            code=code,
        )

    async def close(self) -> None:
        if isinstance(self.storage, MemoryStorage):
            await self.storage.reset()
            timer = self.storage.timer
            if timer is not None and not timer.done():
                timer.cancel()


class WebhookLimits:
    """The limit of each webhook endpoint: its node's `rate_limit`, else the default."""

    def __init__(self, limiter: RateLimiter, default: str | None) -> None:
        self._limiter = limiter
        self._default = None if default is None else parse(default)
        # Parsed once per distinct text: webhooks share a handful of rates.
        self._parsed: dict[str, RateLimitItem | None] = {UNLIMITED: None}

    def limit_of(self, rate: str | None) -> RateLimitItem | None:
        """The limit for a node's `rate_limit` (None: no limit)."""
        if rate is None:
            return self._default
        if rate in self._parsed:
            return self._parsed[rate]
        # Checked when the workflow was saved; a rate that does not parse anyway
        # falls back to the default rather than failing every call.
        item: RateLimitItem | None
        try:
            item = parse(rate)
        except ValueError:
            log.warning("webhook_rate_limit.unparseable", rate=rate)
            item = self._default
        self._parsed[rate] = item
        return item

    async def check(self, endpoint_id: uuid.UUID, rate: str | None) -> None:
        """Count a call to `endpoint_id`; `RateLimited` (`webhook_rate_limited`) beyond."""
        item = self.limit_of(rate)
        if item is not None:
            await self._limiter.hit(item, "webhook", str(endpoint_id),
                                    code="webhook_rate_limited")  # fmt: skip

    async def check_unknown(self, client_ip: str | None) -> None:
        """Count a call to an unknown endpoint against the caller's per-address limit."""
        if client_ip is not None:
            await self._limiter.check(self._limiter.per_ip, "ip", client_ip)
