"""Instance administration of the job queue: depth by priority, dead letters, and an
operator's retry or discard of one.

Invariants:
- A dead letter is retried or discarded once: `Queue.take_dead_letter` hands it to one
  caller only; a second (or concurrent) retry of it is 404 `dead_letter_not_found`.
- A retried job is queued again as it was, with its attempts counted from 1.
- A workflow execution's job is retried only while its execution is unfinished (queued
  or running: the worker stopped between dead-lettering the job and failing the
  execution). A finished execution is retried as an execution
  (`POST /api/v1/executions/{id}/retry`, a new execution), not by its old job: 409
  `execution_finished`, and the dead letter stays.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import select

from linkflow.queue import DeadLetter, JobType, Queue
from linkflow.services.admin_users import require_admin
from linkflow.services.audit import record
from linkflow.services.context import Actor, Principal
from linkflow.services.errors import Conflict, NotFound, Unavailable
from linkflow.store import Database, Execution, ExecutionStatus

__all__ = ["AdminQueue"]

SCAN_LIMIT: Final = 10_000
"""Dead letters looked through to find one by id before it is taken (the local queue
keeps this many; an operator's act, so a full scan is fine)."""
UNFINISHED: Final = frozenset({ExecutionStatus.QUEUED, ExecutionStatus.RUNNING})


def _not_found(dead_id: str) -> NotFound:
    return NotFound(f"there is no dead letter {dead_id!r}", code="dead_letter_not_found")


class AdminQueue:
    def __init__(self, database: Database, queue: Queue | None) -> None:
        self.database = database
        self.queue = queue

    def _queue(self) -> Queue:
        if self.queue is None:
            raise Unavailable(
                "this process has no queue: `linkflow api` needs LINKFLOW_REDIS_URL for it",
                code="execution_plane_unavailable",
            )
        return self.queue

    async def depth(self, principal: Principal) -> dict[str, int]:
        require_admin(principal)
        return await self._queue().depth()

    async def dead_letters(self, principal: Principal, *, limit: int) -> list[DeadLetter]:
        require_admin(principal)
        return await self._queue().dead_letters(limit)

    async def retry(self, principal: Principal, actor: Actor, dead_id: str) -> DeadLetter:
        require_admin(principal)
        queue = self._queue()
        found = next((d for d in await queue.dead_letters(SCAN_LIMIT) if d.id == dead_id), None)
        if found is None:
            raise _not_found(dead_id)
        if found.job is None:
            raise Conflict(
                "this dead letter holds no job (it could not be decoded): discard it",
                code="dead_letter_undecodable",
            )
        if found.job.type is JobType.WORKFLOW_EXECUTION:
            await self._require_unfinished(found.job.payload.get("execution_id"))
        taken = await queue.take_dead_letter(dead_id)
        if taken is None or taken.job is None:
            raise _not_found(dead_id)
        await queue.enqueue(taken.job)
        await self._audit(actor, "queue.dead_letter_retried", taken)
        return taken

    async def discard(self, principal: Principal, actor: Actor, dead_id: str) -> DeadLetter:
        require_admin(principal)
        taken = await self._queue().take_dead_letter(dead_id)
        if taken is None:
            raise _not_found(dead_id)
        await self._audit(actor, "queue.dead_letter_discarded", taken)
        return taken

    async def _require_unfinished(self, raw_id: object) -> None:
        try:
            execution_id = uuid.UUID(str(raw_id))
        except ValueError:
            return
        async with self.database.session() as session:
            status = await session.scalar(
                select(Execution.status).where(Execution.id == execution_id)
            )
        if status is not None and status not in UNFINISHED:
            raise Conflict(
                f"execution {execution_id} is {status.value}: retry the execution "
                f"(POST /api/v1/executions/{execution_id}/retry) instead",
                code="execution_finished",
                extra={"execution_id": str(execution_id)},
            )

    async def _audit(self, actor: Actor, action: str, dead: DeadLetter) -> None:
        async with self.database.transaction() as session:
            await record(
                session,
                actor,
                action,
                "dead_letter",
                dead.id,
                new={
                    "job_id": dead.job.id if dead.job else None,
                    "type": dead.job.type.value if dead.job else None,
                    "reason": dead.reason,
                },
            )
