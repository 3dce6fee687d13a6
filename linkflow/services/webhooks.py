"""Public webhook calls: checks, the execution they start, and the answer.

A call is refused, in this order: unknown or inactive endpoint (404, the same
for both so nobody learns which ids exist), method (405), IP allowlist (403),
body size (413), HMAC signature (401, `linkflow.services.webhook_signatures`; a push
trigger's node checks its service's signature instead, `linkflow.services.push_triggers`,
and may be answered without an execution: Slack's URL challenge, an event it ignores).
Otherwise it starts an execution from the webhook node with the item
`{method, path, headers, query, body}` (a push trigger's adds `event`; headers carrying
credentials or signatures as `[redacted]`, `linkflow.services.webhook_headers`); the files of a
multipart body are put in the blob store first, and the input holds their refs
under `binary` (the webhook node makes them its item's binaries), never their
bytes. It answers by the node's `response_mode`:

- `immediately`: 202 with the execution id, once the execution is stored;
- `last_node`: the last node's first item as JSON, as soon as the execution
  ends (its events are durable by then);
- `respond_node`: what a respond_to_webhook node set, as soon as it ran, less
  the headers that would change the API origin's security, and sandboxed.

An execution slower than `answer_timeout_s` gets 202 with its id instead. One that
failed, timed out or was cancelled before it answered gets a problem (`WebhookFailure`:
code, the failing node, the execution id) with the workflow's
`settings.webhook_error_status` (default 500).
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from sqlalchemy import delete, select

from linkflow.bus import Bus
from linkflow.nodes.sdk import BlobStore, JsonObject
from linkflow.queue import Priority
from linkflow.security.secretbox import SecretBox
from linkflow.services._ttl_cache import TTLCache
from linkflow.services.errors import (
    Forbidden,
    Invalid,
    LinkFlowError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from linkflow.services.executions import ExecutionService, NewExecution, require_queue
from linkflow.services.push_triggers import PushTrigger, early_reply, event_of
from linkflow.services.push_triggers import verify as verify_push
from linkflow.services.webhook_bodies import Body, Upload, parse_body
from linkflow.services.webhook_headers import answer_headers, redacted
from linkflow.services.webhook_signatures import SignatureCheck
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import (
    Database,
    TriggerType,
    Webhook,
    WebhookResponseMode,
    Workflow,
    WorkflowStatus,
    new_id,
)

__all__ = ["Endpoint", "WebhookAnswer", "WebhookCall", "WebhookFailure", "WebhookService"]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_ERROR_STATUS = 500
ENDPOINT_CACHE_TTL_S = 1.0
"""Another process's deactivation reaches this one's cache within twice this long (an
expired entry is served while it is refreshed)."""
ENDPOINT_CACHE_SIZE = 10_000
_END_EVENTS = frozenset(
    {"execution.completed", "execution.failed", "execution.cancelled", "execution.timed_out",
     "execution.waiting"}
)  # fmt: skip
_RESPOND_EVENTS = _END_EVENTS | {"execution.responded"}
_FAILURE_CODES = {
    "execution.failed": "execution_failed",
    "execution.timed_out": "execution_timed_out",
    "execution.cancelled": "execution_cancelled",
}


@dataclass(frozen=True, slots=True)
class WebhookCall:
    endpoint_id: uuid.UUID
    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes
    client_ip: str | None


@dataclass(frozen=True, slots=True)
class WebhookFailure:
    """Why an execution ended without an answer; the edge renders it as problem+json."""

    code: str
    detail: str
    execution_id: uuid.UUID
    node_id: str | None


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    failure: WebhookFailure | None = None
    """Set when the execution failed (`body` is then None)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    webhook: WebhookSettings
    version: int
    error_status: int = DEFAULT_ERROR_STATUS
    """The workflow's `settings.webhook_error_status`: the status of a failure's answer."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """A webhook row as calls read it: a plain copy (reading an ORM row's attributes goes
    through instrumented descriptors, on every call of a cached endpoint)."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    node_id: str
    path: str
    method: str
    response_mode: WebhookResponseMode
    secret: bytes | None
    """Opened once per load: a signed call does not pay for AES-GCM."""
    legacy_signature: bool
    ip_allowlist: tuple[str, ...]
    max_body_bytes: int | None
    rate_limit: str | None
    """The node's own (`100/second`, `unlimited`); None: the server's default."""
    is_test: bool
    push: PushTrigger | None = None
    """Set when the node is a push trigger: its service's signature is checked, not ours."""

    @classmethod
    def of(
        cls, row: Webhook, box: SecretBox, node: Mapping[str, Any] | None = None
    ) -> WebhookSettings:
        """`node`: the row's node in the workflow's document (its type decides `push`)."""
        sealed = row.secret_encrypted
        return cls(
            id=row.id, workspace_id=row.workspace_id, workflow_id=row.workflow_id,
            node_id=row.node_id, path=row.path, method=row.method.upper(),
            response_mode=row.response_mode,
            secret=box.open(sealed) if sealed is not None else None,
            legacy_signature=row.legacy_signature, ip_allowlist=tuple(row.ip_allowlist or ()),
            max_body_bytes=row.max_body_bytes, rate_limit=row.rate_limit, is_test=row.is_test,
            push=PushTrigger.of(node),
        )  # fmt: skip


class WebhookService:
    def __init__(
        self,
        database: Database,
        writer: GroupCommitWriter,
        executions: ExecutionService,
        bus: Bus,
        box: SecretBox,
        *,
        answer_timeout_s: float = 30.0,
        blobs: BlobStore | None = None,
    ) -> None:
        self.database = database
        self.writer = writer
        self.executions = executions
        self.bus = bus
        self.box = box
        self.answer_timeout_s = answer_timeout_s
        self.blobs = blobs
        """Where uploaded files go; None: a multipart call with files is refused (503)."""
        self.signatures = SignatureCheck(database)
        self._endpoints: TTLCache[uuid.UUID, Endpoint] = TTLCache(
            ENDPOINT_CACHE_TTL_S, max_entries=ENDPOINT_CACHE_SIZE
        )

    def forget(self) -> None:
        """Drop cached endpoints (a workflow was activated, changed or deactivated)."""
        self._endpoints.clear()

    def body_limit(self, endpoint: Endpoint) -> int:
        """The most a call to `endpoint` may send, in bytes."""
        return endpoint.webhook.max_body_bytes or DEFAULT_MAX_BODY_BYTES

    async def handle(self, call: WebhookCall, endpoint: Endpoint) -> WebhookAnswer:
        """Check `call` against `endpoint` (`self.endpoint(call.endpoint_id)`) and start
        its execution; the answer its response mode asks for."""
        webhook = endpoint.webhook
        self._check(endpoint, call)
        event: str | None = None
        if webhook.push is not None:
            verify_push(webhook.push, webhook.secret, call.headers, call.body)
            body = _parse_body(call).value
            event = event_of(webhook.push, call.headers, body)
            reply = early_reply(webhook.push, event, body)
            if reply is not None:
                return WebhookAnswer(*reply)
        elif webhook.secret is not None:
            await self.signatures.verify(
                webhook.secret, legacy=webhook.legacy_signature, workflow_id=webhook.workflow_id,
                node_id=webhook.node_id, headers=call.headers, body=call.body,
            )  # fmt: skip
        if webhook.is_test and not await self._use_test_url(webhook.id):
            raise NotFound("there is no active webhook here", code="webhook_not_found")
        require_queue(self.executions.queue)  # before files are stored or the bus is asked
        execution_id = new_id()
        new = NewExecution(
            workspace_id=webhook.workspace_id, workflow_id=webhook.workflow_id,
            workflow_version=endpoint.version, input=await self._item(call, webhook.push, event),
            id=execution_id,
            trigger_type=TriggerType.WEBHOOK, priority=Priority.HIGH, start_node=webhook.node_id,
        )  # fmt: skip
        self._count(webhook.id)
        mode = webhook.response_mode
        if mode is WebhookResponseMode.IMMEDIATELY:
            await self.executions.create(new)
            return WebhookAnswer(202, {"execution_id": str(execution_id), "status": "queued"})
        kinds = _RESPOND_EVENTS if mode is WebhookResponseMode.RESPOND_NODE else _END_EVENTS
        async with self.bus.subscribe(f"execution.{execution_id}", kinds=kinds) as events:
            await self.executions.create(new)
            return await self._answer(events, execution_id, mode, endpoint.error_status)

    async def endpoint(self, endpoint_id: uuid.UUID) -> Endpoint:
        """The active endpoint, read about once a second (changes made through this
        process clear the cache at once)."""
        return await self._endpoints.get(endpoint_id, partial(self._load_endpoint, endpoint_id))

    async def _load_endpoint(self, endpoint_id: uuid.UUID) -> Endpoint:
        statement = (
            select(Webhook, Workflow.version, Workflow.settings, Workflow.nodes)
            .join(Workflow, Workflow.id == Webhook.workflow_id)
            .where(
                Webhook.id == endpoint_id,
                ((Workflow.status == WorkflowStatus.ACTIVE) & Webhook.enabled) | Webhook.is_test,
                Workflow.deleted_at.is_(None),
            )
        )
        async with self.database.session() as session:
            row = (await session.execute(statement)).one_or_none()
        if row is None:
            raise NotFound("there is no active webhook here", code="webhook_not_found")
        node = _node_of(row[3], row[0].node_id)
        return Endpoint(WebhookSettings.of(row[0], self.box, node), row[1], _error_status(row[2]))

    async def _use_test_url(self, webhook_id: uuid.UUID) -> bool:
        """A test URL serves one call: the first caller deletes it (and wins)."""
        self._endpoints.forget(webhook_id)
        async with self.database.transaction() as session:
            result = await session.execute(delete(Webhook).where(Webhook.id == webhook_id))
        return bool(getattr(result, "rowcount", 0))

    def admit(
        self, endpoint: Endpoint, method: str, path: str, client_ip: str | None
    ) -> None:
        """The checks that need no body: method, path and address."""
        webhook = endpoint.webhook
        if method != webhook.method and method.upper() != webhook.method:
            raise MethodNotAllowed(f"this webhook accepts {webhook.method} only")
        if webhook.path and path.strip("/") != webhook.path.strip("/"):
            raise NotFound("there is no active webhook here", code="webhook_not_found")
        if webhook.ip_allowlist and not _allowed(client_ip, webhook.ip_allowlist):
            raise Forbidden("your address may not call this webhook", code="ip_not_allowed")

    def _check(self, endpoint: Endpoint, call: WebhookCall) -> None:
        self.admit(endpoint, call.method, call.path, call.client_ip)
        limit = self.body_limit(endpoint)
        if len(call.body) > limit:
            raise PayloadTooLarge(f"the body is larger than {limit} bytes")

    async def _item(
        self, call: WebhookCall, push: PushTrigger | None = None, event: str | None = None
    ) -> dict[str, Any]:
        """The trigger item: the request, its files stored and referred to under `binary`
        (and a push trigger's `event`)."""
        body = _parse_body(call)
        item = {
            "method": call.method.upper(), "path": call.path,
            "headers": redacted(call.headers), "query": dict(call.query), "body": body.value,
        }  # fmt: skip
        if push is not None:
            item["event"] = event
        if body.files:
            item["binary"] = await self._stored(body.files)
        return item

    async def _stored(self, files: Sequence[Upload]) -> dict[str, JsonObject]:
        if self.blobs is None:
            raise Unavailable("this server does not keep uploaded files",
                              code="files_unavailable")  # fmt: skip
        blobs = self.blobs
        refs = await asyncio.gather(*(
            blobs.put(upload.data, mime_type=upload.mime_type, file_name=upload.file_name)
            for upload in files
        ))  # fmt: skip
        return {upload.name: ref.to_json() for upload, ref in zip(files, refs, strict=True)}

    def _count(self, webhook_id: uuid.UUID) -> None:
        """Count the call; a counter is not worth a wait on the caller's path."""
        self.writer.count_webhook_call_nowait(webhook_id)

    async def _answer(
        self, events: Any, execution_id: uuid.UUID, mode: WebhookResponseMode, error_status: int
    ) -> WebhookAnswer:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.answer_timeout_s
        while (left := deadline - loop.time()) > 0:
            try:
                message = await events.get(timeout_s=left)
            except TimeoutError:
                break
            kind, data = message["event"], message["data"]
            if mode is WebhookResponseMode.RESPOND_NODE and kind == "execution.responded":
                return WebhookAnswer(int(data["status"]), data.get("body"),
                                     answer_headers(data.get("headers")))  # fmt: skip
            if kind in _END_EVENTS:
                return _final_answer(kind, data, execution_id, error_status)
        return WebhookAnswer(202, {"execution_id": str(execution_id), "status": "running"})


def _final_answer(
    kind: str, data: Mapping[str, Any], execution_id: uuid.UUID, error_status: int
) -> WebhookAnswer:
    if kind == "execution.completed":
        output = data.get("output") or []
        return WebhookAnswer(200, output[0] if output else {})
    if kind == "execution.waiting":
        return WebhookAnswer(202, {"execution_id": str(execution_id), "status": "waiting"})
    error = data.get("error")
    error = error if isinstance(error, Mapping) else {}
    what = kind.removeprefix("execution.").replace("_", " ")
    message = error.get("message") or data.get("reason") or f"the execution {what}"
    node_id = error.get("node_id")
    failure = WebhookFailure(
        code=_FAILURE_CODES.get(kind, "execution_failed"), detail=str(message),
        execution_id=execution_id, node_id=node_id if isinstance(node_id, str) else None,
    )  # fmt: skip
    return WebhookAnswer(error_status, None, failure=failure)


def _node_of(nodes: Any, node_id: str) -> Mapping[str, Any] | None:
    """The node of that id in a workflow's document."""
    for node in nodes or ():
        if isinstance(node, Mapping) and node.get("id") == node_id:
            return node
    return None


def _error_status(settings: Mapping[str, Any] | None) -> int:
    """The workflow's chosen failure status; saving validates it (4xx/5xx), and a document
    stored before that check gets the default rather than a success status."""
    status = (settings or {}).get("webhook_error_status")
    if type(status) is int and 400 <= status <= 599:
        return status
    return DEFAULT_ERROR_STATUS


def _parse_body(call: WebhookCall) -> Body:
    """The body as the workflow sees it: JSON here (the hot path), forms, text and the
    rest by `webhook_bodies.parse_body`."""
    if not call.body:
        return _NO_BODY
    content_type = call.headers.get("content-type", "")
    if "json" in content_type:
        try:
            return Body(orjson.loads(call.body))
        except orjson.JSONDecodeError:
            raise _invalid_json() from None
    return parse_body(content_type, call.body)


_NO_BODY = Body(None)


def _invalid_json() -> LinkFlowError:
    return Invalid("the body is not valid JSON", code="invalid_json")


def _allowed(client_ip: str | None, allowlist: Sequence[str]) -> bool:
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    for entry in allowlist:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False

