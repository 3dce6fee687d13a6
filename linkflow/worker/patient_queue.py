"""The worker's view of its queue: it waits out an outage instead of dying of it.

A worker's loop takes a job, runs it, settles it; with Redis away every one of those
calls fails. `PatientQueue` wraps the worker's queue so that
- `dequeue` never raises but `QueueClosed`: a failure is retried after an exponential
  backoff (`RETRY_BASE_S`, doubling, at most `RETRY_CAP_S`), so the loop lives through
  the outage and takes jobs again, without a restart, once the queue answers;
- a settle (`ack`, `nack`, `dead_letter`) that fails because Redis cannot be reached is
  retried the same way, holding its slot (no job can be taken meanwhile anyway): the
  outcome is stored already, so the settle only has to reach Redis at last. Another
  failure (a refused command) raises as before. Once the queue is closed (shutdown) a
  settle is tried once more and then given up: the entry stays pending, and a reclaim
  redelivers it to a worker that finds its execution ended and acks it;
- the outage is logged once when it starts ("Redis is unreachable") and once when it
  ends ("Redis is reachable again", with how long and how many retries), never per
  attempt.
Enqueues pass through unchanged: their callers decide (a hand-back at shutdown gives up,
and recovery requeues from the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from linkflow.observability.logging import get_logger
from linkflow.queue import Delivery, Queue, QueueClosed
from linkflow.queue.wrapper import QueueWrapper
from linkflow.services.errors import as_unavailable

__all__ = ["RETRY_BASE_S", "RETRY_CAP_S", "PatientQueue"]

log = get_logger(__name__)

T = TypeVar("T")

RETRY_BASE_S: Final = 0.1
"""The first wait after a failure: a blip (a failover, a restart) costs little."""
RETRY_CAP_S: Final = 5.0
"""The longest wait between two tries: a worker takes jobs again at most this long after
Redis is back, and a down Redis sees one connection attempt per worker every 5 s."""


class PatientQueue(QueueWrapper):
    """A `Queue` whose consumer side outlives an outage (see the module's doc)."""

    def __init__(self, queue: Queue) -> None:
        super().__init__(queue)
        self._closed = asyncio.Event()
        self._down_since: float | None = None
        """Since when calls fail (monotonic), None while they succeed."""
        self._unreachable = False
        """Whether they fail for want of Redis (else: for another reason, logged so)."""
        self._retries = 0

    async def dequeue(self) -> Delivery:
        return await self._patiently(self.queue.dequeue, every_error=True)

    async def ack(self, delivery: Delivery) -> None:
        await self._patiently(lambda: self.queue.ack(delivery))

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        await self._patiently(lambda: self.queue.nack(delivery, delay_s=delay_s))

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self._patiently(lambda: self.queue.dead_letter(delivery, reason))

    async def close(self) -> None:
        self._closed.set()
        await super().close()

    async def aclose(self) -> None:
        self._closed.set()
        await super().aclose()

    async def _patiently(self, call: Callable[[], Awaitable[T]], *, every_error: bool = False) -> T:
        """`call()`, tried again after a backoff while it fails: for want of Redis, or for
        any reason with `every_error` (the consume loop must not die)."""
        attempt = 0
        while True:
            try:
                result = await call()
            except QueueClosed:
                raise
            except Exception as error:
                unreachable = as_unavailable(error) is not None
                if self._closed.is_set() and every_error:
                    raise QueueClosed from error  # shutting down: no job to take anyway
                if self._closed.is_set() or not (unreachable or every_error):
                    raise
                self._failed(error, unreachable=unreachable)
                attempt += 1
                delay_s = min(RETRY_BASE_S * 2 ** min(attempt - 1, 32), RETRY_CAP_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay_s)
                continue
            if self._down_since is not None:
                self._back()
            return result

    def _failed(self, error: Exception, *, unreachable: bool) -> None:
        self._retries += 1
        if self._down_since is not None:
            return  # logged when it started
        self._down_since = time.monotonic()
        self._unreachable = unreachable
        if unreachable:
            log.warning("Redis is unreachable: the worker retries with backoff until it is back",
                        error=str(error), retry_cap_s=RETRY_CAP_S)  # fmt: skip
        else:
            log.error("taking jobs from the queue failed: retrying with backoff",
                      exc_info=error, retry_cap_s=RETRY_CAP_S)  # fmt: skip

    def _back(self) -> None:
        assert self._down_since is not None
        after_s = round(time.monotonic() - self._down_since, 1)
        if self._unreachable:
            log.info("Redis is reachable again: the worker takes jobs", after_s=after_s,
                     retries=self._retries)  # fmt: skip
        else:
            log.info("taking jobs from the queue works again", after_s=after_s,
                     retries=self._retries)  # fmt: skip
        self._down_since = None
        self._retries = 0
