"""Pub/sub across processes on Redis Pub/Sub: a worker's live events reach the API
process that holds a client's WebSocket or a webhook caller waiting for the end.

- `publish` stays synchronous and never waits (the `Bus` contract): the message
  goes to this process's own subscribers at once (a `LocalBus` inside), and to an
  outbox that a task of its own sends to Redis in pipelines. Redis down: the
  messages of that moment are dropped, logged once per outage (live events are a
  view; a client reloads the history from the database).
- Each message carries its process's `origin`: the reader skips what this process
  published, which its own subscribers got already (no duplicate, no round trip on
  the webhook path of `serve`).
- One Pub/Sub connection per process, subscribed to the channels its subscribers
  follow (counted, so a channel is left when its last subscriber leaves). A lost
  connection is made again with backoff and re-subscribes (redis-py's `PubSub`
  does that on its next read); what was published meanwhile is missed.
- Channel names on Redis: `<prefix>:bus:<channel>` (`execution.<id>`, `workspace.<id>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from linkflow.bus.local import LocalBus, LocalSubscription
from linkflow.observability.logging import get_logger

__all__ = ["OUTBOX_LIMIT", "SUBSCRIBE_TIMEOUT_S", "RedisBus"]

log = get_logger(__name__)

OUTBOX_LIMIT: Final = 100_000
"""Messages waiting to be sent before the oldest are dropped (Redis slow or away)."""
SUBSCRIBE_TIMEOUT_S: Final = 10.0
"""How long `subscribe` waits for Redis to confirm a subscription before failing."""
_RETRY_S: Final = (0.1, 0.5, 1.0, 2.0, 5.0)


class RedisBus:
    """A `Bus` on Redis Pub/Sub (see the module's doc)."""

    def __init__(self, redis: Redis, *, prefix: str = "linkflow") -> None:
        self.redis = redis
        self.prefix = prefix
        self.origin = secrets.token_hex(8)
        self.local = LocalBus()
        self._outbox: deque[tuple[str, bytes]] = deque(maxlen=OUTBOX_LIMIT)
        self._wake = asyncio.Event()
        self._followed: Counter[str] = Counter()
        self._pubsub = redis.pubsub()
        self._confirmed: dict[str, asyncio.Event] = {}
        """Subscriptions sent and not yet confirmed by Redis, by wire name."""
        self._changed = asyncio.Lock()
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "linkflow") -> RedisBus:
        return cls(Redis.from_url(url), prefix=prefix)

    def _wire(self, channel: str) -> str:
        return f"{self.prefix}:bus:{channel}"

    # -- publishing --------------------------------------------------------------------

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.local.publish(channel, message)
        self._outbox.append((self._wire(channel), orjson.dumps({"o": self.origin, "m": message})))
        self._wake.set()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="bus-send")

    def wants(self, channel: str, kind: str) -> bool:
        return True  # subscribers in other processes cannot be asked cheaply

    async def _send(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 500))]
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for wire, payload in batch:
                            pipe.publish(wire, payload)
                        await pipe.execute()
                except (RedisError, OSError) as error:
                    if failures == 0:
                        log.warning("live events cannot reach Redis; dropping them until it "
                                    "answers", error=str(error))  # fmt: skip
                    failures += 1
                    await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S)) - 1])
                    continue
                if failures:
                    log.info("live events reach Redis again", dropped_batches=failures)
                    failures = 0

    # -- subscribing -------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(
        self, *channels: str, kinds: frozenset[str] | None = None
    ) -> AsyncIterator[LocalSubscription]:
        async with self.local.subscribe(*channels, kinds=kinds) as subscription:
            await self._follow(channels)
            try:
                yield subscription
            finally:
                await self._unfollow(channels)

    async def _follow(self, channels: tuple[str, ...]) -> None:
        """Subscribe to what no subscriber here follows yet, and return once Redis has
        confirmed it: a message published after `subscribe` returns is not missed."""
        async with self._changed:
            new = [self._wire(c) for c in channels if self._followed[c] == 0]
            self._followed.update(channels)
            waits = [self._confirmed.setdefault(wire, asyncio.Event()) for wire in new]
            if new:
                await self._pubsub.subscribe(*new)
            if self._reader is None:
                self._reader = asyncio.get_running_loop().create_task(
                    self._read(), name="bus-read"
                )
        for confirmed in waits:
            await asyncio.wait_for(confirmed.wait(), SUBSCRIBE_TIMEOUT_S)

    async def _unfollow(self, channels: tuple[str, ...]) -> None:
        async with self._changed:
            self._followed.subtract(channels)
            gone = [self._wire(c) for c in channels if self._followed[c] <= 0]
            for channel in channels:
                if self._followed[channel] <= 0:
                    del self._followed[channel]
            if gone:
                # A connection that is gone took its subscriptions with it.
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(*gone)

    async def _read(self) -> None:
        prefix = f"{self.prefix}:bus:"
        failures = 0
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as error:
                if failures == 0:
                    log.warning("lost the Redis connection of live events; reconnecting",
                                error=str(error))  # fmt: skip
                failures += 1
                await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S)) - 1])
                continue
            if failures:
                log.info("the Redis connection of live events is back")
                failures = 0
            if message is None:
                continue
            if message.get("type") == "subscribe":
                confirmed = self._confirmed.pop(_text(message["channel"]), None)
                if confirmed is not None:
                    confirmed.set()
                continue
            if message.get("type") != "message":
                continue
            try:
                envelope = orjson.loads(message["data"])
            except orjson.JSONDecodeError:
                continue
            if envelope.get("o") == self.origin:
                continue  # published here, delivered here already
            self.local.publish(_text(message["channel"])[len(prefix) :], envelope["m"])

    async def aclose(self) -> None:
        for task in (self._sender, self._reader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._pubsub.aclose()
        await self.redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
