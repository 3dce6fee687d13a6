"""Login sessions: access tokens with rotating refresh tokens, and their revocation.

Invariants:
- A login creates a session family; each refresh creates the family's next
  row and marks the presented row replaced (`replaced_by_id`). The database
  keeps only SHA-256 hashes of refresh tokens.
- A refresh token works once, but for a short grace (`REUSE_GRACE`) after it
  was replaced: a client that raced itself (two tabs refreshing at once) or
  retried a refresh whose answer it lost presents it again within seconds,
  and gets a new pair of its own (a sibling successor in the family) as long
  as the successor it was replaced by is unused. Presenting a replaced token
  later, or after its successor was used, means it leaked: the whole family
  is revoked, which also kills every access token issued in it (they are
  checked against their row). The time a row was replaced is its
  `last_used_at`, written with `replaced_by_id` and never otherwise.
- The claim of a row is a conditional UPDATE: of two concurrent refreshes
  with one token one claims it; the other (on PostgreSQL it waits for the
  first to commit) then finds it replaced and takes the grace path above.
- Logout revokes the caller's family; a password reset revokes every family
  of the user; turning MFA on revokes every family but the caller's (a
  session started before the second factor was required must not outlive it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.security.tokens import AccessTokens, hash_opaque_token, new_opaque_token
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import RequestInfo
from linkflow.services.errors import Unauthorized
from linkflow.store import Database, User, UserSession, new_id, utcnow

__all__ = ["REUSE_GRACE", "IssuedTokens", "Sessions"]

REUSE_GRACE: Final = timedelta(seconds=10)
"""How long after its rotation a refresh token still gets a pair: long enough for
simultaneous refreshes and a client's retry of a lost answer, short enough that a
token stolen later is detected as reused."""


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """What a successful login or refresh hands the client."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds until the access token expires."""


class _Reused(Exception):
    """Raised inside the refresh transaction to roll it back before revoking the family."""

    def __init__(self, family_id: uuid.UUID) -> None:
        self.family_id = family_id


def _refresh_refused(code: str = "invalid_refresh_token") -> Unauthorized:
    return Unauthorized("the refresh token is invalid, expired or revoked", code=code)


async def _reread(session: AsyncSession, row_id: uuid.UUID) -> UserSession:
    """The row as committed now (on PostgreSQL a statement sees what committed before it)."""
    statement = (
        select(UserSession)
        .where(UserSession.id == row_id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def _within_grace(session: AsyncSession, replaced: UserSession) -> None:
    """Return if `replaced` may still be refreshed (see the module's docstring); raise
    `_Reused` if presenting it means it leaked, `Unauthorized` if its family is revoked."""
    replaced_at = replaced.last_used_at
    if replaced_at is None or utcnow() - replaced_at > REUSE_GRACE:
        raise _Reused(replaced.family_id)
    successor = await session.get(UserSession, replaced.replaced_by_id, populate_existing=True)
    if successor is None or successor.replaced_by_id is not None:
        raise _Reused(replaced.family_id)
    if replaced.revoked_at is not None or successor.revoked_at is not None:
        raise _refresh_refused()


class Sessions:
    """Starts, rotates and revokes login sessions."""

    def __init__(
        self, database: Database, tokens: AccessTokens, refresh_ttl: timedelta, cache: AuthCache
    ) -> None:
        self.database = database
        self.tokens = tokens
        self.refresh_ttl = refresh_ttl
        self.cache = cache

    async def start(
        self,
        session: AsyncSession,
        user_id: uuid.UUID,
        request: RequestInfo,
        *,
        family_id: uuid.UUID | None = None,
    ) -> tuple[UserSession, IssuedTokens]:
        """Add a session row (a new family unless given) in `session`'s transaction."""
        refresh_token = new_opaque_token()
        row = UserSession(
            id=new_id(),
            user_id=user_id,
            family_id=family_id or new_id(),
            refresh_token_hash=hash_opaque_token(refresh_token),
            expires_at=utcnow() + self.refresh_ttl,
            ip_address=request.ip,
            user_agent=request.user_agent and request.user_agent[:512],
        )
        session.add(row)
        await session.flush()
        access = self.tokens.issue(user_id, row.id)
        expires_in = int(self.tokens.ttl.total_seconds())
        return row, IssuedTokens(access, refresh_token, expires_in)

    async def refresh(self, refresh_token: str, request: RequestInfo) -> IssuedTokens:
        """A new token pair for a live refresh token; the presented one dies (after
        `REUSE_GRACE`)."""
        token_hash = hash_opaque_token(refresh_token)
        try:
            async with self.database.transaction() as session:
                statement = (
                    select(UserSession, User)
                    .join(User, User.id == UserSession.user_id)
                    .where(UserSession.refresh_token_hash == token_hash)
                )
                found = (await session.execute(statement)).one_or_none()
                if found is None:
                    raise _refresh_refused()
                current, user = found
                if current.replaced_by_id is not None:
                    await _within_grace(session, current)
                if (
                    current.revoked_at is not None
                    or current.expires_at <= utcnow()
                    or user.deleted_at is not None
                    or user.suspended_at is not None
                ):
                    raise _refresh_refused()
                successor, issued = await self.start(
                    session, current.user_id, request, family_id=current.family_id
                )
                if current.replaced_by_id is None:
                    claimed = await session.execute(
                        update(UserSession)
                        .where(UserSession.id == current.id, UserSession.replaced_by_id.is_(None))
                        .values(replaced_by_id=successor.id, last_used_at=utcnow())
                        .returning(UserSession.id)
                    )
                    if claimed.first() is None:  # a concurrent refresh claimed it first
                        await _within_grace(session, await _reread(session, current.id))
                return issued
        except _Reused as reused:
            await self.revoke_family(reused.family_id)
            raise _refresh_refused("refresh_token_reused") from None

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                update(UserSession)
                .where(UserSession.family_id == family_id, UserSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        self.cache.clear()

    async def logout(self, session_id: uuid.UUID) -> None:
        """Revoke the family the session `session_id` belongs to."""
        async with self.database.transaction() as session:
            family = await session.scalar(
                select(UserSession.family_id).where(UserSession.id == session_id)
            )
            if family is None:
                return
            await session.execute(
                update(UserSession)
                .where(UserSession.family_id == family, UserSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        self.cache.clear()

    @staticmethod
    async def revoke_all(session: AsyncSession, user_id: uuid.UUID) -> None:
        """Revoke every session of `user_id` inside the caller's transaction."""
        await session.execute(
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )

    @staticmethod
    async def revoke_others(
        session: AsyncSession, user_id: uuid.UUID, keep_session_id: uuid.UUID
    ) -> None:
        """Revoke every session of `user_id` but the family of `keep_session_id`, inside the
        caller's transaction."""
        kept_family = (
            select(UserSession.family_id).where(UserSession.id == keep_session_id)
        ).scalar_subquery()
        await session.execute(
            update(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.revoked_at.is_(None),
                UserSession.family_id != kept_family,
            )
            .values(revoked_at=utcnow())
        )
