"""What the services, the worker and the API need of a pub/sub bus: `LocalBus` in one
process, `RedisBus` (Redis Pub/Sub) across processes. They depend on this, not on a bus.

Publishing never waits: a publisher is an execution on the hot path, and live
events are a view (a subscriber that lags or misses one reloads the history from
the database). So `publish` is synchronous and fire-and-forget; a bus that
talks to a server queues the message and sends it from a task of its own.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = ["Bus", "Subscription"]


class Subscription(Protocol):
    async def get(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The next message; `TimeoutError` after `timeout_s` without one."""
        ...


class Bus(Protocol):
    def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send `message` (an envelope, see `bus.envelope`) to `channel`'s subscribers."""
        ...

    def wants(self, channel: str, kind: str) -> bool:
        """Whether a message of `kind` on `channel` would reach anyone (asked before a
        publisher builds it); a bus that cannot tell answers True."""
        ...

    def subscribe(
        self, *channels: str, kinds: frozenset[str] | None = None
    ) -> AbstractAsyncContextManager[Subscription]:
        """Receive the messages of `channels` (of `kinds` only, when given) in the block."""
        ...
