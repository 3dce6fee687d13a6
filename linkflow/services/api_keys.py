"""API keys of a workspace: create (the key is shown once), list, revoke.

Invariants:
- A key acts for the user who created it, in one workspace, within its
  scopes: its permissions are the creator's role's permissions intersected
  with what the scopes grant (`linkflow.security.rbac`).
- A key cannot hand out more than its creator holds: an API key creating a
  key can only give it a subset of its own scopes.
- Members see and revoke their own keys; admins (`api_keys:manage`) all of
  the workspace's. A key of another workspace, or someone else's without
  that permission, is `NotFound`.
- Revocation sets `revoked_at`; the row stays (the audit trail refers to it).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update

from linkflow.security.apikeys import generate_api_key
from linkflow.security.rbac import ApiKeyScope, Permission
from linkflow.services._paging import Page, page
from linkflow.services.audit import record
from linkflow.services.auth_cache import AuthCache
from linkflow.services.context import Actor, WorkspaceAccess
from linkflow.services.errors import FieldProblem, Forbidden, Invalid, NotFound
from linkflow.store import ApiKey, Database, utcnow

__all__ = ["ApiKeys"]


def _values(key: ApiKey) -> dict[str, object]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "expires_at": key.expires_at,
        "created_by_id": key.created_by_id,
    }


class ApiKeys:
    def __init__(self, database: Database, hmac_key: bytes, cache: AuthCache) -> None:
        self.database = database
        self.cache = cache
        self._hmac_key = hmac_key

    async def create(
        self,
        access: WorkspaceAccess,
        actor: Actor,
        *,
        name: str,
        scopes: Collection[ApiKeyScope],
        expires_at: datetime | None,
    ) -> tuple[ApiKey, str]:
        """The new key's row and the key itself (never retrievable again)."""
        access.require(Permission.API_KEYS_CREATE)
        grant = access.principal.api_key
        if grant is not None and not set(scopes) <= grant.scopes:
            raise Forbidden("a key cannot grant scopes it lacks", code="insufficient_scope")
        if expires_at is not None and expires_at <= utcnow():
            raise Invalid(
                "the expiry is in the past",
                errors=[FieldProblem("body.expires_at", "must be in the future")],
            )
        fresh = generate_api_key(self._hmac_key)
        async with self.database.transaction() as session:
            key = ApiKey(
                workspace_id=access.workspace_id,
                name=name,
                prefix=fresh.prefix,
                key_hash=fresh.key_hash,
                scopes=sorted(scope.value for scope in set(scopes)),
                created_by_id=access.principal.user_id,
                expires_at=expires_at,
            )
            session.add(key)
            await session.flush()
            await record(
                session,
                actor,
                "api_key.created",
                "api_key",
                key.id,
                workspace_id=access.workspace_id,
                new=_values(key),
            )
        return key, fresh.key

    async def list(
        self, access: WorkspaceAccess, *, limit: int, cursor: str | None
    ) -> Page[ApiKey]:
        access.require(Permission.API_KEYS_CREATE)
        statement = select(ApiKey).where(ApiKey.workspace_id == access.workspace_id)
        if not access.can(Permission.API_KEYS_MANAGE):
            statement = statement.where(ApiKey.created_by_id == access.principal.user_id)
        async with self.database.session() as session:
            return await page(
                session,
                statement,
                created_at=ApiKey.created_at,
                row_id=ApiKey.id,
                limit=limit,
                cursor=cursor,
            )

    async def revoke(self, access: WorkspaceAccess, actor: Actor, key_id: uuid.UUID) -> None:
        access.require(Permission.API_KEYS_CREATE)
        conditions = [ApiKey.id == key_id, ApiKey.workspace_id == access.workspace_id]
        if not access.can(Permission.API_KEYS_MANAGE):
            conditions.append(ApiKey.created_by_id == access.principal.user_id)
        async with self.database.transaction() as session:
            key = await session.scalar(select(ApiKey).where(*conditions).with_for_update())
            if key is None:
                raise NotFound("API key not found", code="api_key_not_found")
            if key.revoked_at is None:
                await session.execute(
                    update(ApiKey).where(ApiKey.id == key.id).values(revoked_at=utcnow())
                )
                await record(
                    session,
                    actor,
                    "api_key.revoked",
                    "api_key",
                    key.id,
                    workspace_id=access.workspace_id,
                    old=_values(key),
                )
        self.cache.clear()
