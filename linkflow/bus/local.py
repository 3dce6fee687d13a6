"""In-process pub/sub: each subscriber gets its own bounded queue.

A slow subscriber must never slow down the executions publishing to it: when
its queue is full, the oldest message is dropped (live views can reload the
full history from the database).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

__all__ = ["LocalBus", "LocalSubscription"]

SUBSCRIBER_BUFFER = 1024
"""Messages a subscriber may lag behind before the oldest are dropped."""


class LocalSubscription:
    def __init__(self, channels: frozenset[str], kinds: frozenset[str] | None = None) -> None:
        self.channels = channels
        self.kinds = kinds
        """The `event` values this subscriber wants; None: all."""
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)

    def wants(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds

    def deliver(self, message: dict[str, Any]) -> None:
        if not self.wants(message.get("event", "")):
            return
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)

    async def get(self, timeout_s: float | None = None) -> dict[str, Any]:
        if not self.queue.empty():
            return self.queue.get_nowait()
        # A timeout scope, not wait_for: no task of its own per call.
        async with asyncio.timeout(timeout_s):
            return await self.queue.get()


class LocalBus:
    """Channels by name (`execution.<id>`, `workspace.<id>`)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[LocalSubscription]] = {}

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        for subscription in self._subscribers.get(channel, ()):
            subscription.deliver(message)

    def has_subscribers(self, channel: str) -> bool:
        return bool(self._subscribers.get(channel))

    def wants(self, channel: str, kind: str) -> bool:
        """Whether a message whose `event` is `kind` on `channel` would reach anyone: a
        publisher asks before building it."""
        subscribers = self._subscribers.get(channel)
        if not subscribers:  # nearly always, for an execution nobody watches
            return False
        return any(subscription.wants(kind) for subscription in subscribers)

    @asynccontextmanager
    async def subscribe(
        self, *channels: str, kinds: frozenset[str] | None = None
    ) -> AsyncIterator[LocalSubscription]:
        """Receive the messages of `channels` (only those whose `event` is in `kinds`,
        when given) until the block ends."""
        subscription = LocalSubscription(frozenset(channels), kinds)
        for channel in channels:
            self._subscribers.setdefault(channel, set()).add(subscription)
        try:
            yield subscription
        finally:
            for channel in channels:
                subscribers = self._subscribers.get(channel)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._subscribers[channel]
