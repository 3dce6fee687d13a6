"""What a queue hands out (`Delivery`) and what it keeps when a job is given up (`DeadLetter`).

Invariants:
- A delivery is one handing-out of one job. Its `receipt` is unique among all
  deliveries of its queue, so settling (ack, nack, dead-letter) by receipt
  touches that delivery and no other, not even a later delivery of the same job.
- `attempt` counts deliveries of the job by this queue: 1 for the first, one
  more at each redelivery (nack or reclaim). It is not capped: a reclaimed
  last attempt comes back with `attempt > job.max_attempts`, and the consumer
  decides what to do with it (dead-letter it rather than run it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from linkflow.queue.job import Job

__all__ = ["DeadLetter", "Delivery"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of `job`: settle it with the queue's `ack`, `nack` or `dead_letter`."""

    job: Job
    attempt: int
    """1 for the first delivery, +1 at each redelivery."""
    receipt: str
    """Opaque id of this delivery (a Redis stream entry id in the Redis queue)."""
    delivered_at: float
    """`time.monotonic()` when the queue handed it out; `reclaim` measures idleness from it."""

    @property
    def last_attempt(self) -> bool:
        """True when no retry is left: `attempt >= job.max_attempts`.

        A consumer that fails a last attempt dead-letters it instead of nacking.
        """
        return self.attempt >= self.job.max_attempts


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job taken out of the live queue for good, with why and after how many deliveries."""

    job: Job | None
    """None when what was queued could not be decoded as a job: then `raw` holds it."""
    attempts: int
    """The `attempt` of the delivery that was dead-lettered (0: never delivered)."""
    reason: str
    at: datetime
    """When it was dead-lettered (aware, UTC)."""
    raw: str | None = None
    """The entry as it was queued, as text, when it could not be decoded (garbage bytes,
    half an envelope, an unknown type or priority): what an operator needs to find
    who wrote it. None for a decoded job."""
    id: str = ""
    """The queue's id of this dead letter (a Redis stream entry id), for
    `Queue.take_dead_letter`."""
