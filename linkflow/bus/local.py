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

__all__ = ["LocalBus", "Subscription"]

SUBSCRIBER_BUFFER = 1024
"""Messages a subscriber may lag behind before the oldest are dropped."""


class Subscription:
    def __init__(self, channels: frozenset[str]) -> None:
        self.channels = channels
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIBER_BUFFER)

    def deliver(self, message: dict[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)

    async def get(self, timeout_s: float | None = None) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout=timeout_s)


class LocalBus:
    """Channels by name (`execution.<id>`, `workspace.<id>`)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        for subscription in self._subscribers.get(channel, ()):
            subscription.deliver(message)

    def has_subscribers(self, channel: str) -> bool:
        return bool(self._subscribers.get(channel))

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(frozenset(channels))
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
