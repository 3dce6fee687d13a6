"""`/api/v1/admin`: instance administration (instance admins only; 403 `admin_required`
to anyone else, API keys included). Every change is audited.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from linkflow.api.deps import CurrentActor, CurrentPrincipal, Paging, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.routes.billing import (
    PlanCode,
    SubscriptionOut,
    UsageOut,
    subscription_out,
    usage_out,
)
from linkflow.api.schemas import ListOf
from linkflow.queue import DeadLetter
from linkflow.services.admin import ExecutionFilter
from linkflow.services.admin_queue import AdminQueue
from linkflow.services.admin_users import require_admin
from linkflow.services.plans import UsageReport
from linkflow.store import ExecutionStatus, Plan, User, Workspace

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/admin", tags=["admin"])

Search = Annotated[str | None, Query(max_length=255, description="Part of e-mail or name.")]


class AdminUserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    is_admin: bool
    suspended_at: datetime | None
    last_login_at: datetime | None
    created_at: datetime

    model_config = {"from_attributes": True}


class AdminWorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str
    owner_id: uuid.UUID
    is_personal: bool
    limit_overrides: dict[str, Any]
    billing_customer_id: str | None
    created_at: datetime

    model_config = {"from_attributes": True}


class AdminWorkspaceDetailOut(AdminWorkspaceOut):
    plan: str
    limits: dict[str, int | None]
    usage: UsageOut


class OverridesIn(BaseModel):
    limits: dict[str, int | None] = Field(
        description="Limit name → value (null: unlimited); the whole set, replacing the old."
    )


class AssignIn(BaseModel):
    plan: PlanCode


class AdminExecutionOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    status: str
    trigger_type: str
    priority: str
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime

    model_config = {"from_attributes": True}


class StatsOut(BaseModel):
    users: dict[str, int]
    workspaces: dict[str, int]
    executions_by_day: list[dict[str, Any]]
    queue: dict[str, int] | None = Field(description="null: this process has no queue.")


class DeadLetterOut(BaseModel):
    id: str
    job: dict[str, Any] | None
    attempts: int
    reason: str
    at: datetime
    raw: str | None


class QueueOut(BaseModel):
    depth: dict[str, int]
    dead_letters: list[DeadLetterOut]


def _queue(request: Request, services: Services) -> AdminQueue:
    plane = getattr(request.app.state, "plane", None)
    return AdminQueue(services.database, getattr(plane, "queue", None))


def _dead(dead: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        id=dead.id,
        job=dead.job.to_json() if dead.job else None,
        attempts=dead.attempts,
        reason=dead.reason,
        at=dead.at,
        raw=dead.raw,
    )


@router.get("/stats")
async def get_stats(
    request: Request,
    principal: CurrentPrincipal,
    services: Services,
    days: Annotated[int, Query(ge=1, le=90, description="Days of executions, today last.")] = 7,
) -> StatsOut:
    """Users, workspaces, executions by status per day, and the queue's depth."""
    stats = await services.admin.stats(principal, days=days)
    queue = _queue(request, services)
    depth = await queue.depth(principal) if queue.queue is not None else None
    return StatsOut(
        users=stats.users,
        workspaces=stats.workspaces,
        executions_by_day=stats.executions_by_day,
        queue=depth,
    )


@router.get("/users")
async def list_users(
    principal: CurrentPrincipal,
    services: Services,
    paging: Paging,
    q: Search = None,
    suspended: bool | None = None,
) -> ListOf[AdminUserOut]:
    page = await services.admin_users.search(
        principal, query=q, suspended=suspended, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[AdminUserOut](
        data=[AdminUserOut.model_validate(u) for u in page.items], next_cursor=page.next_cursor
    )


@router.get("/users/{user_id}")
async def get_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, services: Services
) -> AdminUserOut:
    return AdminUserOut.model_validate(await services.admin_users.get(principal, user_id))


@router.post("/users/{user_id}/suspend")
async def suspend_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> AdminUserOut:
    """Suspend a user: their logins, sessions and API keys stop working at once."""
    user: User = await services.admin_users.suspend(principal, actor, user_id)
    return AdminUserOut.model_validate(user)


@router.post("/users/{user_id}/reactivate")
async def reactivate_user(
    user_id: uuid.UUID, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> AdminUserOut:
    """Lift a suspension; unexpired sessions and keys work again."""
    return AdminUserOut.model_validate(
        await services.admin_users.reactivate(principal, actor, user_id)
    )


@router.get("/workspaces")
async def list_workspaces(
    principal: CurrentPrincipal, services: Services, paging: Paging, q: Search = None
) -> ListOf[AdminWorkspaceOut]:
    page = await services.admin.workspaces(
        principal, query=q, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[AdminWorkspaceOut](
        data=[AdminWorkspaceOut.model_validate(w) for w in page.items], next_cursor=page.next_cursor
    )


def _detail(workspace: Workspace, report: UsageReport) -> AdminWorkspaceDetailOut:
    base = AdminWorkspaceOut.model_validate(workspace)
    return AdminWorkspaceDetailOut(
        **base.model_dump(),
        plan=report.standing.plan.code,
        limits=report.standing.limits.as_dict(),
        usage=usage_out(report),
    )


@router.get("/workspaces/{workspace_id}")
async def get_workspace(
    workspace_id: uuid.UUID, principal: CurrentPrincipal, services: Services
) -> AdminWorkspaceDetailOut:
    """A workspace's plan, limits in force and usage."""
    workspace, report = await services.admin.workspace(principal, workspace_id)
    return _detail(workspace, report)


@router.put("/workspaces/{workspace_id}/limits")
async def override_limits(
    workspace_id: uuid.UUID,
    body: OverridesIn,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> AdminWorkspaceDetailOut:
    """Set the workspace's limit overrides (replacing the previous set; `{}` clears)."""
    await services.admin.override_limits(principal, actor, workspace_id, body.limits)
    workspace, report = await services.admin.workspace(principal, workspace_id)
    return _detail(workspace, report)


@router.put("/workspaces/{workspace_id}/plan")
async def assign_plan(
    workspace_id: uuid.UUID,
    body: AssignIn,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> SubscriptionOut:
    """Put the workspace on a plan (self-hosted; refused while it pays through Stripe)."""
    row = await services.admin.assign_plan(principal, actor, workspace_id, body.plan)
    async with services.database.session() as session:
        plan = await session.get(Plan, row.plan_id)
    return subscription_out(row, plan.code if plan else body.plan)


@router.get("/executions")
async def list_executions(
    principal: CurrentPrincipal,
    services: Services,
    paging: Paging,
    workspace_id: uuid.UUID | None = None,
    workflow_id: uuid.UUID | None = None,
    status: ExecutionStatus | None = None,
) -> ListOf[AdminExecutionOut]:
    """Executions of every workspace, newest first."""
    where = ExecutionFilter(workspace_id=workspace_id, workflow_id=workflow_id, status=status)
    page = await services.admin.executions(
        principal, where, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[AdminExecutionOut](
        data=[AdminExecutionOut.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )


@router.get("/queue")
async def get_queue(
    request: Request,
    principal: CurrentPrincipal,
    services: Services,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> QueueOut:
    """Ready jobs per priority, delayed, in flight and dead; the newest dead letters."""
    require_admin(principal)
    queue = _queue(request, services)
    return QueueOut(
        depth=await queue.depth(principal),
        dead_letters=[_dead(d) for d in await queue.dead_letters(principal, limit=limit)],
    )


@router.post("/queue/dead-letters/{dead_id}/retry")
async def retry_dead_letter(
    dead_id: str,
    request: Request,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> DeadLetterOut:
    """Queue the dead letter's job again (attempts from 1); it leaves the dead letters."""
    return _dead(await _queue(request, services).retry(principal, actor, dead_id))


@router.delete("/queue/dead-letters/{dead_id}")
async def discard_dead_letter(
    dead_id: str,
    request: Request,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> DeadLetterOut:
    """Drop the dead letter for good."""
    return _dead(await _queue(request, services).discard(principal, actor, dead_id))
