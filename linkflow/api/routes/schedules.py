"""`/api/v1/schedules`: the timers of active workflows' schedule triggers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from linkflow.api.deps import CurrentActor, CurrentWorkspace, Paging
from linkflow.api.json_body import JSONRoute
from linkflow.api.plane import PlaneServices
from linkflow.api.schemas import ListOf
from linkflow.services.schedules import ScheduleChanges

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/schedules", tags=["schedules"])


class ScheduleIn(BaseModel):
    workflow_id: uuid.UUID
    node_id: str = Field(min_length=1, max_length=64)
    cron: str | None = Field(default=None, max_length=255, examples=["0 9 * * 1-5"])
    interval_s: int | None = Field(default=None, ge=1)
    timezone: str = Field(default="UTC", max_length=64)
    input: dict[str, Any] | None = None


class SchedulePatch(BaseModel):
    cron: str | None = Field(default=None, max_length=255)
    interval_s: int | None = Field(default=None, ge=1)
    timezone: str | None = Field(default=None, max_length=64)
    input: dict[str, Any] | None = None


class ScheduleOut(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID
    node_id: str
    cron: str | None
    interval_s: int | None
    timezone: str
    input: Any
    status: str
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime

    model_config = {"from_attributes": True}


@router.get("")
async def list_schedules(
    access: CurrentWorkspace, plane: PlaneServices, paging: Paging,
    workflow_id: uuid.UUID | None = None,
) -> ListOf[ScheduleOut]:  # fmt: skip
    page = await plane.schedules.list_page(access, limit=paging.limit, cursor=paging.cursor,
                                           workflow_id=workflow_id)  # fmt: skip
    return ListOf[ScheduleOut](data=[ScheduleOut.model_validate(r) for r in page.items],
                               next_cursor=page.next_cursor)  # fmt: skip


@router.post("", status_code=201)
async def create_schedule(
    body: ScheduleIn, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> ScheduleOut:
    """A schedule for a schedule trigger of an active workflow that has none (activation
    creates one per trigger from its parameters)."""
    changes = ScheduleChanges(cron=body.cron, interval_s=body.interval_s,
                              timezone=body.timezone, input=body.input)  # fmt: skip
    row = await plane.schedules.create(access, actor, body.workflow_id, body.node_id, changes)
    return ScheduleOut.model_validate(row)


@router.get("/{schedule_id}")
async def get_schedule(
    schedule_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> ScheduleOut:
    return ScheduleOut.model_validate(await plane.schedules.get(access, schedule_id))


@router.put("/{schedule_id}")
async def update_schedule(
    schedule_id: uuid.UUID, body: SchedulePatch, access: CurrentWorkspace, actor: CurrentActor,
    plane: PlaneServices,
) -> ScheduleOut:  # fmt: skip
    """Change the timing (cron or interval, time zone) or the input the runs receive."""
    changes = ScheduleChanges(**body.model_dump())
    return ScheduleOut.model_validate(await plane.schedules.update(access, actor, schedule_id,
                                                                   changes))  # fmt: skip


@router.post("/{schedule_id}/pause")
async def pause_schedule(
    schedule_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> ScheduleOut:
    row = await plane.schedules.set_paused(access, actor, schedule_id, True)
    return ScheduleOut.model_validate(row)


@router.post("/{schedule_id}/resume")
async def resume_schedule(
    schedule_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> ScheduleOut:
    row = await plane.schedules.set_paused(access, actor, schedule_id, False)
    return ScheduleOut.model_validate(row)


@router.delete("/{schedule_id}", status_code=204)
async def delete_schedule(
    schedule_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> Response:
    await plane.schedules.delete(access, actor, schedule_id)
    return Response(status_code=204)
