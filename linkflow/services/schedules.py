"""Schedules: the timers of active workflows' schedule triggers.

Activating a workflow creates one schedule per schedule trigger (from the
node's parameters); these use cases read them, change their timing or
input, pause and resume them, and delete them. `next_run_at` is computed
whenever the timing changes or a schedule resumes, so the scheduler's due
query stays a plain index scan.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import select

from linkflow.scheduler.timing import next_fire
from linkflow.security.rbac import Permission
from linkflow.services import audit
from linkflow.services._paging import Page, page
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.errors import Conflict, FieldProblem, Invalid, NotFound
from linkflow.store import Database, Schedule, ScheduleStatus, Workflow, WorkflowStatus

__all__ = ["ScheduleChanges", "Schedules"]


@dataclass(frozen=True, slots=True)
class ScheduleChanges:
    cron: str | None = None
    interval_s: int | None = None
    timezone: str | None = None
    input: Any = None


def check_timing(cron: str | None, interval_s: int | None, timezone: str) -> None:
    """`Invalid` unless exactly one of cron (5 or 6 fields) and interval is set, in a
    known time zone."""
    problems = []
    if (cron is None) == (interval_s is None):
        problems.append(FieldProblem("body", "set exactly one of cron and interval_s"))
    if cron is not None:
        six = len(cron.split()) == 6
        if len(cron.split()) not in (5, 6) or not croniter.is_valid(cron, second_at_beginning=six):
            problems.append(FieldProblem("body.cron", "not a 5- or 6-field cron expression"))
    if interval_s is not None and interval_s < 1:
        problems.append(FieldProblem("body.interval_s", "must be at least 1"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(FieldProblem("body.timezone", f"unknown time zone {timezone!r}"))
    if problems:
        raise Invalid("the schedule is not acceptable", errors=problems)


class Schedules:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def list_page(
        self, access: WorkspaceAccess, *, limit: int, cursor: str | None,
        workflow_id: uuid.UUID | None = None,
    ) -> Page[Schedule]:  # fmt: skip
        access.require(Permission.SCHEDULES_READ)
        statement = select(Schedule).where(Schedule.workspace_id == access.workspace_id)
        if workflow_id is not None:
            statement = statement.where(Schedule.workflow_id == workflow_id)
        async with self.database.session() as session:
            return await page(session, cast(Any, statement), created_at=Schedule.created_at,
                              row_id=Schedule.id, limit=limit, cursor=cursor)  # fmt: skip

    async def get(self, access: WorkspaceAccess, schedule_id: uuid.UUID) -> Schedule:
        access.require(Permission.SCHEDULES_READ)
        async with self.database.session() as session:
            return await _row(session, access, schedule_id)

    async def create(
        self, access: WorkspaceAccess, actor: Actor, workflow_id: uuid.UUID, node_id: str,
        changes: ScheduleChanges,
    ) -> Schedule:  # fmt: skip
        """A schedule for a schedule trigger of an active workflow that has none."""
        access.require(Permission.SCHEDULES_WRITE)
        timezone = changes.timezone or "UTC"
        check_timing(changes.cron, changes.interval_s, timezone)
        async with self.database.transaction() as session:
            workflow = (await session.scalars(select(Workflow).where(
                Workflow.id == workflow_id, Workflow.workspace_id == access.workspace_id,
                Workflow.deleted_at.is_(None)))).one_or_none()  # fmt: skip
            if workflow is None:
                raise NotFound(f"there is no workflow {workflow_id}", code="workflow_not_found")
            if workflow.status is not WorkflowStatus.ACTIVE:
                raise Conflict("schedules belong to active workflows", code="workflow_inactive")
            if not _is_schedule_trigger(workflow, node_id):
                raise Invalid(
                    f"node {node_id!r} is not a schedule trigger of this workflow",
                    errors=[FieldProblem("body.node_id", "not a schedule trigger")],
                )
            taken = await session.scalar(select(Schedule.id).where(
                Schedule.workflow_id == workflow_id, Schedule.node_id == node_id))  # fmt: skip
            if taken is not None:
                raise Conflict("this trigger has a schedule already", code="schedule_exists")
            row = Schedule(
                workspace_id=access.workspace_id, workflow_id=workflow_id, node_id=node_id,
                cron=changes.cron, interval_s=changes.interval_s, timezone=timezone,
                input=changes.input if changes.input is not None else {},
                next_run_at=_next(changes.cron, changes.interval_s, timezone),
            )  # fmt: skip
            session.add(row)
            await session.flush()
            await audit.record(session, actor, "schedule.created", "schedule", row.id,
                               workspace_id=access.workspace_id,
                               new={"cron": row.cron, "interval_s": row.interval_s})  # fmt: skip
            return row

    async def update(
        self, access: WorkspaceAccess, actor: Actor, schedule_id: uuid.UUID,
        changes: ScheduleChanges,
    ) -> Schedule:  # fmt: skip
        access.require(Permission.SCHEDULES_WRITE)
        async with self.database.transaction() as session:
            row = await _row(session, access, schedule_id)
            old = audit.snapshot(row, ("cron", "interval_s", "timezone"))
            if changes.cron is not None or changes.interval_s is not None:
                row.cron, row.interval_s = changes.cron, changes.interval_s
            if changes.timezone is not None:
                row.timezone = changes.timezone
            if changes.input is not None:
                row.input = changes.input
            check_timing(row.cron, row.interval_s, row.timezone)
            if row.status is ScheduleStatus.ACTIVE:
                row.next_run_at = _next(row.cron, row.interval_s, row.timezone)
            row.updated_at = datetime.now(UTC)
            await audit.record(
                session,
                actor,
                "schedule.updated",
                "schedule",
                row.id,
                workspace_id=access.workspace_id,
                old=old,
                new=audit.snapshot(row, ("cron", "interval_s", "timezone")),
            )
            return row  # fmt: skip

    async def set_paused(
        self, access: WorkspaceAccess, actor: Actor, schedule_id: uuid.UUID, paused: bool
    ) -> Schedule:
        """Pause (the scheduler skips it) or resume (next_run_at counts from now)."""
        access.require(Permission.SCHEDULES_WRITE)
        async with self.database.transaction() as session:
            row = await _row(session, access, schedule_id)
            row.status = ScheduleStatus.PAUSED if paused else ScheduleStatus.ACTIVE
            row.next_run_at = None if paused else _next(row.cron, row.interval_s, row.timezone)
            row.updated_at = datetime.now(UTC)
            action = "schedule.paused" if paused else "schedule.resumed"
            await audit.record(session, actor, action, "schedule", row.id,
                               workspace_id=access.workspace_id)  # fmt: skip
            return row

    async def delete(self, access: WorkspaceAccess, actor: Actor, schedule_id: uuid.UUID) -> None:
        access.require(Permission.SCHEDULES_WRITE)
        async with self.database.transaction() as session:
            row = await _row(session, access, schedule_id)
            await session.delete(row)
            await audit.record(session, actor, "schedule.deleted", "schedule", row.id,
                               workspace_id=access.workspace_id)  # fmt: skip


def _is_schedule_trigger(workflow: Workflow, node_id: str) -> bool:
    nodes: builtins.list[dict[str, Any]] = workflow.nodes
    return any(n.get("id") == node_id and n.get("type") == "schedule" for n in nodes)


def _next(cron: str | None, interval_s: int | None, timezone: str) -> datetime:
    return next_fire(datetime.now(UTC), cron=cron, interval_s=interval_s, timezone=timezone)


async def _row(session: Any, access: WorkspaceAccess, schedule_id: uuid.UUID) -> Schedule:
    row: Schedule | None = (
        await session.scalars(
            select(Schedule).where(
                Schedule.id == schedule_id, Schedule.workspace_id == access.workspace_id
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"there is no schedule {schedule_id}", code="schedule_not_found")
    return row
