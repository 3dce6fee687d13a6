"""What workers and services need from a queue (local in embedded mode, Redis Streams later)."""

from __future__ import annotations

from typing import Protocol

from linkflow.queue.job import Job

__all__ = ["Queue"]


class Queue(Protocol):
    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        """Add a job, visible to workers after `delay_s`."""
        ...

    async def dequeue(self) -> Job:
        """The next job, highest priority first; waits until there is one."""
        ...

    async def ack(self, job: Job) -> None:
        """The job is done (its outcome is stored): forget it."""
        ...

    async def close(self) -> None: ...
