"""Child executions under the server: sub-workflows and error workflows, and the
parents that wait for them.

A child is started once per idempotency key (`executions.parent_key`, unique):
a parent's node that runs again (after a crash, or on another worker) finds the
child it started instead of starting a second one. The child's row and its
`execution.queued` event are inserted in one transaction, then its job is
queued; a job lost in between is found by recovery like any queued execution.
A reference is a workflow id of the parent's own workspace: any other (another
tenant's workflow, a malformed id) is "not found", never started.

A parent that waits for children (`execution.waiting` with `children`, see the
engine's executor) holds no worker. It is resumed once every child it waits
for has ended, by whichever side sees that last: the worker that ended a child
checks after the child's end is durable, and the worker that stored the wait
checks after the wait is durable, so at least one of them sees all ended. The
resume is a compare-and-set from `waiting` (`store.move_execution`), so it
happens once however many check. `recover()` catches a process that died
between storing and checking.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from linkflow.engine import EventType, ParentLink
from linkflow.nodes.sdk import ChildExecution
from linkflow.observability.logging import get_logger
from linkflow.queue import Priority, Queue
from linkflow.services.executions import Allowances, execution_job
from linkflow.services.plan_limits import Limit, over_limit, refusal
from linkflow.services.usage import claim_start
from linkflow.store import (
    Database,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    StoreConflict,
    TriggerType,
    Workflow,
    move_execution,
    new_id,
)
from linkflow.store import Priority as StoredPriority

__all__ = ["ChildExecutions"]

log = get_logger(__name__)

_UNFINISHED = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)


class _WaitMoved(Exception):
    """The parent's last event is no longer the wait that was checked."""


class _OverLimit(Exception):
    """A child's start reached a plan limit (limit, value, usage): roll it back."""


class ChildExecutions:
    """The `SubWorkflowRunner` of a server, and the wake-up of waiting parents."""

    def __init__(
        self, database: Database, queue: Queue, *, allowances: Allowances | None = None
    ) -> None:
        self.database = database
        self.queue = queue
        self.allowances = allowances
        """A child's start counts against its workspace's plan limits (`services.usage`)."""

    # -- starting ------------------------------------------------------------

    async def run(
        self,
        reference: str,
        input: Any,
        *,
        wait: bool,
        parent: ParentLink,
        idempotency_key: str,
        trigger: str | None = None,
    ) -> ChildExecution:
        """The child started under `idempotency_key`, as it stands (started now if there
        was none). A child that has not ended is returned as such, `wait` or not: the
        engine makes a waiting node wait for it."""
        found = await self._find(idempotency_key)
        if found is not None:
            return found
        return await self._start(reference, input, parent, idempotency_key, trigger)

    async def _find(self, key: str) -> ChildExecution | None:
        async with self.database.session() as session:
            row = (await session.execute(
                select(Execution.id, Execution.status, Execution.output, Execution.error)
                .where(Execution.parent_key == key)
            )).one_or_none()  # fmt: skip
        if row is None:
            return None
        execution_id, status, output, error = row
        items = (
            [item for item in output if isinstance(item, dict)] if isinstance(output, list) else []
        )
        return ChildExecution(str(execution_id), status.value, items, error)

    async def _start(
        self, reference: str, input: Any, parent: ParentLink, key: str, trigger: str | None
    ) -> ChildExecution:
        try:
            workflow_id, parent_id = uuid.UUID(reference), uuid.UUID(parent.execution_id)
        except ValueError:
            raise LookupError(reference) from None
        async with self.database.session() as session:
            # Joined on the parent's workspace: another tenant's workflow is not found.
            workflow = (await session.scalars(
                select(Workflow)
                .join(Execution, Execution.workspace_id == Workflow.workspace_id)
                .where(Workflow.id == workflow_id, Execution.id == parent_id)
            )).one_or_none()  # fmt: skip
        if workflow is None:
            raise LookupError(reference)
        start_node = None
        if trigger is not None:
            start_node = next((node["id"] for node in workflow.nodes
                               if node.get("type") == trigger), None)  # fmt: skip
            if start_node is None:
                message = f"workflow {workflow.name!r} has no {trigger!r} trigger"
                return ChildExecution("", "failed", error={"message": message})
        trigger_type = TriggerType.ERROR if trigger == "error" else TriggerType.SUBWORKFLOW
        execution_id = new_id()
        now = datetime.now(UTC)
        values = {
            "id": execution_id, "workspace_id": workflow.workspace_id, "workflow_id": workflow.id,
            "workflow_version": workflow.version, "status": ExecutionStatus.QUEUED,
            "trigger_type": trigger_type, "priority": StoredPriority.NORMAL,
            "input": input if input is not None else {}, "parent_execution_id": parent_id,
            "parent_key": key, "queued_at": now, "attempt": 1,
        }  # fmt: skip
        queued = {
            "trigger_type": trigger_type.value, "priority": Priority.NORMAL.value,
            "start_node": start_node, "parent": parent.to_json(), "depth": parent.depth + 1,
        }  # fmt: skip
        allowance = None if self.allowances is None else await self.allowances(
            workflow.workspace_id
        )
        try:
            async with self.database.transaction() as session:
                dialect = self.database.dialect
                insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
                created = (await session.execute(
                    insert(Execution).values(values)
                    .on_conflict_do_nothing(index_elements=["parent_key"])
                    .returning(Execution.id)
                )).one_or_none()  # fmt: skip
                if created is not None and allowance is not None:
                    over = await claim_start(session, workflow.workspace_id, allowance.quota,
                                             dialect=dialect, inserted=1)  # fmt: skip
                    if over is not None:
                        raise _OverLimit(over)
                if created is not None:
                    session.add(ExecutionEvent(
                        execution_id=execution_id, seq=1, type=EventType.EXECUTION_QUEUED.value,
                        data=queued, created_at=now,
                    ))  # fmt: skip
        except _OverLimit as refused:  # rolled back: no child, nothing counted
            assert allowance is not None
            limit, value, usage = refused.args[0]
            error = refusal(over_limit(Limit(limit), value, usage, now=datetime.now(UTC),
                                       period_end=allowance.period_end))  # fmt: skip
            return ChildExecution("", "failed", error={
                "message": f"the sub-workflow was not started: {error.detail}",
                "code": error.code, **error.extra,
            })  # fmt: skip
        if created is None:  # another process started it a moment ago
            found = await self._find(key)
            assert found is not None
            return found
        await self.queue.enqueue(execution_job(execution_id, Priority.NORMAL))
        return ChildExecution(str(execution_id), ExecutionStatus.QUEUED.value)

    # -- waking parents ------------------------------------------------------

    async def wake(self, parent_id: uuid.UUID) -> bool:
        """Resume `parent_id` if it waits for children and all of them have ended;
        whether this call resumed it."""
        async with self.database.session() as session:
            tail = (await session.scalars(
                select(ExecutionEvent).where(ExecutionEvent.execution_id == parent_id)
                .order_by(ExecutionEvent.seq.desc()).limit(1)
            )).one_or_none()  # fmt: skip
            if tail is None or tail.type != EventType.EXECUTION_WAITING.value:
                return False
            children = _child_ids(tail.data.get("children"))
            if not children:
                return False
            going = (await session.scalars(
                select(Execution.id).where(Execution.id.in_(children),
                                           Execution.status.in_(_UNFINISHED)).limit(1)
            )).first()  # fmt: skip
        if going is not None:
            return False
        seq = tail.seq

        def same_wait(last: ExecutionEvent | None) -> None:
            if last is None or last.seq != seq:
                raise _WaitMoved

        try:
            async with self.database.transaction() as session:
                moved = await move_execution(
                    session, parent_id, ExecutionStatus.QUEUED,
                    event_type=EventType.EXECUTION_RESUMED.value,
                    data={"by": "children", "payload": {"children": [str(c) for c in children]}},
                    only_from=frozenset({ExecutionStatus.WAITING}), values={"wait_until": None},
                    check=same_wait,
                )  # fmt: skip
        except (StoreConflict, _WaitMoved):
            return False  # resumed (or moved on) by someone else at the same moment
        if moved is None:
            return False
        await self.queue.enqueue(execution_job(parent_id, Priority.HIGH))
        return True

    async def recover(self) -> int:
        """Resume the parents left waiting for children that have all ended (a process
        died between a child's end and the check); returns how many were resumed."""
        child = aliased(Execution)
        keyed = (
            (child.parent_execution_id == Execution.id)
            & child.parent_key.is_not(None)
            & (child.trigger_type == TriggerType.SUBWORKFLOW)
        )
        statement = select(Execution.id).where(
            Execution.status == ExecutionStatus.WAITING,
            exists().where(keyed),
            ~exists().where(keyed & child.status.in_(_UNFINISHED)),
        )
        async with self.database.session() as session:
            parents = list(await session.scalars(statement))
        woken = 0
        for parent_id in parents:
            woken += await self.wake(parent_id)
        return woken


def _child_ids(raw: object) -> Sequence[uuid.UUID]:
    if not isinstance(raw, list):
        return ()
    try:
        return [uuid.UUID(str(value)) for value in raw]
    except ValueError:
        return ()
