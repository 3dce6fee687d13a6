"""An in-process priority queue with delays, for embedded mode (`linkflow serve`).

Not durable by itself: the database is the truth, and at start-up the service
layer re-enqueues every execution the database says is queued or running.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque

from linkflow.queue.job import PRIORITY_ORDER, Job, Priority

__all__ = ["LocalQueue", "QueueClosed"]


class QueueClosed(Exception):
    """The queue was closed while waiting for a job: the consumer should stop."""


class LocalQueue:
    """Three FIFO lanes (high, normal, low) plus a heap of delayed jobs."""

    def __init__(self) -> None:
        self._lanes: dict[Priority, deque[Job]] = {p: deque() for p in PRIORITY_ORDER}
        self._delayed: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._ready = asyncio.Condition()
        self._closed = False

    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        async with self._ready:
            if delay_s > 0:
                due = time.monotonic() + delay_s
                heapq.heappush(self._delayed, (due, next(self._order), job))
            else:
                self._lanes[job.queue].append(job)
            self._ready.notify()

    def _promote_due(self) -> float | None:
        """Move due delayed jobs to their lanes; seconds until the next one, if any."""
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job = heapq.heappop(self._delayed)
            self._lanes[job.queue].append(job)
        return self._delayed[0][0] - now if self._delayed else None

    def _pop(self) -> Job | None:
        for priority in PRIORITY_ORDER:
            lane = self._lanes[priority]
            if lane:
                return lane.popleft()
        return None

    async def dequeue(self) -> Job:
        async with self._ready:
            while True:
                if self._closed:
                    raise QueueClosed
                wait_s = self._promote_due()
                job = self._pop()
                if job is not None:
                    job.attempts += 1
                    return job
                try:
                    await asyncio.wait_for(self._ready.wait(), timeout=wait_s)
                except TimeoutError:
                    continue

    async def ack(self, job: Job) -> None:
        """Nothing to forget: a dequeued job is no longer held here."""

    def depth(self) -> dict[str, int]:
        return {p.value: len(self._lanes[p]) for p in PRIORITY_ORDER} | {
            "delayed": len(self._delayed)
        }

    async def close(self) -> None:
        async with self._ready:
            self._closed = True
            self._ready.notify_all()
