"""`/api/v1/workspaces`: workspaces, their members and invitations.

A workspace named in the path is resolved for the caller first: one they are
not an active member of is 404, exactly like one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic import BaseModel, Field, StringConstraints

from linkflow.api.deps import (
    CurrentActor,
    CurrentPrincipal,
    CurrentWorkspace,
    Paging,
    Services,
    workspace_access,
)
from linkflow.api.json_body import JSONRoute
from linkflow.api.schemas import EmailAddress, ListOf, MemberOut, WorkspaceOut
from linkflow.security.rbac import Role
from linkflow.services.mail import send_in_background
from linkflow.services.members import MemberView

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/workspaces", tags=["workspaces"])

WorkspaceName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)
]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class WorkspaceIn(BaseModel):
    name: WorkspaceName
    slug: Slug | None = None


class WorkspaceUpdateIn(BaseModel):
    name: WorkspaceName | None = None
    settings: dict[str, Any] | None = None


class InviteIn(BaseModel):
    email: EmailAddress
    role: Role = Role.MEMBER


class InvitationOut(MemberOut):
    invite_token: str = Field(description="Also e-mailed to the invitee; shown once.")


class RoleIn(BaseModel):
    role: Role


class AcceptIn(BaseModel):
    token: Token


def _workspace(workspace: Any, role: str | None) -> WorkspaceOut:
    return WorkspaceOut.model_validate(workspace).model_copy(update={"role": role})


def _member(view: MemberView) -> MemberOut:
    member, user = view.member, view.user
    return MemberOut(
        id=member.id,
        workspace_id=member.workspace_id,
        user_id=member.user_id,
        email=user.email if user else member.invite_email,
        name=user.name if user else None,
        role=member.role.value,
        status=member.status.value,
        invited_at=member.invited_at,
        joined_at=member.joined_at,
        created_at=member.created_at,
    )


@router.post("", status_code=201)
async def create_workspace(
    body: WorkspaceIn, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> WorkspaceOut:
    """A new workspace, with you as its owner."""
    workspace, role = await services.workspaces.create(principal, actor, body.name, body.slug)
    return _workspace(workspace, role.value)


@router.get("")
async def list_workspaces(
    principal: CurrentPrincipal, services: Services, paging: Paging
) -> ListOf[WorkspaceOut]:
    """The workspaces you are a member of."""
    page = await services.workspaces.list_for(principal, limit=paging.limit, cursor=paging.cursor)
    return ListOf[WorkspaceOut](
        data=[_workspace(w, role.value) for w, role in page.items], next_cursor=page.next_cursor
    )


@router.get("/current")
async def current_workspace(access: CurrentWorkspace, services: Services) -> WorkspaceOut:
    """The workspace requests act in: `X-Workspace-ID`, or your default one."""
    return _workspace(await services.workspaces.get(access), access.role.value)


@router.post("/invitations/accept")
async def accept_invitation(
    body: AcceptIn, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> MemberOut:
    """Join the workspace an invitation (sent to your e-mail) is for."""
    member = await services.members.accept(principal, actor, body.token)
    return _member(MemberView(member, principal.user))


@router.get("/{workspace_id}")
async def get_workspace(
    workspace_id: uuid.UUID, principal: CurrentPrincipal, services: Services
) -> WorkspaceOut:
    access = await workspace_access(principal, services, workspace_id)
    return _workspace(await services.workspaces.get(access), access.role.value)


@router.put("/{workspace_id}")
async def update_workspace(
    workspace_id: uuid.UUID,
    body: WorkspaceUpdateIn,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> WorkspaceOut:
    """Rename or change settings (admins and owners); omitted fields stay."""
    access = await workspace_access(principal, services, workspace_id)
    workspace = await services.workspaces.update(
        access, actor, name=body.name, settings=body.settings
    )
    return _workspace(workspace, access.role.value)


@router.delete("/{workspace_id}", status_code=204)
async def delete_workspace(
    workspace_id: uuid.UUID, principal: CurrentPrincipal, actor: CurrentActor, services: Services
) -> Response:
    """Delete a workspace (owners; not a personal workspace)."""
    access = await workspace_access(principal, services, workspace_id)
    await services.workspaces.delete(access, actor)
    return Response(status_code=204)


@router.get("/{workspace_id}/members")
async def list_members(
    workspace_id: uuid.UUID, principal: CurrentPrincipal, services: Services, paging: Paging
) -> ListOf[MemberOut]:
    access = await workspace_access(principal, services, workspace_id)
    page = await services.members.list(access, limit=paging.limit, cursor=paging.cursor)
    return ListOf[MemberOut](
        data=[_member(view) for view in page.items], next_cursor=page.next_cursor
    )


@router.post("/{workspace_id}/members", status_code=201)
async def invite_member(
    workspace_id: uuid.UUID,
    body: InviteIn,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
    background: BackgroundTasks,
) -> InvitationOut:
    """Invite someone by e-mail (admins; only owners invite owners)."""
    access = await workspace_access(principal, services, workspace_id)
    invitation = await services.members.invite(access, actor, body.email, body.role)
    background.add_task(send_in_background, services.mailer, invitation.email)
    out = _member(MemberView(invitation.member, None))
    return InvitationOut(**out.model_dump(), invite_token=invitation.token)


@router.put("/{workspace_id}/members/{member_id}")
async def change_member_role(
    workspace_id: uuid.UUID,
    member_id: uuid.UUID,
    body: RoleIn,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> MemberOut:
    access = await workspace_access(principal, services, workspace_id)
    return _member(await services.members.change_role(access, actor, member_id, body.role))


@router.delete("/{workspace_id}/members/{member_id}", status_code=204)
async def remove_member(
    workspace_id: uuid.UUID,
    member_id: uuid.UUID,
    principal: CurrentPrincipal,
    actor: CurrentActor,
    services: Services,
) -> Response:
    """Remove a member or an invitation; your own membership: leave (not as last owner)."""
    access = await workspace_access(principal, services, workspace_id)
    await services.members.remove(access, actor, member_id)
    return Response(status_code=204)
