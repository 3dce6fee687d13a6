"""Instance administration of users: search, suspend, reactivate.

Only instance admins (`users.is_admin`, through a login, never an API key) may call
these; every change is in the instance's audit trail (no workspace).

Invariants:
- A suspended user cannot log in (403 `account_suspended` once the password is right),
  refresh a session, or use an access token or API key: the authentication queries
  exclude them, and `AuthRevocations.revoke_everywhere` clears every API process's
  cache of checked credentials, so the refusal is immediate. Reactivating restores
  the sessions and keys that had not expired meanwhile.
- An admin cannot suspend themselves (the instance would lose its last admin's hand).
"""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.services._paging import Page, page
from linkflow.services.audit import record
from linkflow.services.auth_revocations import AuthRevocations
from linkflow.services.context import Actor, Principal
from linkflow.services.errors import Conflict, Forbidden, NotFound
from linkflow.store import Database, User, utcnow

__all__ = ["AdminUsers", "require_admin"]


def require_admin(principal: Principal) -> None:
    """Refuse (403 `admin_required`) anyone but an instance admin."""
    if not principal.is_admin:
        raise Forbidden("only instance administrators", code="admin_required")


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class AdminUsers:
    def __init__(self, database: Database, revocations: AuthRevocations) -> None:
        self.database = database
        self.revocations = revocations

    async def search(
        self,
        principal: Principal,
        *,
        query: str | None,
        suspended: bool | None,
        limit: int,
        cursor: str | None,
    ) -> Page[User]:
        """Live users, newest first; `query` matches part of the e-mail or the name."""
        require_admin(principal)
        statement = select(User).where(User.deleted_at.is_(None))
        if query:
            pattern = _like(query.strip().lower())
            statement = statement.where(
                or_(User.email.like(pattern, escape="\\"), User.name.ilike(pattern, escape="\\"))
            )
        if suspended is not None:
            statement = statement.where(
                User.suspended_at.is_not(None) if suspended else User.suspended_at.is_(None)
            )
        async with self.database.session() as session:
            return await page(
                session,
                statement,
                created_at=User.created_at,
                row_id=User.id,
                limit=limit,
                cursor=cursor,
            )

    async def get(self, principal: Principal, user_id: uuid.UUID) -> User:
        require_admin(principal)
        async with self.database.session() as session:
            return await _live(session, user_id)

    async def suspend(self, principal: Principal, actor: Actor, user_id: uuid.UUID) -> User:
        require_admin(principal)
        if user_id == principal.user_id:
            raise Conflict("you cannot suspend yourself", code="cannot_suspend_self")
        return await self._set(actor, user_id, suspended=True)

    async def reactivate(self, principal: Principal, actor: Actor, user_id: uuid.UUID) -> User:
        require_admin(principal)
        return await self._set(actor, user_id, suspended=False)

    async def _set(self, actor: Actor, user_id: uuid.UUID, *, suspended: bool) -> User:
        async with self.database.transaction() as session:
            user = await _live(session, user_id, lock=True)
            if (user.suspended_at is not None) != suspended:
                old = {"suspended_at": user.suspended_at}
                user.suspended_at = utcnow() if suspended else None
                await record(
                    session,
                    actor,
                    "user.suspended" if suspended else "user.reactivated",
                    "user",
                    user.id,
                    old=old,
                    new={"suspended_at": user.suspended_at},
                )
        if suspended:
            # After the commit: a process that reads the user again must see it suspended.
            await self.revocations.revoke_everywhere()
        return user


async def _live(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User:
    statement = select(User).where(User.id == user_id, User.deleted_at.is_(None))
    if lock:
        statement = statement.with_for_update()
    user: User | None = await session.scalar(statement)
    if user is None:
        raise NotFound("user not found", code="user_not_found")
    return user
