"""Who may do what in a workspace: the one policy table every endpoint consults.

A caller's permissions in a workspace are those of their role there; an API
key's are those of its creator's role intersected with what its scopes grant.
Endpoints name the `Permission` they need and nothing else: changing who may
do what is a change to `ROLE_PERMISSIONS` or `SCOPE_PERMISSIONS` only.

Roles, from least to most: viewers read; members also run and edit
workflows (and their schedules, webhooks and variables) and use credentials;
admins also manage credentials, members, API keys and read the audit log;
owners also delete the workspace and manage billing.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Final

__all__ = [
    "ROLE_PERMISSIONS",
    "SCOPE_PERMISSIONS",
    "ApiKeyScope",
    "Permission",
    "Role",
    "permissions_for",
    "role_rank",
]


class Role(enum.StrEnum):
    """A member's role (the same values as the store's `MemberRole`)."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    """One action on one kind of resource inside a workspace."""

    WORKSPACE_READ = "workspace:read"
    WORKSPACE_UPDATE = "workspace:update"
    WORKSPACE_DELETE = "workspace:delete"
    MEMBERS_READ = "members:read"
    MEMBERS_MANAGE = "members:manage"
    WORKFLOWS_READ = "workflows:read"
    WORKFLOWS_WRITE = "workflows:write"
    WORKFLOWS_EXECUTE = "workflows:execute"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_WRITE = "executions:write"
    SCHEDULES_READ = "schedules:read"
    SCHEDULES_WRITE = "schedules:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    VARIABLES_READ = "variables:read"
    VARIABLES_WRITE = "variables:write"
    CREDENTIALS_READ = "credentials:read"
    CREDENTIALS_WRITE = "credentials:write"
    API_KEYS_CREATE = "api_keys:create"
    API_KEYS_MANAGE = "api_keys:manage"
    """List and revoke every key of the workspace (without it: only one's own)."""
    AUDIT_READ = "audit:read"
    BILLING_READ = "billing:read"
    BILLING_MANAGE = "billing:manage"


class ApiKeyScope(enum.StrEnum):
    """What an API key may be used for, chosen when it is created."""

    WORKFLOWS_READ = "workflows:read"
    WORKFLOWS_WRITE = "workflows:write"
    EXECUTIONS_READ = "executions:read"
    EXECUTIONS_WRITE = "executions:write"
    CREDENTIALS_READ = "credentials:read"
    CREDENTIALS_WRITE = "credentials:write"
    ADMIN = "admin"


P = Permission

_VIEWER: Final = frozenset(
    {
        P.WORKSPACE_READ,
        P.MEMBERS_READ,
        P.WORKFLOWS_READ,
        P.EXECUTIONS_READ,
        P.SCHEDULES_READ,
        P.WEBHOOKS_READ,
        P.VARIABLES_READ,
        P.BILLING_READ,
    }
)
_MEMBER: Final = _VIEWER | {
    P.WORKFLOWS_WRITE,
    P.WORKFLOWS_EXECUTE,
    P.EXECUTIONS_WRITE,
    P.SCHEDULES_WRITE,
    P.WEBHOOKS_WRITE,
    P.VARIABLES_WRITE,
    P.CREDENTIALS_READ,
    P.API_KEYS_CREATE,
}
_ADMIN: Final = _MEMBER | {
    P.WORKSPACE_UPDATE,
    P.MEMBERS_MANAGE,
    P.CREDENTIALS_WRITE,
    P.API_KEYS_MANAGE,
    P.AUDIT_READ,
}
_OWNER: Final = _ADMIN | {P.WORKSPACE_DELETE, P.BILLING_MANAGE}

ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.VIEWER: _VIEWER,
    Role.MEMBER: _MEMBER,
    Role.ADMIN: _ADMIN,
    Role.OWNER: _OWNER,
}

# Reading the workspace itself (its name, one's own membership) needs no scope.
_ANY_KEY: Final = frozenset({P.WORKSPACE_READ})

SCOPE_PERMISSIONS: Final[Mapping[ApiKeyScope, frozenset[Permission]]] = {
    ApiKeyScope.WORKFLOWS_READ: frozenset(
        {P.WORKFLOWS_READ, P.SCHEDULES_READ, P.WEBHOOKS_READ, P.VARIABLES_READ}
    ),
    ApiKeyScope.WORKFLOWS_WRITE: frozenset(
        {P.WORKFLOWS_WRITE, P.SCHEDULES_WRITE, P.WEBHOOKS_WRITE, P.VARIABLES_WRITE}
    ),
    ApiKeyScope.EXECUTIONS_READ: frozenset({P.EXECUTIONS_READ}),
    ApiKeyScope.EXECUTIONS_WRITE: frozenset({P.EXECUTIONS_WRITE, P.WORKFLOWS_EXECUTE}),
    ApiKeyScope.CREDENTIALS_READ: frozenset({P.CREDENTIALS_READ}),
    ApiKeyScope.CREDENTIALS_WRITE: frozenset({P.CREDENTIALS_WRITE}),
    ApiKeyScope.ADMIN: frozenset(
        {
            P.WORKSPACE_UPDATE,
            P.MEMBERS_READ,
            P.MEMBERS_MANAGE,
            P.API_KEYS_CREATE,
            P.API_KEYS_MANAGE,
            P.AUDIT_READ,
            P.BILLING_READ,
        }
    ),
}

_RANK: Final = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_rank(role: Role) -> int:
    """0 for viewer up to 3 for owner: who may change whose role."""
    return _RANK[role]


def permissions_for(
    role: Role, scopes: Iterable[ApiKeyScope] | None = None
) -> frozenset[Permission]:
    """What `role` may do; with `scopes` (an API key), only what the scopes also grant."""
    granted = ROLE_PERMISSIONS[role]
    if scopes is None:
        return granted
    allowed = set(_ANY_KEY)
    for scope in scopes:
        allowed |= SCOPE_PERMISSIONS[scope]
    return granted & frozenset(allowed)
