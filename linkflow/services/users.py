"""Users: one's own profile, other users one shares a workspace with, the admin list.

Invariants:
- A user is visible to another only through a shared active membership (or
  to a platform admin); anyone else is 404, as if they did not exist.
- Changing one's e-mail or password needs the current password; a new
  password passes the same rules as at registration and ends every other
  login session of the account.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from linkflow.security.passwords import Passwords
from linkflow.services._paging import Page, page
from linkflow.services.accounts import USER_FIELDS, check_new_password
from linkflow.services.audit import record, snapshot
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import Actor, Principal
from linkflow.services.errors import Conflict, Forbidden, Invalid, NotFound
from linkflow.store import (
    Database,
    MemberStatus,
    User,
    UserRepository,
    UserSession,
    WorkspaceMember,
    utcnow,
)

__all__ = ["ProfileChange", "Users"]


@dataclass(frozen=True, slots=True)
class ProfileChange:
    name: str | None = None
    email: str | None = None
    new_password: str | None = None
    current_password: str | None = None


class Users:
    def __init__(self, database: Database, passwords: Passwords, cache: AuthCache) -> None:
        self.database = database
        self.cache = cache
        self.passwords = passwords

    async def update_me(self, principal: Principal, actor: Actor, change: ProfileChange) -> User:
        principal.require_user_session()
        sensitive = change.email is not None or change.new_password is not None
        if sensitive and not await self.passwords.verify(
            principal.user.password_hash, change.current_password or ""
        ):
            raise Invalid(
                "changing the e-mail or password needs the current password",
                code="invalid_password",
            )
        email = change.email.strip().lower() if change.email is not None else None
        password_hash = None
        if change.new_password is not None:
            check_new_password(
                change.new_password,
                email=email or principal.user.email,
                name=change.name or principal.user.name,
            )
            password_hash = await self.passwords.hash(change.new_password)
        try:
            async with self.database.transaction() as session:
                user = await session.get(User, principal.user_id, with_for_update=True)
                if user is None or user.deleted_at is not None:
                    raise NotFound("user not found", code="user_not_found")
                old = snapshot(user, USER_FIELDS)
                if change.name is not None:
                    user.name = change.name
                if email is not None and email != user.email:
                    if await UserRepository(session).get_by_email(email) is not None:
                        raise Conflict("an account with this e-mail exists", code="email_taken")
                    user.email = email
                    user.email_verified_at = None
                if password_hash is not None:
                    user.password_hash = password_hash
                    await session.execute(
                        update(UserSession)
                        .where(
                            UserSession.user_id == user.id,
                            UserSession.revoked_at.is_(None),
                            UserSession.id != principal.session_id,
                        )
                        .values(revoked_at=utcnow())
                    )
                await session.flush()
                new = snapshot(user, USER_FIELDS)
                if password_hash is not None:
                    new["password"] = "changed"  # noqa: S105 - a marker, redacted anyway
                await record(session, actor, "user.updated", "user", user.id, old=old, new=new)
        except IntegrityError:
            raise Conflict("an account with this e-mail exists", code="email_taken") from None
        self.cache.clear()
        return user

    async def get_visible(self, principal: Principal, user_id: uuid.UUID) -> User:
        """`user_id` if the caller shares an active workspace with them (or is an admin)."""
        if user_id == principal.user_id:
            return principal.user
        theirs = aliased(WorkspaceMember)
        mine = aliased(WorkspaceMember)
        shared = (
            select(theirs.id)
            .join(mine, mine.workspace_id == theirs.workspace_id)
            .where(
                theirs.user_id == user_id,
                theirs.status == MemberStatus.ACTIVE,
                mine.user_id == principal.user_id,
                mine.status == MemberStatus.ACTIVE,
            )
        )
        if principal.api_key is not None:
            shared = shared.where(theirs.workspace_id == principal.api_key.workspace_id)
        statement = select(User).where(User.id == user_id, User.deleted_at.is_(None))
        if not principal.is_admin:
            statement = statement.where(shared.exists())
        async with self.database.session() as session:
            user = (await session.scalars(statement)).one_or_none()
        if user is None:
            raise NotFound("user not found", code="user_not_found")
        return user

    async def list_all(
        self, principal: Principal, *, limit: int, cursor: str | None, email: str | None
    ) -> Page[User]:
        """Every live user, for platform admins."""
        if not principal.is_admin:
            raise Forbidden("only platform administrators list users", code="admin_required")
        statement = select(User).where(User.deleted_at.is_(None))
        if email:
            statement = statement.where(User.email == email.strip().lower())
        async with self.database.session() as session:
            return await page(
                session,
                statement,
                created_at=User.created_at,
                row_id=User.id,
                limit=limit,
                cursor=cursor,
            )
