"""An in-process priority queue with delays, for embedded mode (`linkflow serve`).

Layout: three FIFO lanes of ready jobs (high, normal, low), a heap of delayed
jobs ordered by due time, a dict of deliveries in flight keyed by receipt, and
a bounded deque of dead letters. One `asyncio.Condition` guards the waiting; no
task is started per job, so enqueue and dequeue cost O(1) (O(log n) delayed).

Invariants:
- A job the queue holds is in exactly one place: a lane, the delayed heap, or
  in flight. Lane and heap entries carry the `attempt` their next delivery gets.
- Receipts are never reused, and carry a per-queue prefix, so a delivery of one
  `LocalQueue` never settles a delivery of another.
- No job sits ready or due while a consumer sleeps: each job put in a lane
  comes with one `notify`; each delayed job too, and the consumer it wakes
  sleeps no later than the earliest due time, so due jobs need no notify of
  their own. A consumer cancelled after being notified passes the wake-up on.

Starvation policy: priority is strict (a ready job of a higher lane goes
first) except that a lane with ready jobs that saw `PASS_OVER_LIMIT` consecutive
takes from higher lanes gets the next take (normal before low if both are due).
Webhooks enqueue at high priority, so under a steady webhook flood strict
priority would starve scheduled and manual runs forever; with the limit, the job
at the head of the normal lane has at most 16 takes before it, the head of the
low lane 17, and with all three lanes full high keeps 16 takes of every 18.
FIFO within a lane always holds. The Redis queue is to follow the same rule.

Not durable: the database is the truth. At start-up the service layer
re-enqueues every execution the database says is queued or running. Dead
letters are kept in memory only, the newest `DEAD_LETTER_LIMIT`; the durable
record of a dead-lettered job is its execution, marked failed with the reason
by the worker.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from linkflow.queue.delivery import DeadLetter, Delivery
from linkflow.queue.job import PRIORITY_ORDER, Job
from linkflow.queue.protocol import QueueClosed

__all__ = ["DEAD_LETTER_LIMIT", "PASS_OVER_LIMIT", "LocalQueue", "QueueClosed"]

PASS_OVER_LIMIT: Final = 16
"""Consecutive higher-priority takes a waiting lane lets pass before it gets one:
small enough that a scheduled run waits behind at most 16 webhook jobs, large
enough that high priority keeps 16 takes of 18 (89 %) under full load."""

DEAD_LETTER_LIMIT: Final = 10_000
"""Dead letters kept in memory: enough to inspect a bad hour of failures, at a few
hundred bytes each plus payload; the oldest are dropped (the database keeps
the failed executions)."""

_LANE: Final = {priority: index for index, priority in enumerate(PRIORITY_ORDER)}

_Entry = tuple[Job, int]
"""A ready job and the `attempt` of its next delivery."""


class LocalQueue:
    """Three FIFO lanes (high, normal, low), a heap of delayed jobs, deliveries in flight."""

    reachable: Final = True
    """See `Queue.reachable`: in this process, always."""

    def __init__(self, *, dead_letter_limit: int = DEAD_LETTER_LIMIT) -> None:
        self._lanes: tuple[deque[_Entry], ...] = tuple(deque() for _ in PRIORITY_ORDER)
        self._passed_over = [0] * len(PRIORITY_ORDER)
        self._delayed: list[tuple[float, int, Job, int]] = []
        self._order = itertools.count()
        self._in_flight: dict[str, Delivery] = {}
        self._dead: deque[DeadLetter] = deque(maxlen=dead_letter_limit)
        self._receipt_prefix = f"{secrets.token_hex(4)}-"
        self._receipts = itertools.count(1)
        self._ready = asyncio.Condition()
        self._closed = False

    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        """See `Queue.enqueue`."""
        async with self._ready:
            self._schedule(job, 1, delay_s)

    async def dequeue(self) -> Delivery:
        """See `Queue.dequeue`."""
        async with self._ready:
            while True:
                if self._closed:
                    raise QueueClosed
                now = time.monotonic()
                wait_s = self._promote_due(now) if self._delayed else None
                entry = self._take()
                if entry is not None:
                    job, attempt = entry
                    receipt = f"{self._receipt_prefix}{next(self._receipts)}"
                    delivery = Delivery(job, attempt, receipt, now)
                    self._in_flight[receipt] = delivery
                    return delivery
                try:
                    async with asyncio.timeout(wait_s):
                        await self._ready.wait()
                except TimeoutError:
                    continue
                except asyncio.CancelledError:
                    # We may have been notified just before the cancel: hand the
                    # wake-up to another consumer rather than lose it (for a delayed
                    # job, so that the other consumer sets its timeout).
                    if self._delayed or any(self._lanes):
                        self._ready.notify()
                    raise

    async def ack(self, delivery: Delivery) -> None:
        """See `Queue.ack`."""
        self._in_flight.pop(delivery.receipt, None)

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        """See `Queue.nack`. The job rejoins the back of its lane when due."""
        async with self._ready:
            if self._in_flight.pop(delivery.receipt, None) is not None:
                self._schedule(delivery.job, delivery.attempt + 1, delay_s)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """See `Queue.dead_letter`. Beyond `dead_letter_limit`, the oldest is dropped."""
        if self._in_flight.pop(delivery.receipt, None) is not None:
            self._dead.append(DeadLetter(delivery.job, delivery.attempt, reason, datetime.now(UTC),
                                         id=f"{self._receipt_prefix}dead-{next(self._receipts)}"))

    async def move_due(self) -> None:
        """See `Queue.move_due`."""
        async with self._ready:
            if self._delayed:
                self._promote_due(time.monotonic())

    async def reclaim(self, idle_s: float) -> int:
        """See `Queue.reclaim`. Reclaimed jobs rejoin the back of their lanes."""
        async with self._ready:
            now = time.monotonic()
            idle = [d for d in self._in_flight.values() if now - d.delivered_at >= idle_s]
            for delivery in idle:
                del self._in_flight[delivery.receipt]
                self._lanes[_LANE[delivery.job.queue]].append((delivery.job, delivery.attempt + 1))
            self._ready.notify(len(idle))
            return len(idle)

    async def depth(self) -> dict[str, int]:
        """See `Queue.depth`. Delayed jobs that are due count as ready."""
        async with self._ready:
            if self._delayed:
                self._promote_due(time.monotonic())
            lanes = zip(PRIORITY_ORDER, self._lanes, strict=True)
            return {priority.value: len(lane) for priority, lane in lanes} | {
                "delayed": len(self._delayed),
                "in_flight": len(self._in_flight),
                "dead": len(self._dead),
            }

    async def oldest_age_s(self) -> dict[str, float]:
        """See `Queue.oldest_age_s`: here, since the oldest ready job was made (a retry's
        job keeps its first creation time, so its backoff counts too)."""
        now = datetime.now(UTC)
        async with self._ready:
            if self._delayed:
                self._promote_due(time.monotonic())
            firsts = [lane[0][0].created_at if lane else now for lane in self._lanes]
        return {
            priority.value: max((now - first).total_seconds(), 0.0)
            for priority, first in zip(PRIORITY_ORDER, firsts, strict=True)
        }

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """See `Queue.dead_letters`."""
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        return list(itertools.islice(reversed(self._dead), limit))

    async def take_dead_letter(self, dead_id: str) -> DeadLetter | None:
        """See `Queue.take_dead_letter`. No await between finding and removing: atomic."""
        for dead in self._dead:
            if dead.id == dead_id:
                self._dead.remove(dead)
                return dead
        return None

    async def close(self) -> None:
        """See `Queue.close`."""
        async with self._ready:
            self._closed = True
            self._ready.notify_all()

    def _schedule(self, job: Job, attempt: int, delay_s: float) -> None:
        """Put a job in its lane, or in the heap if delayed; wake one consumer. Lock held."""
        if delay_s > 0:
            due = time.monotonic() + delay_s
            heapq.heappush(self._delayed, (due, next(self._order), job, attempt))
        else:
            self._lanes[_LANE[job.queue]].append((job, attempt))
        # For a delayed job too: a waiting consumer recomputes how long to sleep.
        self._ready.notify()

    def _promote_due(self, now: float) -> float | None:
        """Move due delayed jobs to their lanes; seconds until the next one, if any. Lock held."""
        while self._delayed and self._delayed[0][0] <= now:
            _, _, job, attempt = heapq.heappop(self._delayed)
            self._lanes[_LANE[job.queue]].append((job, attempt))
        return self._delayed[0][0] - now if self._delayed else None

    def _take(self) -> _Entry | None:
        """Pop the next ready entry under the starvation policy; None if all lanes are empty."""
        lanes, passed_over = self._lanes, self._passed_over
        chosen = -1
        for i, lane in enumerate(lanes):
            if lane:
                if chosen < 0:
                    chosen = i  # the highest lane with ready jobs...
                elif passed_over[i] >= PASS_OVER_LIMIT:
                    chosen = i  # ...unless a lower one has waited long enough
                    break
        if chosen < 0:
            return None
        for i, lane in enumerate(lanes):
            if i == chosen or not lane:
                passed_over[i] = 0
            elif i > chosen:
                passed_over[i] += 1
        return lanes[chosen].popleft()


if TYPE_CHECKING:
    from linkflow.queue.protocol import Queue

    _implements_queue: Queue = LocalQueue()
