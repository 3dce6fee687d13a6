"""Workspace members: list, invite by e-mail, accept, change role, remove or leave.

Invariants:
- An invitation is a member row with `status = invited`, the invited e-mail
  and the SHA-256 of a random token; it expires `invitation_ttl` after it
  was sent, and only a logged-in user with the invited e-mail can accept it
  (to anyone else it does not exist).
- Only owners make or unmake owners; admins manage everyone else.
- A workspace always keeps an active owner: removing, demoting or letting
  leave its last owner is a `Conflict` (`last_owner`). The owner rows are
  read under a row lock, so two concurrent demotions cannot both pass.
- A member row of another workspace is `NotFound`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.security.rbac import Permission, Role, role_rank
from linkflow.security.tokens import hash_opaque_token, new_opaque_token
from linkflow.services._paging import Page, page
from linkflow.services.audit import record
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import Actor, Principal, WorkspaceAccess
from linkflow.services.errors import Conflict, Forbidden, NotFound
from linkflow.services.mail import Email
from linkflow.services.plan_limits import Limit
from linkflow.services.plans import PlanLimits
from linkflow.store import (
    Database,
    MemberRole,
    MemberStatus,
    User,
    Workspace,
    WorkspaceMember,
    utcnow,
)

__all__ = ["Invitation", "MemberView", "Members"]


@dataclass(frozen=True, slots=True)
class MemberView:
    member: WorkspaceMember
    user: User | None


@dataclass(frozen=True, slots=True)
class Invitation:
    member: WorkspaceMember
    token: str
    email: Email


def _not_found() -> NotFound:
    return NotFound("member not found", code="member_not_found")


def _values(member: WorkspaceMember) -> dict[str, object]:
    return {
        "user_id": member.user_id,
        "role": member.role,
        "status": member.status,
        "invite_email": member.invite_email,
    }


class Members:
    def __init__(
        self, database: Database, invitation_ttl: timedelta, public_url: str, cache: AuthCache,
        limits: PlanLimits | None = None,
    ) -> None:
        self.database = database
        self.limits = limits
        """Checks the plan's team-member limit at invitation (None: no limit)."""
        self.cache = cache
        self.invitation_ttl = invitation_ttl
        self.public_url = public_url.rstrip("/")

    async def list(
        self, access: WorkspaceAccess, *, limit: int, cursor: str | None
    ) -> Page[MemberView]:
        access.require(Permission.MEMBERS_READ)
        statement = select(WorkspaceMember).where(
            WorkspaceMember.workspace_id == access.workspace_id
        )
        async with self.database.session() as session:
            members: Page[WorkspaceMember] = await page(
                session,
                statement,
                created_at=WorkspaceMember.created_at,
                row_id=WorkspaceMember.id,
                limit=limit,
                cursor=cursor,
            )
            ids = [member.user_id for member in members.items if member.user_id is not None]
            users = {
                user.id: user
                for user in (await session.scalars(select(User).where(User.id.in_(ids))))
            }
        views = [
            MemberView(member, users.get(member.user_id) if member.user_id else None)
            for member in members.items
        ]
        return Page(items=views, next_cursor=members.next_cursor)

    async def invite(
        self, access: WorkspaceAccess, actor: Actor, email: str, role: Role
    ) -> Invitation:
        access.require(Permission.MEMBERS_MANAGE)
        if role is Role.OWNER and access.role is not Role.OWNER:
            raise Forbidden("only owners can invite owners", code="insufficient_role")
        email = email.strip().lower()
        token = new_opaque_token()
        async with self.database.transaction() as session:
            workspace = await session.get(Workspace, access.workspace_id)
            assert workspace is not None  # resolved by the caller's access
            existing = await session.scalar(
                select(WorkspaceMember)
                .outerjoin(User, User.id == WorkspaceMember.user_id)
                .where(
                    WorkspaceMember.workspace_id == access.workspace_id,
                    (User.email == email) | (WorkspaceMember.invite_email == email),
                )
            )
            if existing is not None and existing.status is MemberStatus.ACTIVE:
                raise Conflict(f"{email} is already a member", code="already_member")
            if self.limits is not None and existing is None:
                # An invitation takes a seat: members and pending invitations count.
                await self.limits.check(session, access.workspace_id, Limit.TEAM_MEMBERS)
            member = existing or WorkspaceMember(workspace_id=access.workspace_id)
            member.role = MemberRole(role.value)
            member.status = MemberStatus.INVITED
            member.invite_email = email
            member.invite_token_hash = hash_opaque_token(token)
            member.invited_by_id = actor.user_id
            member.invited_at = utcnow()
            session.add(member)
            await session.flush()
            await record(
                session,
                actor,
                "member.invited",
                "workspace_member",
                member.id,
                workspace_id=access.workspace_id,
                new=_values(member),
            )
        text = (
            f"You are invited to join the LinkFlow workspace {workspace.name!r} "
            f"as {role.value}.\n\n"
            f"Log in (or register) with this e-mail address, then accept:\n"
            f"{self.public_url}/invitations/accept?token={token}\n\n"
            f"or send this token to POST /api/v1/workspaces/invitations/accept:\n{token}\n"
        )
        mail = Email(to=email, subject=f"Join {workspace.name} on LinkFlow", text=text)
        return Invitation(member=member, token=token, email=mail)

    async def accept(self, principal: Principal, actor: Actor, token: str) -> WorkspaceMember:
        principal.require_user_session()
        async with self.database.transaction() as session:
            member = await session.scalar(
                select(WorkspaceMember)
                .join(Workspace, Workspace.id == WorkspaceMember.workspace_id)
                .where(
                    WorkspaceMember.invite_token_hash == hash_opaque_token(token),
                    WorkspaceMember.status == MemberStatus.INVITED,
                    Workspace.deleted_at.is_(None),
                )
                .with_for_update()
            )
            if (
                member is None
                or member.invite_email != principal.user.email
                or member.invited_at is None
                or member.invited_at + self.invitation_ttl <= utcnow()
            ):
                raise NotFound("invitation not found or expired", code="invitation_not_found")
            already = await session.scalar(
                select(func.count())
                .select_from(WorkspaceMember)
                .where(
                    WorkspaceMember.workspace_id == member.workspace_id,
                    WorkspaceMember.user_id == principal.user_id,
                )
            )
            if already:
                raise Conflict("you are already a member", code="already_member")
            member.user_id = principal.user_id
            member.status = MemberStatus.ACTIVE
            member.invite_token_hash = None
            member.joined_at = utcnow()
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict("you are already a member", code="already_member") from None
            await record(
                session,
                actor,
                "member.joined",
                "workspace_member",
                member.id,
                workspace_id=member.workspace_id,
                new=_values(member),
            )
        return member

    async def change_role(
        self, access: WorkspaceAccess, actor: Actor, member_id: uuid.UUID, role: Role
    ) -> MemberView:
        access.require(Permission.MEMBERS_MANAGE)
        async with self.database.transaction() as session:
            member = await self._get(session, access, member_id)
            self._check_rank(access, member, role)
            old = _values(member)
            if member.role is MemberRole.OWNER and role is not Role.OWNER:
                await self._keep_an_owner(session, access.workspace_id, member)
            member.role = MemberRole(role.value)
            await session.flush()
            await record(
                session,
                actor,
                "member.updated",
                "workspace_member",
                member.id,
                workspace_id=access.workspace_id,
                old=old,
                new=_values(member),
            )
            user = await session.get(User, member.user_id) if member.user_id else None
        self.cache.clear()
        return MemberView(member, user)

    async def remove(self, access: WorkspaceAccess, actor: Actor, member_id: uuid.UUID) -> None:
        """Remove a member or an invitation; anyone may remove themselves (leave)."""
        async with self.database.transaction() as session:
            member = await self._get(session, access, member_id)
            if member.user_id != access.principal.user_id:
                access.require(Permission.MEMBERS_MANAGE)
                self._check_rank(access, member, Role(member.role.value))
            if member.role is MemberRole.OWNER and member.status is MemberStatus.ACTIVE:
                await self._keep_an_owner(session, access.workspace_id, member)
            await record(
                session,
                actor,
                "member.removed",
                "workspace_member",
                member.id,
                workspace_id=access.workspace_id,
                old=_values(member),
            )
            await session.delete(member)
        self.cache.clear()

    async def _get(
        self, session: AsyncSession, access: WorkspaceAccess, member_id: uuid.UUID
    ) -> WorkspaceMember:
        member = await session.scalar(
            select(WorkspaceMember)
            .where(
                WorkspaceMember.id == member_id,
                WorkspaceMember.workspace_id == access.workspace_id,
            )
            .with_for_update()
        )
        if member is None:
            raise _not_found()
        return member

    @staticmethod
    def _check_rank(access: WorkspaceAccess, member: WorkspaceMember, role: Role) -> None:
        target = Role(member.role.value)
        if access.role is Role.OWNER:
            return
        if role_rank(target) >= role_rank(Role.OWNER) or role_rank(role) >= role_rank(Role.OWNER):
            raise Forbidden("only owners can change owners", code="insufficient_role")

    @staticmethod
    async def _keep_an_owner(
        session: AsyncSession, workspace_id: uuid.UUID, leaving: WorkspaceMember
    ) -> None:
        owners = (
            await session.scalars(
                select(WorkspaceMember.id)
                .where(
                    WorkspaceMember.workspace_id == workspace_id,
                    WorkspaceMember.role == MemberRole.OWNER,
                    WorkspaceMember.status == MemberStatus.ACTIVE,
                )
                .with_for_update()
            )
        ).all()
        if [owner for owner in owners if owner != leaving.id] == []:
            raise Conflict("a workspace must keep at least one owner", code="last_owner")
