"""`/api/v1/api-keys`: keys of the current workspace (`X-Workspace-ID` or the default)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from linkflow.api.deps import CurrentActor, CurrentWorkspace, Paging, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import ListOf
from linkflow.security.rbac import ApiKeyScope

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/api-keys", tags=["api-keys"])


class ApiKeyIn(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    scopes: list[ApiKeyScope] = Field(min_length=1, max_length=len(ApiKeyScope))
    expires_at: AwareDatetime | None = Field(default=None, description="Default: never.")


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID
    name: str
    prefix: str = Field(description="The start of the key, to recognise it.")
    scopes: list[str]
    created_by_id: uuid.UUID | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime

    model_config = {"from_attributes": True}


class ApiKeyCreatedOut(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, never again.")


@router.post("", status_code=201)
async def create_api_key(
    body: ApiKeyIn, access: CurrentWorkspace, actor: CurrentActor, services: Services
) -> ApiKeyCreatedOut:
    """A new key for this workspace, acting for you within `scopes`."""
    row, key = await services.api_keys.create(
        access, actor, name=body.name, scopes=body.scopes, expires_at=body.expires_at
    )
    return ApiKeyCreatedOut(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("")
async def list_api_keys(
    access: CurrentWorkspace, services: Services, paging: Paging
) -> ListOf[ApiKeyOut]:
    """Your keys here (admins: every key of the workspace), revoked ones included."""
    page = await services.api_keys.list(access, limit=paging.limit, cursor=paging.cursor)
    return ListOf[ApiKeyOut](
        data=[ApiKeyOut.model_validate(key) for key in page.items], next_cursor=page.next_cursor
    )


@router.delete("/{key_id}", status_code=204)
async def revoke_api_key(
    key_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, services: Services
) -> Response:
    """Revoke a key: it stops working at once."""
    await services.api_keys.revoke(access, actor, key_id)
    return Response(status_code=204)
