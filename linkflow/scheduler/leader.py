"""Which `linkflow scheduler` process leads: a lock in Redis, one holder at a time.

The lock is one key (`<prefix>:scheduler:leader`) set with `SET NX PX <ttl>` to a
token unique to this process's term (`<host>:<pid>:<nonce>`: it says who leads).
The leader renews it every third of its time to live by a compare-and-set (a
script: extend only if the key still holds our token), followers try to take it
every sixth, so a leader that dies without a word is replaced within about one
time to live. A leader that cannot renew
(Redis away, the key gone or taken) stops leading at once.

The lock is an optimisation, not the guard: a leader paused past its time to live
may fire once more before it learns it lost. Every tick is also a compare-and-set
in the database (`LocalScheduler._fire`), so two leaders never fire one tick twice.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Final

from redis.asyncio import Redis

__all__ = ["LeaderLock"]

_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RESIGN: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaderLock:
    """The scheduler's leader lock (see the module's doc)."""

    def __init__(self, redis: Redis, *, prefix: str = "linkflow", ttl_s: float = 30.0) -> None:
        self.redis = redis
        self.key = f"{prefix}:scheduler:leader"
        self.ttl_ms = int(ttl_s * 1000)
        self.token = ""
        self._renew = redis.register_script(_RENEW)
        self._resign = redis.register_script(_RESIGN)

    @property
    def renew_every_s(self) -> float:
        return self.ttl_ms / 3000

    @property
    def try_every_s(self) -> float:
        return self.ttl_ms / 6000

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it; whether this process leads now."""
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        if await self.redis.set(self.key, token, nx=True, px=self.ttl_ms):
            self.token = token
            return True
        return False

    async def renew(self) -> bool:
        """Extend our term; False when the lock is no longer ours (stop leading)."""
        if not self.token:
            return False
        kept = bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if not kept:
            self.token = ""
        return kept

    async def resign(self) -> None:
        """Give the lock up now (a clean shutdown: a follower takes over at its next try)."""
        if self.token:
            await self._resign(keys=[self.key], args=[self.token])
            self.token = ""

    async def holder(self) -> str | None:
        """The token of the current leader, if any (for health and tests)."""
        value = await self.redis.get(self.key)
        return value.decode() if isinstance(value, bytes) else value
