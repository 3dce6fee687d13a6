"""Turning a bearer credential into a `Principal`, and a workspace into `WorkspaceAccess`.

This is on the path of every authenticated request, so each step is one
indexed query:
- an access JWT is verified in memory, then the user and the login session
  are read together (a revoked session, i.e. after logout or a detected
  refresh-token reuse, or a suspended user kills its access tokens at once, not at
  expiry);
- an API key is found by its prefix together with its creator and the
  creator's membership in the key's workspace, then its HMAC is checked. A
  key stops working when it is revoked or expired, when its creator leaves
  the workspace, is deleted or suspended, or when the workspace is deleted. A key hashed
  under a previous secret key (`LINKFLOW_SECRET_KEYS_PREVIOUS`) still matches,
  and its stored hash is rewritten under the current one then, so it keeps
  working once the old key is gone.

Every refusal is the same `Unauthorized("invalid_token")`, so a probe learns
nothing about which part was wrong. Principals found are kept a few seconds
in an `AuthCache` (see there for how revocation stays immediate).
`last_used_at` of a key is written at most once a minute per key, so a busy
key costs one write a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import and_, or_, select, update

from linkflow.security.apikeys import hash_api_key, key_matches, lookup_prefix
from linkflow.security.rbac import ApiKeyScope, Role, permissions_for
from linkflow.security.tokens import AccessTokens, InvalidToken
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import ApiKeyGrant, Principal, WorkspaceAccess
from linkflow.services.errors import NotFound, Unauthorized
from linkflow.store import (
    ApiKey,
    Database,
    MemberStatus,
    User,
    UserSession,
    Workspace,
    WorkspaceMember,
    utcnow,
)

__all__ = ["Authenticator", "resolve_workspace"]

LAST_USED_RESOLUTION: Final = timedelta(minutes=1)


def _invalid() -> Unauthorized:
    return Unauthorized("the access token or API key is invalid or expired", code="invalid_token")


class Authenticator:
    """Checks access tokens and API keys against the database."""

    def __init__(
        self, database: Database, tokens: AccessTokens, api_key_secret: bytes, cache: AuthCache,
        *, previous_api_key_secrets: Sequence[bytes] = (),
    ) -> None:  # fmt: skip
        self.database = database
        self.tokens = tokens
        self.cache = cache
        self._api_key_secret = api_key_secret
        self._previous_api_key_secrets = tuple(previous_api_key_secrets)

    async def authenticate(self, credential: str) -> Principal:
        """The caller `credential` (a JWT or an ``lf_`` key) stands for; `Unauthorized` if none."""
        cached = self.cache.get(credential)
        if cached is not None:
            return cached
        if credential.startswith("lf_"):
            principal, expires_at = await self._api_key(credential)
        else:
            principal, expires_at = await self._access_token(credential)
        valid_for = None if expires_at is None else (expires_at - utcnow()).total_seconds()
        self.cache.put(credential, principal, valid_for_s=valid_for)
        return principal

    async def _access_token(self, token: str) -> tuple[Principal, datetime | None]:
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise _invalid() from None
        statement = (
            select(User)
            .join(UserSession, UserSession.user_id == User.id)
            .where(
                User.id == claims.user_id,
                User.deleted_at.is_(None),
                User.suspended_at.is_(None),
                UserSession.id == claims.session_id,
                UserSession.revoked_at.is_(None),
            )
        )
        async with self.database.session() as session:
            user = (await session.scalars(statement)).one_or_none()
        if user is None:
            raise _invalid()
        return Principal(user=user, session_id=claims.session_id), claims.expires_at

    async def _api_key(self, key: str) -> tuple[Principal, datetime | None]:
        prefix = lookup_prefix(key)
        if prefix is None:
            raise _invalid()
        statement = (
            select(ApiKey, User, WorkspaceMember.role)
            .join(User, User.id == ApiKey.created_by_id)
            .join(
                WorkspaceMember,
                and_(
                    WorkspaceMember.workspace_id == ApiKey.workspace_id,
                    WorkspaceMember.user_id == User.id,
                    WorkspaceMember.status == MemberStatus.ACTIVE,
                ),
            )
            .join(Workspace, Workspace.id == ApiKey.workspace_id)
            .where(
                ApiKey.prefix == prefix,
                User.deleted_at.is_(None),
                User.suspended_at.is_(None),
                Workspace.deleted_at.is_(None),
            )
        )
        async with self.database.session() as session:
            row = (await session.execute(statement)).one_or_none()
        if row is None:
            raise _invalid()
        api_key, user, role = row
        now = utcnow()
        if (
            not await self._matches(api_key, key)
            or api_key.revoked_at is not None
            or (api_key.expires_at is not None and api_key.expires_at <= now)
        ):
            raise _invalid()
        if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
            await self._touch(api_key.id)
        scopes = frozenset(
            ApiKeyScope(scope)
            for scope in api_key.scopes
            if scope in ApiKeyScope.__members__.values()
        )
        grant = ApiKeyGrant(
            key_id=api_key.id, workspace_id=api_key.workspace_id, scopes=scopes, role=Role(role)
        )
        return Principal(user=user, api_key=grant), api_key.expires_at

    async def _matches(self, api_key: ApiKey, key: str) -> bool:
        """Whether `key` is `api_key`'s, under the current secret or a previous one."""
        if key_matches(self._api_key_secret, key, api_key.key_hash):
            return True
        for secret in self._previous_api_key_secrets:
            if key_matches(secret, key, api_key.key_hash):
                # Conditional on the old hash: a concurrent request's rewrite wins, same value.
                fresh = hash_api_key(self._api_key_secret, key)
                async with self.database.transaction() as session:
                    await session.execute(update(ApiKey).where(
                        ApiKey.id == api_key.id, ApiKey.key_hash == api_key.key_hash,
                    ).values(key_hash=fresh))  # fmt: skip
                return True
        return False

    async def _touch(self, key_id: uuid.UUID) -> None:
        now = utcnow()
        # Conditional, so concurrent requests of one key write once between them.
        statement = (
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
        )
        async with self.database.transaction() as session:
            await session.execute(statement)


async def resolve_workspace(
    database: Database, principal: Principal, workspace_id: uuid.UUID | None
) -> WorkspaceAccess:
    """What `principal` may do in `workspace_id` (default: their personal workspace).

    A workspace the caller is not an active member of is `NotFound`, exactly
    like one that does not exist. An API key only ever reaches its own.
    """
    grant = principal.api_key
    if grant is not None:
        if workspace_id is not None and workspace_id != grant.workspace_id:
            raise _workspace_not_found()
        return WorkspaceAccess(
            workspace_id=grant.workspace_id,
            role=grant.role,
            permissions=permissions_for(grant.role, grant.scopes),
            principal=principal,
        )
    statement = (
        select(WorkspaceMember.workspace_id, WorkspaceMember.role)
        .join(Workspace, Workspace.id == WorkspaceMember.workspace_id)
        .where(
            WorkspaceMember.user_id == principal.user_id,
            WorkspaceMember.status == MemberStatus.ACTIVE,
            Workspace.deleted_at.is_(None),
        )
    )
    if workspace_id is not None:
        statement = statement.where(Workspace.id == workspace_id)
    else:
        # The personal workspace first, then the oldest membership.
        statement = statement.order_by(
            and_(Workspace.is_personal, Workspace.owner_id == principal.user_id).desc(),
            WorkspaceMember.created_at,
        ).limit(1)
    async with database.session() as session:
        row = (await session.execute(statement)).first()
    if row is None:
        raise _workspace_not_found()
    role = Role(row[1])
    return WorkspaceAccess(
        workspace_id=row[0], role=role, permissions=permissions_for(role), principal=principal
    )


def _workspace_not_found() -> NotFound:
    return NotFound("workspace not found", code="workspace_not_found")
