"""A small in-process cache of values read from the database, for at most `ttl_s`.

Single-flight: when a value is missing, the first caller loads it and every
concurrent caller for the same key awaits that one load, so an expiry under
load costs one query, not one per request in flight. An entry that expired
less than a TTL ago is still answered while one refresh runs behind (nobody
waits for the database once a period); an older one is loaded again first.
A load that fails fails its waiters and caches nothing. Bounded: at
`max_entries` it is emptied rather than grown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["TTLCache"]

STALE_FACTOR = 2
"""An entry up to this many TTLs old is still answered while it is refreshed."""


def _forget_outcome(task: asyncio.Future[Any]) -> None:
    # A failed background refresh leaves the entry to expire: the next caller past the
    # stale window loads it and gets the error.
    if not task.cancelled():
        task.exception()

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(self, ttl_s: float, *, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}
        self._generation = 0
        """Bumped by `forget`/`clear`: a load that started before is not kept."""
        self._started: dict[K, int] = {}
        """The generation each registered load began in."""

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None:
            age = time.monotonic() - entry[0]
            if age < self.ttl_s:
                return entry[1]
            if age < self.ttl_s * STALE_FACTOR:
                # Just expired: answer with it and refresh behind, so the callers of the
                # moment do not all wait for the database once a period.
                if key not in self._loading:
                    # Registered now, not when the task first runs: the other callers of
                    # this same moment must see it and not start refreshes of their own.
                    future = self._begin(key)
                    refresh = asyncio.ensure_future(self._load(key, load, future))
                    refresh.add_done_callback(_forget_outcome)
                return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, load, self._begin(key))

    def _begin(self, key: K) -> asyncio.Future[V]:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        self._started[key] = self._generation
        return future

    async def _load(
        self, key: K, load: Callable[[], Awaitable[V]], future: asyncio.Future[V]
    ) -> V:
        generation = self._started.pop(key, self._generation)
        try:
            started = time.monotonic()
            value = await load()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters, if any, get it raised
            raise
        finally:
            if self._loading.get(key) is future:
                del self._loading[key]
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        if generation == self._generation:
            # Stamped with the load's start: a change committed during the load is not
            # hidden for longer than `ttl_s`.
            self._entries[key] = (started, value)
        future.set_result(value)
        return value

    def forget(self, key: K) -> None:
        self._generation += 1
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._loading.clear()
