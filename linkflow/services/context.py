"""Who is calling and from where: the values every use case is handed by the edge.

`Principal` is an authenticated caller: a user through an access token, or an
API key acting for the user who created it, in one workspace, within its
scopes. `WorkspaceAccess` is what that caller may do in the workspace a
request addresses. `Actor` is what the audit log records about a change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from linkflow.security.rbac import ROLE_PERMISSIONS, ApiKeyScope, Permission, Role
from linkflow.services.errors import Forbidden
from linkflow.store import User

__all__ = ["Actor", "ApiKeyGrant", "Principal", "RequestInfo", "WorkspaceAccess"]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Where a request came from, for sessions and the audit log."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, as the audit log records it."""

    user_id: uuid.UUID | None
    api_key_id: uuid.UUID | None
    request: RequestInfo

    @classmethod
    def anonymous(cls, request: RequestInfo) -> Actor:
        return cls(user_id=None, api_key_id=None, request=request)


@dataclass(frozen=True, slots=True)
class ApiKeyGrant:
    """What an API key brings: its id, workspace, scopes and its creator's role there."""

    key_id: uuid.UUID
    workspace_id: uuid.UUID
    scopes: frozenset[ApiKeyScope]
    role: Role


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `user` is the row as loaded for this request."""

    user: User
    session_id: uuid.UUID | None = None
    api_key: ApiKeyGrant | None = None

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        """A platform administrator (not a workspace role); never through an API key."""
        return self.user.is_admin and self.api_key is None

    @property
    def rate_key(self) -> str:
        """The identity rate limits and idempotency keys are counted against."""
        return f"key:{self.api_key.key_id}" if self.api_key else f"user:{self.user.id}"

    def actor(self, request: RequestInfo) -> Actor:
        return Actor(
            user_id=self.user.id,
            api_key_id=self.api_key.key_id if self.api_key else None,
            request=request,
        )

    def require_user_session(self) -> None:
        """Refuse account-level actions (MFA, profile, new workspaces) to API keys."""
        if self.api_key is not None:
            raise Forbidden(
                "this action needs a user's login, not an API key", code="api_key_not_allowed"
            )


@dataclass(frozen=True, slots=True)
class WorkspaceAccess:
    """The workspace a request addresses and what the caller may do in it."""

    workspace_id: uuid.UUID
    role: Role
    permissions: frozenset[Permission]
    principal: Principal

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """Raise `Forbidden` unless the caller holds `permission` here."""
        if permission in self.permissions:
            return
        if self.principal.api_key is not None and permission in ROLE_PERMISSIONS[self.role]:
            raise Forbidden(
                f"the API key's scopes do not allow {permission.value}", code="insufficient_scope"
            )
        raise Forbidden(
            f"your role ({self.role.value}) does not allow {permission.value}",
            code="insufficient_role",
        )
