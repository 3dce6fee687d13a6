"""`/api/v1/variables`: workspace variables, read by expressions as `vars`."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from linkflow.api.deps import CurrentActor, CurrentWorkspace
from linkflow.api.json_body import JSONRoute
from linkflow.api.plane import PlaneServices
from linkflow.api.schemas import ListOf

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/variables", tags=["variables"])


class VariableIn(BaseModel):
    key: str = Field(min_length=1, max_length=128, examples=["api_base"])
    value: str = Field(max_length=65536)


class VariableOut(BaseModel):
    id: uuid.UUID
    key: str
    value: str
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


@router.get("")
async def list_variables(access: CurrentWorkspace, plane: PlaneServices) -> ListOf[VariableOut]:
    rows = await plane.variables.list(access)
    return ListOf[VariableOut](data=[VariableOut.model_validate(r) for r in rows], next_cursor=None)


@router.post("", status_code=201)
async def create_variable(
    body: VariableIn, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> VariableOut:
    row = await plane.variables.create(access, actor, body.key, body.value)
    return VariableOut.model_validate(row)


@router.get("/{variable_id}")
async def get_variable(
    variable_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> VariableOut:
    return VariableOut.model_validate(await plane.variables.get(access, variable_id))


@router.put("/{variable_id}")
async def update_variable(
    variable_id: uuid.UUID, body: VariableIn, access: CurrentWorkspace, actor: CurrentActor,
    plane: PlaneServices,
) -> VariableOut:  # fmt: skip
    row = await plane.variables.update(access, actor, variable_id, body.key, body.value)
    return VariableOut.model_validate(row)


@router.delete("/{variable_id}", status_code=204)
async def delete_variable(
    variable_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> Response:
    await plane.variables.delete(access, actor, variable_id)
    return Response(status_code=204)
