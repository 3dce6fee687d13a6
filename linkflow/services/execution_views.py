"""Executions as users see them: start, read, list, cancel, retry, history.

Reads come from the `executions` and `node_executions` projections; the
history (`logs`) from `execution_events`. Every query is scoped by the
caller's workspace: another workspace's execution is simply not found.

Lists hold summaries (`execution_summary`): no input or output, whose sizes
the database measures instead, so a page of large executions stays small; the
detail (`get`) has the data, its output cut to its first items
(`execution_outputs.preview`) with `output_items` and `output_next_cursor`;
`outputs` pages the whole output, and each node's.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, LargeBinary, Text, case, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import defer

from linkflow.bus import Bus
from linkflow.bus.envelope import event_data, message, stamp
from linkflow.engine import EventType
from linkflow.nodes.sdk import BlobStore
from linkflow.queue import Priority
from linkflow.security.rbac import Permission
from linkflow.services._paging import Page, ordinal_page, page
from linkflow.services.context import WorkspaceAccess
from linkflow.services.errors import Conflict, NotFound
from linkflow.services.execution_outputs import ExecutionOutputs, preview
from linkflow.services.executions import ExecutionService, NewExecution, require_queue
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import (
    Database,
    EventRepository,
    Execution,
    ExecutionEvent,
    ExecutionStatus,
    NodeExecution,
    StoreConflict,
    TriggerType,
    Workflow,
    move_execution,
    new_id,
)
from linkflow.worker.consumer import CancelRegistry

__all__ = ["ExecutionFilter", "ExecutionViews", "execution_json", "execution_summary"]

_FINISHED = {"completed", "failed", "cancelled", "timeout"}
_STATUS_OF_EVENT = {
    "execution.completed": "completed", "execution.failed": "failed",
    "execution.cancelled": "cancelled", "execution.timed_out": "timeout",
    "execution.waiting": "waiting",
}  # fmt: skip
HEADLINE_CHARS = 200
"""A list shows an error's first line up to this long; the detail has it whole."""
PROJECTION_WAIT_S = 5.0
"""How long a waiting caller gives the row to catch up with the history."""
_END_EVENTS = frozenset(
    {"execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out",
     "execution.waiting"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    workflow_id: uuid.UUID | None = None
    status: ExecutionStatus | None = None
    since: datetime | None = None
    until: datetime | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def execution_json(row: Execution, nodes: builtins.list[NodeExecution] | None) -> dict[str, Any]:
    """The contract's shape of `GET /executions/{id}` (nodes omitted in lists); `output`
    holds the first items only, `output_items` says how many there are, and
    `output_next_cursor` (null when all are shown) pages on at `/executions/{id}/output`."""
    output, total, rest = row.output, None, None
    if isinstance(output, list):
        shown = preview(output)
        output, total, rest = shown.items, shown.total, shown.next_cursor
    body: dict[str, Any] = {
        "id": str(row.id), "workflow_id": str(row.workflow_id),
        "workflow_version": row.workflow_version, "status": row.status.value,
        "trigger_type": row.trigger_type.value, "priority": row.priority.value,
        "input": row.input, "output": output, "output_items": total,
        "output_next_cursor": rest, "error": row.error,
        "parent_execution_id": str(row.parent_execution_id) if row.parent_execution_id else None,
        "queued_at": _iso(row.queued_at), "started_at": _iso(row.started_at),
        "completed_at": _iso(row.completed_at), "wait_until": _iso(row.wait_until),
    }  # fmt: skip
    if nodes is not None:
        body["nodes"] = [
            {"node_id": n.node_id, "node_type": n.node_type, "run": n.run_index,
             "status": n.status.value, "attempts": n.attempts,
             "started_at": _iso(n.started_at), "completed_at": _iso(n.completed_at),
             "duration_ms": n.duration_ms, "items_in": n.items_in, "items_out": n.items_out,
             "error": n.error}
            for n in nodes
        ]  # fmt: skip
    return body


def execution_summary(row: Execution, sizes: tuple[int, int, int, int]) -> dict[str, Any]:
    """An execution in a list: the detail's fields but input, output and nodes, the
    sizes of input and output (`*_bytes` as stored, `*_items`: an object is one item, a
    list its length) and the error's headline (`{message, node_id}`, the message's first
    line). `row` must not have loaded input or output (`_SUMMARY_COLUMNS`)."""
    error = row.error
    headline: dict[str, Any] | None = None
    if error is not None:
        message = str(error.get("message") or "")
        first = message.split("\n", 1)[0]
        if len(first) > HEADLINE_CHARS:
            first = first[:HEADLINE_CHARS] + "…"
        headline = {"message": first, "node_id": error.get("node_id")}
    input_bytes, output_bytes, input_items, output_items = sizes
    return {
        "id": str(row.id), "workflow_id": str(row.workflow_id),
        "workflow_version": row.workflow_version, "status": row.status.value,
        "trigger_type": row.trigger_type.value, "priority": row.priority.value,
        "error": headline,
        "parent_execution_id": str(row.parent_execution_id) if row.parent_execution_id else None,
        "queued_at": _iso(row.queued_at), "started_at": _iso(row.started_at),
        "completed_at": _iso(row.completed_at), "wait_until": _iso(row.wait_until),
        "input_bytes": input_bytes, "output_bytes": output_bytes,
        "input_items": input_items, "output_items": output_items,
    }  # fmt: skip


def _bytes_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """The stored JSON's length in bytes (PostgreSQL: of JSONB's text form)."""
    if dialect == "postgresql":
        return func.coalesce(func.octet_length(sql_cast(column, Text)), 0)
    return func.coalesce(func.length(sql_cast(column, LargeBinary)), 0)


def _items_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """How many items the stored JSON holds: a list's length, 1 for an object, else 0."""
    postgres = dialect == "postgresql"
    type_of = func.jsonb_typeof if postgres else func.json_type
    length_of = func.jsonb_array_length if postgres else func.json_array_length
    return case(
        (type_of(column) == "array", length_of(column)),
        (type_of(column) == "object", 1),
        else_=0,
    )


class ExecutionViews:
    def __init__(
        self,
        database: Database,
        writer: GroupCommitWriter,
        executions: ExecutionService,
        cancels: CancelRegistry,
        bus: Bus | None = None,
        *,
        blobs: BlobStore | None = None,
    ) -> None:
        self.database = database
        self.writer = writer
        self.executions = executions
        self.cancels = cancels
        self.bus = bus
        self.outputs = ExecutionOutputs(database, blobs)
        """Pages of an execution's output and of each node's (`blobs`: large outputs)."""

    async def start_and_wait(
        self,
        access: WorkspaceAccess,
        workflow_id: uuid.UUID,
        input: Any,
        priority: Priority,
        bus: Bus,
        limit_s: float,
    ) -> dict[str, Any]:
        """Queue a run and wait (at most `limit_s`) for it to end; the execution as it is."""
        require_queue(self.executions.queue)  # Redis away: refused before asking its bus
        execution_id = new_id()
        async with bus.subscribe(f"execution.{execution_id}", kinds=_END_EVENTS) as events:
            await self.start(access, workflow_id, input, priority, execution_id=execution_id)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limit_s
            while (left := deadline - loop.time()) > 0:
                try:
                    message = await events.get(timeout_s=left)
                except TimeoutError:
                    break
                if message["event"] in _END_EVENTS:
                    return await self._projected(access, execution_id, message["event"])
        return await self.get(access, execution_id)

    async def _projected(
        self, access: WorkspaceAccess, execution_id: uuid.UUID, event: str
    ) -> dict[str, Any]:
        """The execution once its row shows what `event` said (the worker writes the row
        right behind the event, without waiting)."""
        wanted = _STATUS_OF_EVENT[event]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROJECTION_WAIT_S
        while True:
            body = await self.get(access, execution_id)
            if body["status"] == wanted or loop.time() > deadline:
                return body
            await asyncio.sleep(0.005)

    async def start(
        self,
        access: WorkspaceAccess,
        workflow_id: uuid.UUID,
        input: Any,
        priority: Priority,
        *,
        execution_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Queue a manual run of the workflow's current version."""
        access.require(Permission.WORKFLOWS_EXECUTE)
        async with self.database.session() as session:
            workflow = (
                await session.scalars(
                    select(Workflow).where(
                        Workflow.id == workflow_id,
                        Workflow.workspace_id == access.workspace_id,
                        Workflow.deleted_at.is_(None),
                    )
                )
            ).one_or_none()
        if workflow is None:
            raise NotFound(f"there is no workflow {workflow_id}", code="workflow_not_found")
        return await self.executions.create(
            NewExecution(
                workspace_id=access.workspace_id, workflow_id=workflow.id,
                workflow_version=workflow.version, input=input, priority=priority,
                trigger_type=TriggerType.MANUAL, created_by_id=access.principal.user_id,
                id=execution_id,
            )
        )  # fmt: skip

    async def get(
        self, access: WorkspaceAccess, execution_id: uuid.UUID,
        *, resume_url: Callable[[uuid.UUID], str] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The execution with its nodes. With `resume_url` (`ResumeLinks.url`), a caller who
        may run workflows also sees `resume_url` while it waits for a resume webhook (the
        URL resumes it, so it is shown only to those who could have started it)."""
        access.require(Permission.EXECUTIONS_READ)
        shown_url: str | None = None
        async with self.database.session() as session:
            row = await self._row(session, access, execution_id)
            if (
                resume_url is not None
                and row.status is ExecutionStatus.WAITING
                and access.can(Permission.WORKFLOWS_EXECUTE)
                and await _waits_for_webhook(session, execution_id)
            ):
                shown_url = resume_url(execution_id)
            nodes = (
                await session.scalars(
                    select(NodeExecution)
                    .where(NodeExecution.execution_id == execution_id)
                    .order_by(
                        NodeExecution.started_at.is_(None),  # skipped nodes last
                        NodeExecution.started_at,
                        NodeExecution.node_id,
                    )
                )
            ).all()
        body = execution_json(row, list(nodes))
        body["resume_url"] = shown_url
        return body

    async def list_page(
        self, access: WorkspaceAccess, where: ExecutionFilter, *, limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        access.require(Permission.EXECUTIONS_READ)
        statement = (
            select(Execution)
            .where(Execution.workspace_id == access.workspace_id)
            .options(defer(Execution.input, raiseload=True),
                     defer(Execution.output, raiseload=True))
        )  # fmt: skip
        if where.workflow_id is not None:
            statement = statement.where(Execution.workflow_id == where.workflow_id)
        if where.status is not None:
            statement = statement.where(Execution.status == where.status)
        if where.since is not None:
            statement = statement.where(Execution.queued_at >= where.since)
        if where.until is not None:
            statement = statement.where(Execution.queued_at < where.until)
        async with self.database.session() as session:
            rows: Page[Execution] = await page(
                session, cast(Any, statement), created_at=Execution.created_at,
                row_id=Execution.id, limit=limit, cursor=cursor,
            )  # fmt: skip
            sizes = await self._sizes(session, [row.id for row in rows.items])
        return Page(
            [execution_summary(row, sizes.get(row.id, (0, 0, 0, 0))) for row in rows.items],
            rows.next_cursor,
        )

    async def _sizes(
        self, session: Any, ids: builtins.list[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[int, int, int, int]]:
        """Input and output sizes of a page's executions, measured by the database (the
        data itself never leaves it)."""
        if not ids:
            return {}
        dialect = self.database.dialect
        statement = select(
            Execution.id,
            _bytes_of(Execution.input, dialect), _bytes_of(Execution.output, dialect),
            _items_of(Execution.input, dialect), _items_of(Execution.output, dialect),
        ).where(Execution.id.in_(ids))  # fmt: skip
        rows = (await session.execute(statement)).all()
        return {row[0]: (int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows}

    async def logs(self, access: WorkspaceAccess, execution_id: uuid.UUID) -> list[dict[str, Any]]:
        """The whole history, in order (the event stream replays it)."""
        access.require(Permission.EXECUTIONS_READ)
        async with self.database.session() as session:
            await self._row(session, access, execution_id)
            events = await EventRepository(session).read(execution_id)
        return [_event_json(e) for e in events]

    async def logs_page(
        self, access: WorkspaceAccess, execution_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> Page[dict[str, Any]]:
        """One page of the history, in `seq` order (oldest first, unlike other lists: a
        history is read from its start, and a page's cursor resumes after its last event)."""
        access.require(Permission.EXECUTIONS_READ)
        statement = select(ExecutionEvent).where(ExecutionEvent.execution_id == execution_id)
        async with self.database.session() as session:
            await self._row(session, access, execution_id)
            rows: Page[ExecutionEvent] = await ordinal_page(
                session, cast(Any, statement), position=ExecutionEvent.seq, limit=limit,
                cursor=cursor, descending=False,
            )  # fmt: skip
        return Page([_event_json(e) for e in rows.items], rows.next_cursor)

    async def cancel(self, access: WorkspaceAccess, execution_id: uuid.UUID) -> dict[str, Any]:
        """A queued or waiting execution stops at once; a running one at its next node."""
        access.require(Permission.EXECUTIONS_WRITE)
        async with self.database.session() as session:
            row = await self._row(session, access, execution_id)
        if row.status.value in _FINISHED:
            raise Conflict(f"the execution is already {row.status.value}", code="already_finished")
        if not await self._cancel_now(execution_id):
            # Running (or taken by a worker meanwhile): the request is stored before the
            # answer, and its worker, in whatever process, stops at the next node.
            async with self.database.transaction() as session:
                await session.execute(
                    update(Execution)
                    .where(Execution.id == execution_id,
                           Execution.status.in_([ExecutionStatus.RUNNING, ExecutionStatus.QUEUED]))
                    .values(cancel_reason="cancelled by user")
                )  # fmt: skip
            self.cancels.request(execution_id, "cancelled by user")
        return await self.get(access, execution_id)

    async def _cancel_now(self, execution_id: uuid.UUID) -> bool:
        """Cancel a queued or waiting execution in one compare-and-set; False when it is
        not (or no longer) queued or waiting."""
        data: dict[str, Any] = {"reason": "cancelled by user"}
        try:
            async with self.database.transaction() as session:
                event = await move_execution(
                    session, execution_id, ExecutionStatus.CANCELLED,
                    event_type=EventType.EXECUTION_CANCELLED.value, data=data,
                    only_from=frozenset({ExecutionStatus.QUEUED, ExecutionStatus.WAITING}),
                    values={"completed_at": datetime.now(UTC)},
                )  # fmt: skip
        except StoreConflict:
            return False  # a worker appended first: it owns the execution now
        if event is None:
            return False
        if self.bus is not None:
            channel = f"execution.{execution_id}"
            data = event_data(str(execution_id), event.seq, None, event.data)
            at = stamp(event.created_at or datetime.now(UTC))
            self.bus.publish(channel, message(channel, event.type, data, at))
        return True

    async def retry(
        self, access: WorkspaceAccess, execution_id: uuid.UUID, *, from_failed: bool
    ) -> uuid.UUID:
        """A new execution of the same version and input; with `from_failed`, nodes that
        completed are not run again: their recorded events are carried over."""
        access.require(Permission.EXECUTIONS_WRITE)
        async with self.database.session() as session:
            row = await self._row(session, access, execution_id)
            events = list(await EventRepository(session).read(execution_id)) if from_failed else []
        if row.status not in (ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT,
                              ExecutionStatus.CANCELLED):  # fmt: skip
            raise Conflict("only a failed, timed-out or cancelled execution can be retried",
                           code="not_retryable")  # fmt: skip
        retry_id = new_id()
        carried = _completed_prefix(events)
        await self.executions.create(
            NewExecution(
                workspace_id=row.workspace_id, workflow_id=row.workflow_id,
                workflow_version=row.workflow_version, input=row.input,
                trigger_type=TriggerType.RETRY, parent_execution_id=row.id, id=retry_id,
                created_by_id=access.principal.user_id, priority=Priority(row.priority.value),
                start_node=_start_node(events),
            ),
            carried=[(e.type, e.node_id, e.data, e.created_at) for e in carried],
        )  # fmt: skip
        return retry_id

    async def _row(
        self, session: Any, access: WorkspaceAccess, execution_id: uuid.UUID
    ) -> Execution:
        row: Execution | None = (
            await session.scalars(
                select(Execution).where(
                    Execution.id == execution_id, Execution.workspace_id == access.workspace_id
                )
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"there is no execution {execution_id}", code="execution_not_found")
        return row

    async def count_running(self, access: WorkspaceAccess) -> int:
        async with self.database.session() as session:
            return int(
                await session.scalar(
                    select(func.count()).where(
                        Execution.workspace_id == access.workspace_id,
                        Execution.status == ExecutionStatus.RUNNING,
                    )
                )
                or 0
            )


async def _waits_for_webhook(session: Any, execution_id: uuid.UUID) -> bool:
    """Whether the execution's latest event is a wait that a resume webhook may end."""
    last: ExecutionEvent | None = await session.scalar(
        select(ExecutionEvent)
        .where(ExecutionEvent.execution_id == execution_id)
        .order_by(ExecutionEvent.seq.desc())
        .limit(1)
    )
    return (last is not None and last.type == EventType.EXECUTION_WAITING.value
            and bool(last.data.get("webhook")))  # fmt: skip


def _event_json(event: ExecutionEvent) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "node_id": event.node_id, "data": event.data,
            "timestamp": event.created_at.isoformat()}  # fmt: skip


def _start_node(events: builtins.list[ExecutionEvent]) -> str | None:
    for event in events:
        if event.type == EventType.EXECUTION_STARTED.value:
            start = event.data.get("start_node")
            return start if isinstance(start, str) else None
    return None


def _completed_prefix(events: builtins.list[ExecutionEvent]) -> builtins.list[ExecutionEvent]:
    """The events after `execution.queued` up to the start of the step that failed.

    Replaying them rebuilds every completed node's output; the failed node and
    everything after it run again.
    """
    cut = len(events)
    for index, event in enumerate(events):
        if event.type in (EventType.NODE_FAILED.value, EventType.EXECUTION_FAILED.value,
                          EventType.EXECUTION_TIMED_OUT.value,
                          EventType.EXECUTION_CANCELLED.value):  # fmt: skip
            cut = index
            break
    prefix = events[1:cut]
    # Drop the failed node's own start and retries: it must run afresh.
    while prefix and prefix[-1].type in (EventType.NODE_STARTED.value,
                                         EventType.NODE_RETRYING.value):  # fmt: skip
        prefix.pop()
    return prefix
