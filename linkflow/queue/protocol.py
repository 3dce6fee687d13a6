"""What workers, services and the scheduler need from a job queue.

Two implementations stand behind it: `LocalQueue` (in-process, embedded mode)
and, next, Redis Streams. `tests/unit/queue/test_contract.py` runs one suite
against every implementation; what it checks is what this module promises.

Invariants every implementation keeps:
- At-least-once: a job is delivered until one of its deliveries is acked or
  dead-lettered. A consumer acks only after the job's outcome is stored.
- Each delivery has a receipt no other delivery shares. Only the delivery in
  flight under a receipt can be settled with it; settling one that is no longer
  in flight (already settled, or reclaimed and handed out again under a new
  receipt) is a quiet no-op, so a stale consumer never settles a newer delivery.
- `Delivery.attempt` is 1 at the first delivery and grows by one at each
  redelivery (nack or reclaim); the queue counts, the `Job` is immutable.
- Ready jobs are delivered highest priority first, FIFO within a priority
  (an implementation may bound how long a lower priority waits; it says so).
- No deduplication: a job enqueued twice is delivered twice. The database is
  the truth, and the worker refuses an execution another worker owns.
"""

from __future__ import annotations

from typing import Protocol

from linkflow.queue.delivery import DeadLetter, Delivery
from linkflow.queue.job import Job

__all__ = ["Queue", "QueueClosed"]


class QueueClosed(Exception):
    """The queue was closed: a consumer waiting in `dequeue` should stop.

    A plain `Exception`, not a `LinkFlowError`: it never reaches a user, it
    ends a consume loop.
    """


class Queue(Protocol):
    """A priority job queue with delays, redelivery, reclaim and dead letters."""

    @property
    def reachable(self) -> bool:
        """False while the queue knows it cannot reach its store: a command failed for
        want of a connection and none has succeeded since. Costs no round trip, so a
        caller about to do work that needs the queue (store an execution, then enqueue
        its job) can refuse it first. True for a queue that cannot be unreachable."""
        ...

    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        """Add `job`; it becomes deliverable after `delay_s` seconds (at once if <= 0).

        Its first delivery has `attempt` 1. Works after `close` too (the job
        waits for a consumer that will not come; recovery finds it in the database).
        """
        ...

    async def dequeue(self) -> Delivery:
        """Hand out the next ready job, highest priority first; wait until there is one.

        The delivery stays in flight until it is acked, nacked, dead-lettered
        or reclaimed. Raises `QueueClosed` once the queue is closed, also in a
        consumer that was waiting, and even if jobs are left.
        """
        ...

    async def ack(self, delivery: Delivery) -> None:
        """The job is done (its outcome is stored): forget it.

        A no-op for a delivery that is no longer in flight.
        """
        ...

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        """Redeliver the job after `delay_s` seconds, with `attempt` one more.

        The caller computes the delay (`linkflow.queue.backoff_s`) and decides
        that a retry is due: on `delivery.last_attempt` it dead-letters instead.
        A no-op for a delivery that is no longer in flight.
        """
        ...

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Take the job out of the live queue for good and keep it among the dead letters.

        The dead letter records `reason` and the delivery's `attempt`. A no-op for a
        delivery that is no longer in flight.
        """
        ...

    async def move_due(self) -> None:
        """Make the delayed jobs whose time has come deliverable now, taking none.

        Consumers' reads do it too; the scheduler calls it so that retries move on
        (and are counted as ready) while no consumer reads.
        """
        ...

    async def reclaim(self, idle_s: float) -> int:
        """Make deliveries in flight for `idle_s` seconds or more deliverable again.

        For consumers that vanished without settling (XAUTOCLAIM in Redis): each
        such delivery is withdrawn (its receipt goes stale) and its job is ready
        again with `attempt` one more, even past `max_attempts`. Returns how many.
        """
        ...

    async def depth(self) -> dict[str, int]:
        """Counts: ready jobs per priority name, plus "delayed", "in_flight" and "dead".

        Keys: "high", "normal", "low", "delayed", "in_flight", "dead"; "dead" counts
        the dead letters the queue still keeps.
        """
        ...

    async def oldest_age_s(self) -> dict[str, float]:
        """Seconds the oldest ready job of each priority has waited, by priority name
        ("high", "normal", "low"); 0 for a priority with no ready job. For metrics and
        alerts on how long work waits for a worker."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Up to `limit` (>= 0) kept dead letters, newest first.

        What was queued but could not be decoded as a job (a foreign producer's entry)
        is among them, with `job` None, its raw text and the reason."""
        ...

    async def take_dead_letter(self, dead_id: str) -> DeadLetter | None:
        """Remove the dead letter whose `DeadLetter.id` is `dead_id` and return it; None
        when there is none (never was, or taken already). Of concurrent takes of one
        dead letter exactly one gets it, so an operator's retry (enqueue its job again)
        or discard happens once."""
        ...

    async def close(self) -> None:
        """Stop handing out jobs: every `dequeue`, waiting or later, raises `QueueClosed`.

        Settling deliveries still works, so work in flight can finish. Idempotent.
        """
        ...
