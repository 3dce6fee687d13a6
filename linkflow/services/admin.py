"""Instance administration across workspaces: statistics, workspaces (plan, usage,
limit overrides, plan assignment) and executions.

Only instance admins (`admin_users.require_admin`); every change is audited in the
workspace's trail. Reads span every workspace, which is why they are here and not in
the workspace-scoped services.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.services._paging import Page, page
from linkflow.services.admin_users import require_admin
from linkflow.services.audit import record
from linkflow.services.context import Actor, Principal
from linkflow.services.errors import FieldProblem, Invalid, NotFound
from linkflow.services.plan_limits import Limit
from linkflow.services.plans import PlanLimits, UsageReport
from linkflow.services.subscriptions import Subscriptions
from linkflow.store import (
    Database,
    Execution,
    ExecutionStatus,
    Subscription,
    User,
    Workspace,
)

__all__ = ["Admin", "ExecutionFilter", "Stats"]

OVERRIDABLE = frozenset(limit.value for limit in Limit)


@dataclass(frozen=True, slots=True)
class Stats:
    users: dict[str, int]
    workspaces: dict[str, int]
    executions_by_day: list[dict[str, object]]
    """One entry per day (UTC, oldest first): {"day": "2026-12-04", "<status>": n, ...}."""


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    workspace_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    status: ExecutionStatus | None = None


def _day(database: Database) -> ColumnElement[str]:
    """An execution's creation day as 'YYYY-MM-DD' text, on either engine."""
    if database.dialect == "postgresql":
        return func.to_char(func.timezone("UTC", Execution.created_at), "YYYY-MM-DD")
    return func.substr(Execution.created_at, 1, 10)


class Admin:
    def __init__(self, database: Database, plans: PlanLimits, subscriptions: Subscriptions) -> None:
        self.database = database
        self.plans = plans
        self.subscriptions = subscriptions

    async def stats(self, principal: Principal, *, days: int, now: datetime | None = None) -> Stats:
        require_admin(principal)
        now = now or datetime.now(UTC)
        since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        day = _day(self.database)
        async with self.database.session() as session:
            live = User.deleted_at.is_(None)
            users = {
                "total": await _count(session, select(func.count()).where(live)),
                "admins": await _count(
                    session, select(func.count()).where(live, User.is_admin.is_(True))
                ),
                "suspended": await _count(
                    session, select(func.count()).where(live, User.suspended_at.is_not(None))
                ),
            }
            workspaces = {
                "total": await _count(
                    session,
                    select(func.count())
                    .select_from(Workspace)
                    .where(Workspace.deleted_at.is_(None)),
                )
            }
            rows = (
                await session.execute(
                    select(day, Execution.status, func.count())
                    .where(Execution.created_at >= since)
                    .group_by(day, Execution.status)
                )
            ).all()
        by_day: dict[str, dict[str, object]] = {}
        for offset in range(days):
            label = (since + timedelta(days=offset)).strftime("%Y-%m-%d")
            by_day[label] = {"day": label} | dict.fromkeys(
                (status.value for status in ExecutionStatus), 0
            )
        for label, status, count in rows:
            if label in by_day:
                by_day[label][ExecutionStatus(status).value] = int(count)
        return Stats(users, workspaces, list(by_day.values()))

    async def workspaces(
        self, principal: Principal, *, query: str | None, limit: int, cursor: str | None
    ) -> Page[Workspace]:
        require_admin(principal)
        statement = select(Workspace).where(Workspace.deleted_at.is_(None))
        if query:
            text = query.strip().lower()
            statement = statement.where(
                or_(
                    Workspace.slug.contains(text, autoescape=True),
                    Workspace.name.icontains(text, autoescape=True),
                )
            )
        async with self.database.session() as session:
            return await page(
                session,
                statement,
                created_at=Workspace.created_at,
                row_id=Workspace.id,
                limit=limit,
                cursor=cursor,
            )

    async def workspace(
        self, principal: Principal, workspace_id: uuid.UUID
    ) -> tuple[Workspace, UsageReport]:
        require_admin(principal)
        async with self.database.session() as session:
            workspace = await _workspace(session, workspace_id)
        return workspace, await self.plans.usage(workspace_id)

    async def override_limits(
        self,
        principal: Principal,
        actor: Actor,
        workspace_id: uuid.UUID,
        overrides: Mapping[str, int | None],
    ) -> Workspace:
        """Replace the workspace's overrides: each named limit replaces the plan's (null:
        unlimited); a limit left out follows the plan again."""
        require_admin(principal)
        unknown = sorted(set(overrides) - OVERRIDABLE)
        bad = sorted(
            name
            for name, value in overrides.items()
            if value is not None and (isinstance(value, bool) or value < 0)
        )
        if unknown or bad:
            raise Invalid(
                "the overrides name unknown limits or negative values",
                code="invalid_limit_override",
                errors=[FieldProblem(f"body.limits.{name}", "not a limit") for name in unknown]
                + [FieldProblem(f"body.limits.{name}", "must be >= 0 or null") for name in bad],
            )
        async with self.database.transaction() as session:
            workspace = await _workspace(session, workspace_id, lock=True)
            old = dict(workspace.limit_overrides or {})
            workspace.limit_overrides = dict(overrides)
            await record(
                session,
                actor,
                "workspace.limits_overridden",
                "workspace",
                workspace.id,
                workspace_id=workspace.id,
                old={"limits": old},
                new={"limits": dict(overrides)},
            )
        return workspace

    async def assign_plan(
        self, principal: Principal, actor: Actor, workspace_id: uuid.UUID, plan: str
    ) -> Subscription:
        require_admin(principal)
        return await self.subscriptions.assign(workspace_id, plan, actor)

    async def executions(
        self, principal: Principal, where: ExecutionFilter, *, limit: int, cursor: str | None
    ) -> Page[Execution]:
        """Executions of every workspace, newest first."""
        require_admin(principal)
        statement = select(Execution)
        if where.workspace_id is not None:
            statement = statement.where(Execution.workspace_id == where.workspace_id)
        if where.workflow_id is not None:
            statement = statement.where(Execution.workflow_id == where.workflow_id)
        if where.status is not None:
            statement = statement.where(Execution.status == where.status)
        async with self.database.session() as session:
            return await page(
                session,
                statement,
                created_at=Execution.created_at,
                row_id=Execution.id,
                limit=limit,
                cursor=cursor,
            )


async def _count(session: AsyncSession, statement: object) -> int:
    return int(await session.scalar(statement) or 0)  # type: ignore[call-overload]


async def _workspace(
    session: AsyncSession, workspace_id: uuid.UUID, *, lock: bool = False
) -> Workspace:
    statement = select(Workspace).where(
        Workspace.id == workspace_id, Workspace.deleted_at.is_(None)
    )
    if lock:
        statement = statement.with_for_update()
    workspace = await session.scalar(statement)
    if workspace is None:
        raise NotFound("workspace not found", code="workspace_not_found")
    return workspace
