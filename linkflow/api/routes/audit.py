"""`/api/v1/audit-logs`: the current workspace's audit trail, for its admins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel

from linkflow.api.deps import CurrentWorkspace, Paging, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import ListOf
from linkflow.security.rbac import Permission
from linkflow.services.audit import AuditFilter
from linkflow.services.errors import Forbidden

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/audit-logs", tags=["audit"])

Filter = Annotated[str | None, Query(max_length=64)]


class AuditLogOut(BaseModel):
    id: uuid.UUID
    workspace_id: uuid.UUID | None
    actor_user_id: uuid.UUID | None
    actor_api_key_id: uuid.UUID | None
    action: str
    resource_type: str
    resource_id: str | None
    old_values: dict[str, Any] | None
    new_values: dict[str, Any] | None
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime

    model_config = {"from_attributes": True}


@router.get("")
async def list_audit_logs(
    access: CurrentWorkspace,
    services: Services,
    paging: Paging,
    action: Filter = None,
    resource_type: Filter = None,
    resource_id: Filter = None,
    actor_id: Annotated[uuid.UUID | None, Query()] = None,
    since: Annotated[AwareDatetime | None, Query(description="Inclusive.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Exclusive.")] = None,
    instance: Annotated[
        bool, Query(description="Platform admins: the instance-level entries (users) instead.")
    ] = False,
) -> ListOf[AuditLogOut]:
    """Newest first, filtered by action, resource, actor and time."""
    if instance:
        if not access.principal.is_admin:
            raise Forbidden("only platform administrators", code="admin_required")
        workspace_id = None
    else:
        access.require(Permission.AUDIT_READ)
        workspace_id = access.workspace_id
    where = AuditFilter(
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        actor_user_id=actor_id,
        since=since,
        until=until,
    )
    page = await services.audit.list(workspace_id, where, limit=paging.limit, cursor=paging.cursor)
    return ListOf[AuditLogOut](
        data=[AuditLogOut.model_validate(row) for row in page.items], next_cursor=page.next_cursor
    )
