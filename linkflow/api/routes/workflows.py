"""`/api/v1/workflows`: documents, versions, activation, import/export, execute, webhook URLs.

No response carries a webhook's signing secret: documents hold `{"sealed": true}`
in its place (`linkflow.services.webhook_endpoints`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi import Path as FastApiPath
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from linkflow.api.deps import CurrentActor, CurrentWorkspace, Paging
from linkflow.api.json_body import JSONRoute
from linkflow.api.plane import Plane, PlaneServices
from linkflow.api.schemas import ListOf
from linkflow.queue import Priority
from linkflow.services.context import WorkspaceAccess
from linkflow.services.workflows import WorkflowChanges, WorkflowDocumentIn
from linkflow.store import Webhook, Workflow, WorkflowStatus, WorkflowVersion

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/workflows", tags=["workflows"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
WAIT_LIMIT_S = 30.0
"""`execute` with `wait: true` answers within this long, else 202 (the contract's 30 s)."""


class WorkflowIn(BaseModel):
    name: Name
    nodes: list[dict[str, Any]] = Field(max_length=1000)
    connections: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)
    settings: dict[str, Any] = Field(default_factory=dict)
    description: str = Field(default="", max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class WorkflowPatch(BaseModel):
    name: Name | None = None
    nodes: list[dict[str, Any]] | None = Field(default=None, max_length=1000)
    connections: list[dict[str, Any]] | None = Field(default=None, max_length=5000)
    settings: dict[str, Any] | None = None
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[Tag] | None = Field(default=None, max_length=50)
    message: str = Field(default="", max_length=1000, description="Describes the new version.")


class WebhookUrl(BaseModel):
    node_id: str
    method: str
    url: str


class WorkflowOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    status: str
    version: int
    nodes: list[dict[str, Any]]
    connections: list[dict[str, Any]]
    settings: dict[str, Any]
    tags: list[str]
    webhooks: list[WebhookUrl]
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None


class VersionOut(BaseModel):
    version: int
    message: str
    nodes: list[dict[str, Any]]
    connections: list[dict[str, Any]]
    settings: dict[str, Any]
    created_by_id: uuid.UUID | None
    created_at: datetime

    model_config = {"from_attributes": True}


class CloneIn(BaseModel):
    name: Name | None = None


class ExecuteIn(BaseModel):
    input: dict[str, Any] | list[Any] | None = None
    priority: Literal["high", "normal", "low"] = "normal"
    wait: bool = False


class QueuedOut(BaseModel):
    id: uuid.UUID
    status: str


def webhook_url(plane: Plane, row: Webhook) -> WebhookUrl:
    url = f"{plane.public_url}/webhooks/{row.id}"
    path = row.path.strip("/")
    return WebhookUrl(node_id=row.node_id, method=row.method,
                      url=f"{url}/{path}" if path else url)  # fmt: skip


def webhook_urls(plane: Plane, workflow: Workflow, rows: Sequence[Webhook]) -> list[WebhookUrl]:
    """The public URLs of an active workflow's enabled webhook triggers, in node order."""
    if workflow.status is not WorkflowStatus.ACTIVE:
        return []
    order = {str(node.get("id")): index for index, node in enumerate(workflow.nodes)}
    live = sorted((row for row in rows if row.enabled), key=lambda r: order.get(r.node_id, 0))
    return [webhook_url(plane, row) for row in live]


async def outs(
    plane: Plane, access: WorkspaceAccess, workflows: Sequence[Workflow]
) -> list[WorkflowOut]:
    """The workflows as served, with their webhook URLs (one query for all)."""
    active = [w.id for w in workflows if w.status is WorkflowStatus.ACTIVE]
    rows = await plane.workflows.webhooks_of(access, active)
    return [_out(plane, w, rows) for w in workflows]


async def out(plane: Plane, access: WorkspaceAccess, workflow: Workflow) -> WorkflowOut:
    return (await outs(plane, access, [workflow]))[0]


def _out(plane: Plane, workflow: Workflow, rows: Mapping[uuid.UUID, list[Webhook]]) -> WorkflowOut:
    return WorkflowOut(
        id=workflow.id, name=workflow.name, description=workflow.description,
        status=workflow.status.value, version=workflow.version, nodes=workflow.nodes,
        connections=workflow.connections, settings=workflow.settings,
        tags=list(workflow.tags or []),
        webhooks=webhook_urls(plane, workflow, rows.get(workflow.id, [])),
        created_at=workflow.created_at, updated_at=workflow.updated_at,
        activated_at=workflow.activated_at,
    )  # fmt: skip


@router.post("", status_code=201)
async def create_workflow(
    body: WorkflowIn, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> WorkflowOut:
    """A new workflow (status `draft`, version 1); an invalid document is refused with
    every problem, each naming its node."""
    doc = WorkflowDocumentIn(**body.model_dump())
    return await out(plane, access, await plane.workflows.create(access, actor, doc))


@router.post("/import", status_code=201)
async def import_workflow(
    body: WorkflowIn, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> WorkflowOut:
    """Create a workflow from an exported document; credentials are named, and are
    resolved to this workspace's credentials of the same name."""
    doc = WorkflowDocumentIn(**body.model_dump())
    return await out(plane, access, await plane.workflows.import_document(access, actor, doc))


@router.get("")
async def list_workflows(
    access: CurrentWorkspace,
    plane: PlaneServices,
    paging: Paging,
    status: WorkflowStatus | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    search: Annotated[str | None, Query(max_length=255, description="In the name.")] = None,
) -> ListOf[WorkflowOut]:
    """This workspace's workflows, newest first."""
    page = await plane.workflows.list_page(access, limit=paging.limit, cursor=paging.cursor,
                                           status=status, tag=tag, search=search)  # fmt: skip
    return ListOf[WorkflowOut](data=await outs(plane, access, page.items),
                               next_cursor=page.next_cursor)  # fmt: skip


@router.get("/{workflow_id}")
async def get_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> WorkflowOut:
    return await out(plane, access, await plane.workflows.get(access, workflow_id))


@router.put("/{workflow_id}")
async def update_workflow(
    workflow_id: uuid.UUID, body: WorkflowPatch, access: CurrentWorkspace,
    actor: CurrentActor, plane: PlaneServices,
) -> WorkflowOut:  # fmt: skip
    """Change fields; a change of nodes, connections or settings makes a new version."""
    changes = WorkflowChanges(**body.model_dump())
    updated = await plane.workflows.update(access, actor, workflow_id, changes)
    return await out(plane, access, updated)


@router.delete("/{workflow_id}", status_code=204)
async def delete_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> Response:
    await plane.workflows.delete(access, actor, workflow_id)
    return Response(status_code=204)


@router.post("/{workflow_id}/clone", status_code=201)
async def clone_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor,
    plane: PlaneServices, body: CloneIn | None = None,
) -> WorkflowOut:  # fmt: skip
    name = body.name if body is not None else None
    return await out(plane, access, await plane.workflows.clone(access, actor, workflow_id, name))


@router.post("/{workflow_id}/activate")
async def activate_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> WorkflowOut:
    """Register the workflow's webhooks and schedules; an invalid workflow is refused."""
    activated = await plane.workflows.set_active(access, actor, workflow_id, True)
    return await out(plane, access, activated)


@router.post("/{workflow_id}/deactivate")
async def deactivate_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> WorkflowOut:
    deactivated = await plane.workflows.set_active(access, actor, workflow_id, False)
    return await out(plane, access, deactivated)


@router.post("/{workflow_id}/test-webhook")
async def arm_test_webhooks(
    workflow_id: uuid.UUID, access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices
) -> list[WebhookUrl]:
    """Test URLs for the workflow's webhook triggers (active or not), each serving the next
    call only, with the current version: for trying a workflow before activating it."""
    rows = await plane.workflows.arm_test_webhooks(access, actor, workflow_id)
    return [webhook_url(plane, row) for row in rows]


@router.post("/{workflow_id}/webhooks/{node_id}/rotate")
async def rotate_webhook(
    workflow_id: uuid.UUID, node_id: Annotated[str, FastApiPath(max_length=64)],
    access: CurrentWorkspace, actor: CurrentActor, plane: PlaneServices,
) -> WebhookUrl:  # fmt: skip
    """A new random URL for a webhook node: the old one (and the node's armed test URL)
    answers 404 from now on; the secret, settings and counts stay."""
    return webhook_url(plane, await plane.workflows.rotate_webhook(access, actor, workflow_id,
                                                                   node_id))  # fmt: skip


@router.get("/{workflow_id}/versions")
async def list_versions(
    workflow_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices, paging: Paging
) -> ListOf[VersionOut]:
    """Newest first, paged like every list."""
    page = await plane.workflows.versions_page(
        access, workflow_id, limit=paging.limit, cursor=paging.cursor
    )
    rows: list[WorkflowVersion] = page.items
    return ListOf[VersionOut](
        data=[VersionOut.model_validate(row) for row in rows], next_cursor=page.next_cursor
    )


@router.get("/{workflow_id}/versions/{version}")
async def get_version(
    workflow_id: uuid.UUID, version: int, access: CurrentWorkspace, plane: PlaneServices
) -> VersionOut:
    return VersionOut.model_validate(await plane.workflows.version(access, workflow_id, version))


@router.get("/{workflow_id}/export")
async def export_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> dict[str, Any]:
    """The workflow document; credentials appear by name, never their secrets."""
    return await plane.workflows.export(access, workflow_id)


@router.post("/{workflow_id}/execute", status_code=202, response_model=None)
async def execute_workflow(
    workflow_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices,
    body: ExecuteIn | None = None,
) -> QueuedOut | JSONResponse:  # fmt: skip
    """Queue a run of the current version; with `wait`, answer with the finished
    execution (up to 30 s, then 202)."""
    body = body or ExecuteIn()
    priority = Priority(body.priority)
    if not body.wait:
        execution_id = await plane.executions.start(access, workflow_id, body.input, priority)
        return QueuedOut(id=execution_id, status="queued")
    result = await plane.executions.start_and_wait(
        access, workflow_id, body.input, priority, plane.bus, WAIT_LIMIT_S
    )
    if result.get("status") in {"completed", "failed", "cancelled", "timeout"}:
        return JSONResponse(result, status_code=200)
    return JSONResponse({"id": result["id"], "status": result["status"]}, status_code=202)
