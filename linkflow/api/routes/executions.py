"""`/api/v1/executions`: read, list, cancel, retry, history, live events (SSE)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel

from linkflow.api.deps import CurrentWorkspace, Paging, Services
from linkflow.api.json_body import JSONRoute
from linkflow.api.plane import PlaneServices
from linkflow.api.schemas import ListOf
from linkflow.services.execution_views import ExecutionFilter
from linkflow.store import ExecutionStatus

router = APIRouter(route_class=JSONRoute, prefix="/api/v1/executions", tags=["executions"])

SSE_IDLE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet event stream."""
_TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled",
             "execution.timed_out"}  # fmt: skip


class RetryIn(BaseModel):
    from_failed: bool = False


class RetriedOut(BaseModel):
    id: uuid.UUID
    status: str
    parent_execution_id: uuid.UUID


@router.get("")
async def list_executions(
    access: CurrentWorkspace,
    plane: PlaneServices,
    paging: Paging,
    workflow_id: uuid.UUID | None = None,
    status: ExecutionStatus | None = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> ListOf[dict[str, Any]]:
    """Newest first; filter by workflow, status and a time range (queued_at)."""
    where = ExecutionFilter(workflow_id=workflow_id, status=status, since=since, until=until)
    page = await plane.executions.list_page(access, where, limit=paging.limit, cursor=paging.cursor)
    return ListOf[dict[str, Any]](data=page.items, next_cursor=page.next_cursor)


@router.get("/{execution_id}")
async def get_execution(
    execution_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> dict[str, Any]:
    """The execution with its nodes; `resume_url` while it waits for a resume webhook, to
    members who may run workflows (null otherwise). `output` holds the first 100 items
    (at most about 1 MiB of them); `output_items` counts them all, and
    `output_next_cursor` continues at `GET /executions/{id}/output`."""
    return await plane.executions.get(access, execution_id, resume_url=plane.resume_links.url)


@router.get("/{execution_id}/output")
async def execution_output(
    execution_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices, paging: Paging
) -> ListOf[Any]:
    """The execution's output items, in order, a page at a time (the detail's
    `output_next_cursor` starts after the items it shows)."""
    page = await plane.executions.outputs.output_page(
        access, execution_id, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[Any](data=page.items, next_cursor=page.next_cursor)


@router.get("/{execution_id}/nodes/{node_id}/output")
async def node_output(
    execution_id: uuid.UUID, node_id: str, access: CurrentWorkspace, plane: PlaneServices,
    paging: Paging,
) -> ListOf[dict[str, Any]]:  # fmt: skip
    """The items one node produced, `{run, output, index, json, binary?}`, every run and
    output in order, a page at a time; 404 `node_not_found` when it did not run."""
    page = await plane.executions.outputs.node_output_page(
        access, execution_id, node_id, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[dict[str, Any]](data=page.items, next_cursor=page.next_cursor)


@router.post("/{execution_id}/cancel")
async def cancel_execution(
    execution_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices
) -> dict[str, Any]:
    """A queued or waiting execution is cancelled at once; a running one stops at its
    next node boundary."""
    return await plane.executions.cancel(access, execution_id)


@router.post("/{execution_id}/retry", status_code=202)
async def retry_execution(
    execution_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices,
    body: RetryIn | None = None,
) -> RetriedOut:  # fmt: skip
    """A new execution of the same version and input; `from_failed` reuses the outputs
    of the nodes that completed."""
    from_failed = body.from_failed if body is not None else False
    new_id = await plane.executions.retry(access, execution_id, from_failed=from_failed)
    return RetriedOut(id=new_id, status="queued", parent_execution_id=execution_id)


@router.get("/{execution_id}/logs")
async def execution_logs(
    execution_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices, paging: Paging
) -> ListOf[dict[str, Any]]:
    """The execution's event history, in order (oldest first), paged like every list."""
    page = await plane.executions.logs_page(
        access, execution_id, limit=paging.limit, cursor=paging.cursor
    )
    return ListOf[dict[str, Any]](data=page.items, next_cursor=page.next_cursor)


@router.get("/{execution_id}/events")
async def execution_events(
    execution_id: uuid.UUID, access: CurrentWorkspace, plane: PlaneServices, services: Services
) -> StreamingResponse:
    """Server-sent events: the history so far, then live events until the execution ends."""
    await plane.executions.get(access, execution_id)  # 404 before the stream starts
    channel = f"execution.{execution_id}"
    connections = services.metrics.sse

    async def stream() -> AsyncIterator[bytes]:
        with connections.track_inprogress():  # until the end or the client leaves
            # Subscribe before reading the history, so no event falls between the two.
            async with plane.bus.subscribe(channel) as live:
                seen = 0
                for event in await plane.executions.logs(access, execution_id):
                    seen = event["seq"]
                    data = {"execution_id": str(execution_id), "seq": event["seq"],
                            "node_id": event["node_id"], **event["data"]}  # fmt: skip
                    yield _sse(event["type"], channel, data, event["timestamp"])
                    if event["type"] in _TERMINAL:
                        return
                while True:
                    try:
                        message = await live.get(timeout_s=SSE_IDLE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    if message["data"].get("seq", 0) <= seen:
                        continue
                    yield _sse(message["event"], channel, message["data"],
                               message["timestamp"])  # fmt: skip
                    if message["event"] in _TERMINAL:
                        return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})  # fmt: skip


def _sse(kind: str, channel: str, data: dict[str, Any], timestamp: str | datetime) -> bytes:
    envelope = {"event": kind, "channel": channel, "data": data, "timestamp": timestamp}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(envelope, default=str) + b"\n\n"
