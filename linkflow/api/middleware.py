"""Pure-ASGI middleware of the edge: request ids, security headers, metrics, access log,
per-address rate limit (not for webhook triggers: they are limited per endpoint), the
last-resort 500, and the request body limit.

These run on every request, so they are plain ASGI callables (no
`BaseHTTPMiddleware`, which costs a task and a memory stream per request)
and do the least work that keeps their promises:
- every response carries `X-Request-ID`: the caller's own when it is sane
  (at most 128 characters of ``[A-Za-z0-9._-]``), a fresh one otherwise, also
  bound to every log line written while handling the request;
- every response carries nosniff, frame-deny, a CSP (strict for JSON, one
  that lets the API docs load for HTML) and, over TLS, HSTS;
- metrics are labelled by route template; one log line per request, with its
  request id, its workspace's (bound by `api.deps` once resolved) and, with tracing
  on, its trace id;
- with tracing on, a server span per request (`observability.tracing.ServerSpan`),
  current while the app runs, so the log lines and spans it causes belong to it;
- an exception escaping the app becomes a logged 500 problem that still has
  its request id, unless the response had already begun.
"""

from __future__ import annotations

import random
import re
import time
from typing import Final

import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from linkflow.api.errors import internal_error, render_error
from linkflow.api.ratelimit import RateLimiter
from linkflow.observability.logging import get_logger
from linkflow.observability.metrics import UNMATCHED_ROUTE, HttpMetrics
from linkflow.observability.tracing import server_span
from linkflow.services.errors import PayloadTooLarge, RateLimited

__all__ = ["BodyLimitMiddleware", "EdgeMiddleware"]

log = get_logger("linkflow.api.access")

_SANE_REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_HSTS: Final = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_BASE_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_CSP_API: Final = b"default-src 'none'; frame-ancestors 'none'"
# The interactive docs load Swagger UI from its CDN and run an inline bootstrap script.
_CSP_HTML: Final = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"img-src 'self' data: https://fastapi.tiangolo.com; frame-ancestors 'none'"
)
# Probes and scrapes are neither rate limited nor logged at info (they come every few seconds).
_QUIET_PATHS: Final = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
# Webhook trigger calls have their own limit, per endpoint (`api.ratelimit.WebhookLimits`):
# one service calling a webhook often is its normal use, not abuse by an address.
_WEBHOOKS: Final = "/webhooks/"
_WEBHOOK_RESUME: Final = "/webhooks/resume/"


def _limited_per_address(path: str) -> bool:
    if path in _QUIET_PATHS:
        return False
    return not path.startswith(_WEBHOOKS) or path.startswith(_WEBHOOK_RESUME)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _SANE_REQUEST_ID.fullmatch(value):
                return str(value.decode())
            break
    # A name for log lines, not a secret: no getrandom() call per request.
    return f"{random.getrandbits(128):032x}"


def _is_html(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"content-type" and value.startswith(b"text/html") for name, value in headers
    )


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics, limiter: RateLimiter) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        rid = request_id.encode()
        tls = scope.get("scheme") == "https"
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid))
                headers.extend(_BASE_HEADERS)
                headers.append(
                    (b"content-security-policy", _CSP_HTML if _is_html(headers) else _CSP_API)
                )
                if tls:
                    headers.append(_HSTS)
                message["headers"] = headers
            await send(message)

        path = scope["path"]
        structlog.contextvars.bind_contextvars(request_id=request_id)
        traced = server_span(scope)  # None when tracing is off
        try:
            if scope.get("client") and _limited_per_address(path):
                await self.limiter.check(self.limiter.per_ip, "ip", scope["client"][0])
            await self.app(scope, receive, send_with_headers)
        except RateLimited as limited:
            await render_error(limited)(scope, receive, send_with_headers)
        except ClientDisconnect:
            # The caller hung up before sending its whole body: nobody to answer, no fault.
            status = 499
            log.info("request.client_disconnected", method=scope["method"], path=path)
        except Exception:
            log.exception("request.failed", method=scope["method"], path=path)
            if response_started:
                raise
            await internal_error(request_id)(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            self.metrics.observe(scope["method"], template, status, elapsed)
            write = log.debug if path in _QUIET_PATHS else log.info
            write(
                "request",
                method=scope["method"],
                path=path,
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                client=scope["client"][0] if scope.get("client") else None,
            )
            if traced is not None:
                traced.end(getattr(route, "path", None), status)
            structlog.contextvars.unbind_contextvars("request_id", "workspace_id")


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`, before the app reads it.

    A declared `Content-Length` over the limit is refused at once. A body
    without one (chunked) is read up to the limit and handed on from memory.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is over {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
                break
        if length is not None:
            if length > self.max_bytes or length < 0:
                await render_error(self._too_large())(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await render_error(self._too_large())(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
