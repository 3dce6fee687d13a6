"""`ANY /webhooks/{endpoint_id}[/{path}]` and `/webhooks/resume/{execution_id}/{token}`:
the public endpoints of webhook triggers and of waiting executions.

No authentication: a webhook is protected by its unguessable id (random, stored,
rotated on request), and optionally by a timestamped HMAC signature and an IP
allowlist.

This is a plain ASGI app, not FastAPI routes: webhooks are the hot path
(one call, one execution), and FastAPI's route matching and dependency
resolution cost more than the rest of the request. `create_app` sends
`/webhooks/` paths here before FastAPI sees them, through the same edge
(proxy headers, request id, security headers, metrics, access log, CORS). The
body limit is the webhook's own `max_body_bytes`, applied while the body is
read. Trigger calls are limited per endpoint, not per address
(`api.ratelimit.WebhookLimits`); resume calls keep the per-address limit.
"""

from __future__ import annotations

import uuid
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from linkflow.api.errors import problem_response, render_error
from linkflow.api.ratelimit import WebhookLimits
from linkflow.services.errors import LinkFlowError, NotFound, PayloadTooLarge, as_unavailable
from linkflow.services.resume import ResumeLinks
from linkflow.services.webhook_headers import redacted
from linkflow.services.webhooks import WebhookAnswer, WebhookCall, WebhookService

__all__ = ["WebhookGateway"]

PREFIX: Final = "/webhooks/"
_RESUME: Final = "resume/"


class _Route:
    """What the edge's metrics and access log label a request with."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


_HOOK_ROUTE: Final = _Route("/webhooks/{endpoint_id}")
_RESUME_ROUTE: Final = _Route("/webhooks/resume/{execution_id}/{token}")


class WebhookGateway:
    def __init__(
        self, webhooks: WebhookService, resume_links: ResumeLinks, *, max_body_bytes: int,
        limits: WebhookLimits,
    ) -> None:  # fmt: skip
        self.webhooks = webhooks
        self.resume_links = resume_links
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        """The limit of resume calls (a webhook has its own)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rest = scope["path"][len(PREFIX) :]
        try:
            if rest.startswith(_RESUME):
                scope["route"] = _RESUME_ROUTE
                response = await self._resume(rest[len(_RESUME) :], scope, receive)
            else:
                scope["route"] = _HOOK_ROUTE
                response = await self._hook(rest, scope, receive)
        except LinkFlowError as error:
            response = render_error(error)
        except ClientDisconnect:
            raise
        except Exception as error:
            unavailable = as_unavailable(error)
            if unavailable is None:
                raise
            response = render_error(unavailable)
        await response(scope, receive, send)

    async def _hook(self, rest: str, scope: Scope, receive: Receive) -> Response:
        endpoint_text, _, path = rest.partition("/")
        client = scope.get("client")
        client_ip = client[0] if client else None
        try:
            endpoint = await self.webhooks.endpoint(_uuid(endpoint_text, "webhook_not_found"))
        except NotFound:
            await self.limits.check_unknown(client_ip)  # guessing ids stays limited
            raise
        webhook = endpoint.webhook
        self.webhooks.admit(endpoint, scope["method"], path, client_ip)
        await self.limits.check(webhook.id, webhook.rate_limit)
        body = await _read_body(scope, receive, self.webhooks.body_limit(endpoint))
        call = WebhookCall(
            endpoint_id=endpoint.webhook.id, method=scope["method"], path=path,
            headers=_headers(scope), query=_query(scope), body=body, client_ip=client_ip,
        )  # fmt: skip
        return _response(await self.webhooks.handle(call, endpoint))

    async def _resume(self, rest: str, scope: Scope, receive: Receive) -> Response:
        """A wait node's resume URL (`execution.resume_url`): what the caller sends reaches
        the workflow as the items' `resume` (method, headers, query, body)."""
        execution_text, _, token = rest.partition("/")
        execution_id = _uuid(execution_text, "execution_not_found")
        if not token or "/" in token:
            raise NotFound("there is no waiting execution here", code="execution_not_found")
        body = await _read_body(scope, receive, self.max_body_bytes)
        try:
            parsed: object = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        # Stored in the execution's events, so credentials are redacted as for triggers.
        payload = {"method": scope["method"], "headers": redacted(_headers(scope)),
                   "query": _query(scope), "body": parsed}  # fmt: skip
        await self.resume_links.resume(execution_id, token, payload)
        return Response(
            orjson.dumps({"execution_id": str(execution_id), "status": "resuming"}),
            status_code=202, media_type="application/json",
        )  # fmt: skip


def _uuid(text: str, code: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        what = "waiting execution" if code == "execution_not_found" else "active webhook"
        raise NotFound(f"there is no {what} here", code=code) from None


def _headers(scope: Scope) -> dict[str, str]:
    # Header names arrive lower-cased (ASGI); a repeated header keeps its last value.
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _query(scope: Scope) -> dict[str, str]:
    raw: bytes = scope.get("query_string", b"")
    if not raw:
        return {}
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to be over `limit`
    (a declared Content-Length at once, a chunked body once that much arrived)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit() or int(value) > limit:
                raise PayloadTooLarge(f"the body is larger than {limit} bytes")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _response(answer: WebhookAnswer) -> Response:
    if answer.failure is not None:
        failure = answer.failure
        extra = {"execution_id": str(failure.execution_id), "node_id": failure.node_id}
        return problem_response(answer.status, failure.code, failure.detail, extra=extra)
    body: Any = answer.body
    headers = dict(answer.headers)
    if isinstance(body, bytes | str) and "content-type" in {k.lower() for k in headers}:
        content = body if isinstance(body, bytes) else body.encode()
        return Response(content, status_code=answer.status, headers=headers)
    return Response(orjson.dumps(body), status_code=answer.status, headers=headers,
                    media_type="application/json")  # fmt: skip
