"""FastAPI dependencies: the container, the caller, the workspace, request facts, paging.

Endpoints declare what they need (`CurrentPrincipal`, `CurrentWorkspace`,
`Paging`...) and receive values built once per request. Authentication
counts the request against the principal's rate limit; the workspace is
`X-Workspace-ID` or the caller's default.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, cast

import structlog
from fastapi import Depends, Header, Query, Request

from linkflow.api.container import Container
from linkflow.api.idempotency import bearer_credential
from linkflow.services._paging import DEFAULT_LIMIT, MAX_LIMIT
from linkflow.services.authentication import resolve_workspace
from linkflow.services.context import Actor, Principal, RequestInfo, WorkspaceAccess
from linkflow.services.errors import FieldProblem, Invalid, Unauthorized

__all__ = [
    "AuthRateLimit",
    "CurrentActor",
    "CurrentPrincipal",
    "CurrentWorkspace",
    "Paging",
    "Request_",
    "Services",
    "get_container",
    "workspace_access",
]


async def get_container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


Services = Annotated[Container, Depends(get_container)]


async def request_info(request: Request) -> RequestInfo:
    client = request.scope.get("client")
    return RequestInfo(
        ip=client[0] if client else None,
        user_agent=request.headers.get("user-agent"),
        request_id=request.scope.get("state", {}).get("request_id"),
    )


Request_ = Annotated[RequestInfo, Depends(request_info)]


async def current_principal(request: Request, services: Services) -> Principal:
    state = request.scope.setdefault("state", {})
    principal = state.get("principal")
    if principal is None:
        credential = bearer_credential(request.scope)
        if credential is None:
            raise Unauthorized(
                "send a bearer access token or API key in the Authorization header",
                code="authentication_required",
            )
        principal = await services.authenticator.authenticate(credential)
        state["principal"] = principal
    await services.limiter.check(services.limiter.per_principal, principal.rate_key)
    return cast(Principal, principal)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_actor(principal: CurrentPrincipal, info: Request_) -> Actor:
    return principal.actor(info)


CurrentActor = Annotated[Actor, Depends(current_actor)]


def _workspace_header(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Invalid(
            "X-Workspace-ID is not a workspace id",
            errors=[FieldProblem("header.X-Workspace-ID", "must be a UUID", "uuid_parsing")],
        ) from None


async def current_workspace(
    principal: CurrentPrincipal,
    services: Services,
    x_workspace_id: Annotated[
        str | None,
        Header(description="The workspace to act in; default: your personal workspace."),
    ] = None,
) -> WorkspaceAccess:
    wanted = _workspace_header(x_workspace_id)
    return _logged(await resolve_workspace(services.database, principal, wanted))


CurrentWorkspace = Annotated[WorkspaceAccess, Depends(current_workspace)]


async def workspace_access(
    principal: Principal, services: Container, workspace_id: uuid.UUID
) -> WorkspaceAccess:
    """Access to the workspace named in a path (not the header)."""
    return _logged(await resolve_workspace(services.database, principal, workspace_id))


def _logged(access: WorkspaceAccess) -> WorkspaceAccess:
    """`access`, its workspace bound to the request's log lines (the request's own line
    included: the edge unbinds it after writing that)."""
    structlog.contextvars.bind_contextvars(workspace_id=str(access.workspace_id))
    return access


async def auth_rate_limit(request: Request, services: Services) -> None:
    """The stricter per-address limit of login, registration and password reset."""
    client = request.scope.get("client")
    await services.limiter.check(services.limiter.auth, "auth", client[0] if client else "-")


AuthRateLimit = Depends(auth_rate_limit)


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None


async def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


Paging = Annotated[PageParams, Depends(paging)]
