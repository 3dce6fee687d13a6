"""`ANY /webhooks/{endpoint_id}[/{path}]`: the public endpoints of webhook triggers.

No authentication: a webhook is protected by its unguessable id, and
optionally by an HMAC signature and an IP allowlist.
"""

from __future__ import annotations

import uuid

import orjson
from fastapi import APIRouter, Request, Response

from linkflow.api.plane import PlaneServices
from linkflow.services.webhooks import WebhookCall

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def _call(
    endpoint_id: uuid.UUID, path: str, request: Request, plane: PlaneServices
) -> Response:
    client = request.scope.get("client")
    call = WebhookCall(
        endpoint_id=endpoint_id, method=request.method, path=path,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params), body=await request.body(),
        client_ip=client[0] if client else None,
    )  # fmt: skip
    answer = await plane.webhooks.handle(call)
    body = answer.body
    headers = dict(answer.headers)
    if isinstance(body, bytes | str) and "content-type" in {k.lower() for k in headers}:
        content = body if isinstance(body, bytes) else body.encode()
        return Response(content, status_code=answer.status, headers=headers)
    return Response(orjson.dumps(body), status_code=answer.status, headers=headers,
                    media_type="application/json")  # fmt: skip


@router.api_route("/resume/{execution_id}/{token}", methods=METHODS, include_in_schema=False)
async def resume_waiting_execution(
    execution_id: uuid.UUID, token: str, request: Request, plane: PlaneServices
) -> Response:
    """A wait node's resume URL (`execution.resume_url`): what the caller sends reaches the
    workflow as the items' `resume` (method, headers, query, body)."""
    body = await request.body()
    try:
        parsed: object = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = body.decode("utf-8", "replace")
    payload = {"method": request.method, "headers": dict(request.headers),
               "query": dict(request.query_params), "body": parsed}  # fmt: skip
    await plane.resume_links.resume(execution_id, token, payload)
    return Response(orjson.dumps({"execution_id": str(execution_id), "status": "resuming"}),
                    status_code=202, media_type="application/json")  # fmt: skip


@router.api_route("/{endpoint_id}", methods=METHODS, include_in_schema=False)
async def webhook(endpoint_id: uuid.UUID, request: Request, plane: PlaneServices) -> Response:
    return await _call(endpoint_id, "", request, plane)


@router.api_route("/{endpoint_id}/{path:path}", methods=METHODS, include_in_schema=False)
async def webhook_with_path(
    endpoint_id: uuid.UUID, path: str, request: Request, plane: PlaneServices
) -> Response:
    return await _call(endpoint_id, path, request, plane)
