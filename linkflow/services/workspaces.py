"""Workspaces: create (personal ones at registration), list, read, rename, delete.

Invariants:
- The creator of a workspace is its first owner (an active member row).
- A personal workspace cannot be deleted: it is the account's default.
- Deletion is soft (`deleted_at`); every query of the API hides such rows,
  and membership checks treat them as absent (404).
- Callers are authorised by `WorkspaceAccess` before they get here; the
  workspace id they pass has been resolved for them.
"""

from __future__ import annotations

import re
import secrets
from typing import Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.security.rbac import Permission
from linkflow.services._paging import Page, page
from linkflow.services.audit import record, snapshot
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import Actor, Principal, WorkspaceAccess
from linkflow.services.errors import Conflict, NotFound
from linkflow.store import (
    Database,
    MemberRole,
    MemberStatus,
    User,
    Workspace,
    WorkspaceMember,
    utcnow,
)

__all__ = ["WORKSPACE_FIELDS", "Workspaces", "create_workspace", "slugify"]

WORKSPACE_FIELDS: Final = ("name", "slug", "owner_id", "is_personal", "settings")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")
_SLUG_WORDS: Final = 48  # leaves room for "-" and the random suffix in the 64-char column


def slugify(text: str) -> str:
    """A URL-safe, unique-enough slug: the text's words and six random hex digits."""
    base = _SLUG_UNSAFE.sub("-", text.lower()).strip("-")[:_SLUG_WORDS].strip("-") or "workspace"
    return f"{base}-{secrets.token_hex(3)}"


async def create_workspace(
    session: AsyncSession,
    owner: User,
    name: str,
    actor: Actor,
    *,
    personal: bool = False,
    slug: str | None = None,
) -> Workspace:
    """Add a workspace and its owner's membership in `session`'s transaction."""
    workspace = Workspace(
        name=name,
        slug=slug or slugify(name),
        owner_id=owner.id,
        is_personal=personal,
        settings={},
    )
    session.add(workspace)
    await session.flush()
    member = WorkspaceMember(
        workspace_id=workspace.id,
        user_id=owner.id,
        role=MemberRole.OWNER,
        status=MemberStatus.ACTIVE,
        joined_at=utcnow(),
    )
    session.add(member)
    await session.flush()
    await record(
        session,
        actor,
        "workspace.created",
        "workspace",
        workspace.id,
        workspace_id=workspace.id,
        new=snapshot(workspace, WORKSPACE_FIELDS),
    )
    await record(
        session,
        actor,
        "member.created",
        "workspace_member",
        member.id,
        workspace_id=workspace.id,
        new={"user_id": owner.id, "role": member.role, "status": member.status},
    )
    return workspace


class Workspaces:
    """Workspace use cases; authorisation is the caller's `WorkspaceAccess`."""

    def __init__(self, database: Database, cache: AuthCache) -> None:
        self.database = database
        self.cache = cache

    async def create(
        self, principal: Principal, actor: Actor, name: str, slug: str | None
    ) -> tuple[Workspace, MemberRole]:
        principal.require_user_session()
        async with self.database.transaction() as session:
            if slug is not None and await session.scalar(
                select(func.count()).select_from(Workspace).where(Workspace.slug == slug)
            ):
                raise Conflict(f"the slug {slug!r} is taken", code="slug_taken")
            workspace = await create_workspace(session, principal.user, name, actor, slug=slug)
        return workspace, MemberRole.OWNER

    async def list_for(
        self, principal: Principal, *, limit: int, cursor: str | None
    ) -> Page[tuple[Workspace, MemberRole]]:
        """The workspaces the caller is an active member of (an API key: its own)."""
        statement = (
            select(WorkspaceMember)
            .join(Workspace, Workspace.id == WorkspaceMember.workspace_id)
            .where(
                WorkspaceMember.user_id == principal.user_id,
                WorkspaceMember.status == MemberStatus.ACTIVE,
                Workspace.deleted_at.is_(None),
            )
        )
        if principal.api_key is not None:
            statement = statement.where(Workspace.id == principal.api_key.workspace_id)
        async with self.database.session() as session:
            members: Page[WorkspaceMember] = await page(
                session,
                statement,
                created_at=WorkspaceMember.created_at,
                row_id=WorkspaceMember.id,
                limit=limit,
                cursor=cursor,
            )
            ids = [member.workspace_id for member in members.items]
            rows = (await session.scalars(select(Workspace).where(Workspace.id.in_(ids)))).all()
        by_id = {workspace.id: workspace for workspace in rows}
        items = [(by_id[member.workspace_id], member.role) for member in members.items]
        return Page(items=items, next_cursor=members.next_cursor)

    async def get(self, access: WorkspaceAccess) -> Workspace:
        access.require(Permission.WORKSPACE_READ)
        async with self.database.session() as session:
            workspace = await session.get(Workspace, access.workspace_id)
        if workspace is None or workspace.deleted_at is not None:
            raise NotFound("workspace not found", code="workspace_not_found")
        return workspace

    async def update(
        self,
        access: WorkspaceAccess,
        actor: Actor,
        *,
        name: str | None,
        settings: dict[str, object] | None,
    ) -> Workspace:
        access.require(Permission.WORKSPACE_UPDATE)
        async with self.database.transaction() as session:
            workspace = await session.get(Workspace, access.workspace_id, with_for_update=True)
            if workspace is None or workspace.deleted_at is not None:
                raise NotFound("workspace not found", code="workspace_not_found")
            old = snapshot(workspace, ("name", "settings"))
            if name is not None:
                workspace.name = name
            if settings is not None:
                workspace.settings = dict(settings)  # type: ignore[arg-type]
            await session.flush()
            await record(
                session,
                actor,
                "workspace.updated",
                "workspace",
                workspace.id,
                workspace_id=workspace.id,
                old=old,
                new=snapshot(workspace, ("name", "settings")),
            )
        return workspace

    async def delete(self, access: WorkspaceAccess, actor: Actor) -> None:
        access.require(Permission.WORKSPACE_DELETE)
        async with self.database.transaction() as session:
            workspace = await session.get(Workspace, access.workspace_id, with_for_update=True)
            if workspace is None or workspace.deleted_at is not None:
                raise NotFound("workspace not found", code="workspace_not_found")
            if workspace.is_personal:
                raise Conflict("a personal workspace cannot be deleted", code="personal_workspace")
            await session.execute(
                update(Workspace).where(Workspace.id == workspace.id).values(deleted_at=utcnow())
            )
            await record(
                session,
                actor,
                "workspace.deleted",
                "workspace",
                workspace.id,
                workspace_id=workspace.id,
                old=snapshot(workspace, WORKSPACE_FIELDS),
            )
        self.cache.clear()
