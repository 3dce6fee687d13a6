"""Jobs other than executions: a table of handlers by job type, and how their outcome
settles the delivery.

A `JobHandler` does one job and raises to have it retried. `JobHandlers.run` settles
every delivery it is handed, whatever happens: acked when the handler returned;
nacked after `backoff_s(attempt, base_s=backoff_base_s)` when it raised and attempts
are left; dead-lettered with the reason on its last attempt, at once when the handler
says the payload cannot be decoded (`UndecodableJob`: a retry would decode no better),
and at once when no handler serves the job's type here. A delivery handed out past
its job's `max_attempts` (reclaimed from a worker that vanished) is dead-lettered
without running. Nothing a handler raises (but a cancellation) leaves `run`, so a bad
job never stops a worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from linkflow.observability.logging import bind_context, get_logger
from linkflow.queue import Delivery, JobType, Queue, backoff_s

__all__ = ["JobHandler", "JobHandlers", "UndecodableJob"]

log = get_logger(__name__)


class UndecodableJob(Exception):
    """The job's payload is not what its type needs: dead-letter it, do not retry."""


class JobHandler(Protocol):
    """Does the jobs of one type."""

    async def handle(self, delivery: Delivery) -> None:
        """Do `delivery.job`; raise to have it retried (`UndecodableJob`: dead-lettered).

        Runs under the job's timeout; on its last attempt (`delivery.last_attempt`) a
        failure goes to the dead letters, so a handler that keeps a record of its
        attempts marks it given up before raising.
        """
        ...


class JobHandlers:
    """Runs each job by its type's handler and settles its delivery on `queue`."""

    def __init__(
        self, queue: Queue, handlers: Mapping[JobType, JobHandler], *,
        backoff_base_s: float = 1.0,
    ) -> None:  # fmt: skip
        self.queue = queue
        self.handlers = dict(handlers)
        self.backoff_base_s = backoff_base_s

    async def run(self, delivery: Delivery) -> None:
        job = delivery.job
        with bind_context(job_id=job.id, job_type=job.type.value):
            handler = self.handlers.get(job.type)
            if handler is None:
                await self.dead_letter(delivery, f"no handler for {job.type.value} jobs")
                return
            if delivery.attempt > job.max_attempts:  # reclaimed once too often
                await self.dead_letter(delivery, f"the job was abandoned {delivery.attempt - 1}"
                                                 " times")  # fmt: skip
                return
            try:
                async with asyncio.timeout(job.timeout):
                    await handler.handle(delivery)
            except UndecodableJob as error:
                await self.undecodable(delivery, error)
            except Exception as error:  # noqa: BLE001 - retried, then dead-lettered
                await self._failed(delivery, error)
            else:
                await self.queue.ack(delivery)

    async def undecodable(self, delivery: Delivery, error: Exception) -> None:
        """Dead-letter a job whose payload cannot be decoded, saying why."""
        await self.dead_letter(delivery, f"the payload cannot be decoded: {error}")

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        log.error("job dead-lettered", reason=reason, attempt=delivery.attempt)
        await self.queue.dead_letter(delivery, reason[:2000])

    async def _failed(self, delivery: Delivery, error: Exception) -> None:
        if isinstance(error, TimeoutError):
            reason = f"the job exceeded its timeout of {delivery.job.timeout:g} s"
        else:
            reason = f"{type(error).__name__}: {error}"
        if delivery.last_attempt:
            await self.dead_letter(delivery, reason)
            return
        log.warning("job failed; it will be retried", reason=reason, attempt=delivery.attempt)
        delay_s = backoff_s(delivery.attempt, base_s=self.backoff_base_s)
        await self.queue.nack(delivery, delay_s=delay_s)
