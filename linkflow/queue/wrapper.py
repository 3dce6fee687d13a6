"""A `Queue` that forwards every call to another: the base of the wrappers that change
one side of a queue (`worker.patient_queue` waits out outages, `MeteredQueue` counts
settles) and leave the rest as it is."""

from __future__ import annotations

from linkflow.queue.delivery import DeadLetter, Delivery
from linkflow.queue.job import Job
from linkflow.queue.protocol import Queue

__all__ = ["QueueWrapper"]


class QueueWrapper:
    """Forwards the whole `Queue` protocol to `queue`; subclasses override what they change."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue

    @property
    def reachable(self) -> bool:
        return self.queue.reachable

    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        await self.queue.enqueue(job, delay_s=delay_s)

    async def dequeue(self) -> Delivery:
        return await self.queue.dequeue()

    async def ack(self, delivery: Delivery) -> None:
        await self.queue.ack(delivery)

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        await self.queue.nack(delivery, delay_s=delay_s)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self.queue.dead_letter(delivery, reason)

    async def move_due(self) -> None:
        await self.queue.move_due()

    async def reclaim(self, idle_s: float) -> int:
        return await self.queue.reclaim(idle_s)

    async def depth(self) -> dict[str, int]:
        return await self.queue.depth()

    async def oldest_age_s(self) -> dict[str, float]:
        return await self.queue.oldest_age_s()

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self.queue.dead_letters(limit)

    async def take_dead_letter(self, dead_id: str) -> DeadLetter | None:
        return await self.queue.take_dead_letter(dead_id)

    async def close(self) -> None:
        await self.queue.close()

    async def aclose(self) -> None:
        """Close the wrapped queue's connections, if it has any."""
        close = getattr(self.queue, "aclose", None)
        if close is not None:
            await close()
