"""Starting executions, and finding the ones the queue must (re)deliver.

The database is the truth: an execution exists once its row and its
`execution.queued` event are committed (together, through the group-commit
writer); only then is its job put on the queue. A job lost in between (crash,
flushed Redis) is found again by `recover()`, which re-enqueues every
execution the database says is queued or running.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from linkflow.engine import EventType
from linkflow.queue import Job, JobType, Priority, Queue
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import (
    Database,
    Execution,
    ExecutionStatus,
    NewEvent,
    TriggerType,
    new_id,
)
from linkflow.store import Priority as StoredPriority

__all__ = ["ExecutionRecord", "ExecutionService", "Fresh", "NewExecution"]


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """What a worker needs of an `executions` row to run it."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    status: ExecutionStatus
    trigger_type: TriggerType
    input: Any
    attempt: int = 1
    wait_until: datetime | None = None

    @classmethod
    def of(cls, row: Execution) -> ExecutionRecord:
        return cls(
            id=row.id, workspace_id=row.workspace_id, workflow_id=row.workflow_id,
            workflow_version=row.workflow_version, status=row.status,
            trigger_type=row.trigger_type, input=row.input, attempt=row.attempt,
            wait_until=row.wait_until,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fresh:
    """A just-created execution: its record, its only event, and where it starts."""

    row: ExecutionRecord
    queued: NewEvent
    start_node: str | None


@dataclass(frozen=True, slots=True)
class NewExecution:
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    input: Any = None
    trigger_type: TriggerType = TriggerType.MANUAL
    priority: Priority = Priority.NORMAL
    parent_execution_id: uuid.UUID | None = None
    created_by_id: uuid.UUID | None = None
    start_node: str | None = None
    id: uuid.UUID | None = None
    """Chosen by the caller when it must know the id before the job exists (to subscribe)."""


class ExecutionService:
    def __init__(self, database: Database, writer: GroupCommitWriter, queue: Queue) -> None:
        self.database = database
        self.writer = writer
        self.queue = queue
        self.fresh: dict[uuid.UUID, Fresh] = {}
        """Executions created by this process and not yet taken by its worker: the worker
        starts them from here instead of reading back what was just written."""

    async def create(
        self,
        new: NewExecution,
        *,
        carried: Sequence[tuple[str, str | None, dict[str, Any], datetime]] = (),
    ) -> uuid.UUID:
        """Store a queued execution (row + first event, durably), then enqueue its job.

        `carried` events (type, node id, data, time) follow `execution.queued` in
        the new history: a retry from the failed node carries the completed
        steps of the execution it retries, so they are replayed, not run.
        """
        now = datetime.now(UTC)
        execution_id = new.id or new_id()
        payload = new.input if new.input is not None else {}
        values = {
            "id": execution_id, "workspace_id": new.workspace_id, "workflow_id": new.workflow_id,
            "workflow_version": new.workflow_version, "status": ExecutionStatus.QUEUED,
            "trigger_type": new.trigger_type, "priority": StoredPriority(new.priority.value),
            "input": payload, "parent_execution_id": new.parent_execution_id,
            "created_by_id": new.created_by_id, "queued_at": now, "attempt": 1,
        }  # fmt: skip
        queued = NewEvent(
            execution_id, 1, EventType.EXECUTION_QUEUED.value, None,
            {"trigger_type": new.trigger_type.value, "priority": new.priority.value,
             "start_node": new.start_node},
            now,
        )  # fmt: skip
        copies = [
            NewEvent(execution_id, seq, type_, node_id, data, at)
            for seq, (type_, node_id, data, at) in enumerate(carried, start=2)
        ]
        await self.writer.create_execution(values, queued, *copies)
        if not copies:
            record = ExecutionRecord(
                id=execution_id, workspace_id=new.workspace_id, workflow_id=new.workflow_id,
                workflow_version=new.workflow_version, status=ExecutionStatus.QUEUED,
                trigger_type=new.trigger_type, input=payload,
            )  # fmt: skip
            self.fresh[execution_id] = Fresh(record, queued, new.start_node)
        await self.queue.enqueue(_job(execution_id, new.priority))
        return execution_id

    async def recover(self) -> int:
        """Re-enqueue every queued or running execution; returns how many."""
        statement = (
            select(Execution.id, Execution.priority)
            .where(Execution.status.in_([ExecutionStatus.QUEUED, ExecutionStatus.RUNNING]))
            .order_by(Execution.queued_at)
        )
        async with self.database.session() as session:
            rows = (await session.execute(statement)).all()
        for execution_id, priority in rows:
            await self.queue.enqueue(_job(execution_id, Priority(priority.value)))
        return len(rows)


def _job(execution_id: uuid.UUID, priority: Priority) -> Job:
    return Job(
        type=JobType.WORKFLOW_EXECUTION,
        payload={"execution_id": str(execution_id)},
        queue=priority,
    )
