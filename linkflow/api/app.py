"""The app factory: `create_app(container)` → a FastAPI app with the whole edge.

Middleware, outermost first:
1. proxy headers (only with `trusted_proxies` set): the client address and
   scheme from `X-Forwarded-For`/`-Proto`, which HSTS and rate limits use;
2. the edge: request id, security headers, metrics, access log, per-address
   rate limit, last-resort 500;
3. CORS (only with `cors_origins` set);
4. the body limit (413);
5. `Idempotency-Key` on POST.
The app owns the container: its lifespan closes it at shutdown. An API-only
process's execution plane (its writer, the Redis queue and bus) comes with a
`lifetime`, started and closed by the same lifespan; `serve` runs its plane itself.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from linkflow.api.container import Container
from linkflow.api.errors import install_error_handlers
from linkflow.api.idempotency import IdempotencyMiddleware
from linkflow.api.middleware import BodyLimitMiddleware, EdgeMiddleware
from linkflow.api.openapi import install_openapi
from linkflow.api.ratelimit import WebhookLimits
from linkflow.api.routes import (
    admin,
    api_keys,
    audit,
    auth,
    billing,
    credentials,
    executions,
    health,
    no_plane,
    nodes,
    oauth,
    oauth2,
    schedules,
    users,
    variables,
    webhook_subscriptions,
    workflows,
    workspaces,
    ws,
)
from linkflow.api.webhook_gateway import PREFIX as WEBHOOK_PREFIX
from linkflow.api.webhook_gateway import WebhookGateway

if TYPE_CHECKING:
    from linkflow.api.plane import Plane

__all__ = ["create_app"]

API_VERSION = "1.0.0"
GC_THRESHOLDS = (20_000, 50, 1_000)
DESCRIPTION = """\
LinkFlow's control plane. Authenticate with `Authorization: Bearer <access token | API key>`;
choose the workspace with `X-Workspace-ID` (default: your personal workspace). Errors are
`application/problem+json` with a stable `code`. Lists take `?limit=&cursor=`.
"""
_EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "Idempotent-Replayed"]
_ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "X-Workspace-ID",
    "Idempotency-Key",
    "X-Request-ID",
]


def _middleware(container: Container, *, webhooks: bool = False) -> list[Middleware]:
    """The middleware stack, outermost first; `webhooks`: the stack of the webhook gateway
    (no global body limit, which a webhook's own replaces, and no idempotency keys)."""
    settings = container.settings
    stack: list[Middleware] = []
    if settings.trusted_proxies:
        stack.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies))
    stack.append(Middleware(EdgeMiddleware, metrics=container.metrics, limiter=container.limiter))
    if settings.cors_origins:
        any_origin = "*" in settings.cors_origins
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=["*"] if any_origin else settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=_ALLOWED_HEADERS,
                expose_headers=_EXPOSED_HEADERS,
                allow_credentials=not any_origin,
                max_age=600,
            )
        )
    if webhooks:
        return stack
    stack.append(Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes))
    stack.append(
        Middleware(
            IdempotencyMiddleware,
            idempotency=container.idempotency,
            authenticator=container.authenticator,
        )
    )
    return stack


class LinkFlowAPI(FastAPI):
    """FastAPI, with `/webhooks/` paths sent to the webhook gateway before routing."""

    webhook_gateway: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.webhook_gateway is not None
            and scope["type"] == "http"
            and scope["path"].startswith(WEBHOOK_PREFIX)
        ):
            await self.webhook_gateway(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _wrap(app: ASGIApp, stack: list[Middleware]) -> ASGIApp:
    for cls, args, kwargs in reversed(stack):
        app = cls(app, *args, **kwargs)
    return app


def create_app(
    container: Container, *, plane: Plane | None = None,
    lifetime: AbstractAsyncContextManager[object] | None = None,
) -> FastAPI:  # fmt: skip
    """The LinkFlow HTTP API over `container`'s objects.

    With `plane` (the execution plane: workflows, executions, webhooks...), its
    endpoints are served too; without, only accounts, workspaces and keys. `lifetime`
    is entered at start-up and left at shutdown (before the container closes).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Everything built so far lives as long as the process: moving it out of
        # the collector's reach makes each full collection, a pause that every
        # request in flight waits out, proportional to request garbage only.
        gc.freeze()
        # Young collections every 700 allocations (the default) cost ~15 % of a busy
        # webhook process; every 20,000 keeps the pauses short and rare.
        gc.set_threshold(GC_THRESHOLDS[0], GC_THRESHOLDS[1], GC_THRESHOLDS[2])
        try:
            async with container.revocations.listening(), lifetime or nullcontext():
                yield
        finally:
            await container.aclose()

    app = LinkFlowAPI(
        title="LinkFlow API",
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        middleware=_middleware(container),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.container = container
    install_error_handlers(app)
    for module in (health, auth, oauth, users, workspaces, api_keys, audit, billing, admin):
        app.include_router(module.router)
    app.include_router(billing.webhook_router)
    if plane is not None:
        app.state.plane = plane
        for module in (workflows, executions, schedules, variables, oauth2, credentials, nodes,
                       ws, webhook_subscriptions):  # fmt: skip
            app.include_router(module.router)
        limits = WebhookLimits(container.limiter, container.settings.webhook_rate_limit)
        gateway = WebhookGateway(plane.webhooks, plane.resume_links, limits=limits,
                                 max_body_bytes=container.settings.max_body_bytes)  # fmt: skip
        app.webhook_gateway = _wrap(gateway, _middleware(container, webhooks=True))
    else:
        app.include_router(no_plane.router)
    install_openapi(app)
    return app

