"""An execution's output items, and each node's, a page at a time.

`GET /executions/{id}` shows the first items of the execution's output only
(`preview`: at most `PREVIEW_ITEMS` items and about `PREVIEW_BYTES` of them),
with the total and a cursor; `output_page` pages through the whole output, and
`node_output_page` through the items one node produced (every run and output
of it, in order), read from its `node.completed` events, or from the blob store
when the event holds only a reference (`outputs_ref`). Pages are `{data,
next_cursor}` like every list: ordinal cursors (`_paging`) over item positions.
Every read is scoped by the caller's workspace, like `ExecutionViews`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import exists, select

from linkflow.engine import EventType
from linkflow.nodes.sdk import BlobStore
from linkflow.security.rbac import Permission
from linkflow.services._paging import Page, check_limit, decode_position, encode_position
from linkflow.services.context import WorkspaceAccess
from linkflow.services.errors import NotFound, Unavailable
from linkflow.store import Database, Execution, ExecutionEvent, NodeExecution

__all__ = ["PREVIEW_BYTES", "PREVIEW_ITEMS", "ExecutionOutputs", "Preview", "preview"]

PREVIEW_ITEMS: Final = 100
"""The detail shows at most this many output items; `output_page` has the rest."""
PREVIEW_BYTES: Final = 1024 * 1024
"""...and stops before the item that would take the shown items past this (as JSON):
a detail of a run whose items are large stays about this size. The first item is
shown whatever its size."""


@dataclass(frozen=True, slots=True)
class Preview:
    """The first items of an output, how many there are, and where the rest start."""

    items: list[Any]
    total: int
    next_cursor: str | None
    """For `output_page`; None when `items` is the whole output."""


def preview(output: Sequence[Any]) -> Preview:
    """The part of `output` the execution's detail shows (see the module docstring)."""
    shown, size = 0, 0
    for item in output[:PREVIEW_ITEMS]:
        size += len(orjson.dumps(item))
        if shown and size > PREVIEW_BYTES:
            break
        shown += 1
    rest = encode_position(shown - 1) if shown < len(output) else None
    return Preview(list(output[:shown]), len(output), rest)


def _page_of(items: Sequence[Any], limit: int, cursor: str | None) -> Page[Any]:
    """Items after the position `cursor` names (the last one of the previous page)."""
    check_limit(limit)
    start = decode_position(cursor) + 1 if cursor is not None else 0
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    return Page(chunk, encode_position(start + limit - 1) if more else None)


class ExecutionOutputs:
    def __init__(self, database: Database, blobs: BlobStore | None = None) -> None:
        self.database = database
        self.blobs = blobs
        """Where large node outputs were kept; None: such a node's page is 503."""

    async def output_page(
        self, access: WorkspaceAccess, execution_id: uuid.UUID, *, limit: int,
        cursor: str | None,
    ) -> Page[Any]:  # fmt: skip
        """A page of the execution's output items (none while it has no output)."""
        access.require(Permission.EXECUTIONS_READ)
        async with self.database.session() as session:
            output = (
                await session.execute(
                    select(Execution.output).where(
                        Execution.id == execution_id, Execution.workspace_id == access.workspace_id
                    )
                )
            ).one_or_none()
        if output is None:
            raise _no_execution(execution_id)
        items = output[0] if isinstance(output[0], list) else []
        return _page_of(items, limit, cursor)

    async def node_output_page(
        self, access: WorkspaceAccess, execution_id: uuid.UUID, node_id: str, *, limit: int,
        cursor: str | None,
    ) -> Page[dict[str, Any]]:  # fmt: skip
        """A page of the items `node_id` produced: `{run, output, index, json}` (and
        `binary` when the item has files), runs in order, each run's outputs in the order
        its event records them. 404 when the node never ran in this execution."""
        access.require(Permission.EXECUTIONS_READ)
        async with self.database.session() as session:
            known = await session.scalar(
                select(Execution.id).where(
                    Execution.id == execution_id, Execution.workspace_id == access.workspace_id
                )
            )
            if known is None:
                raise _no_execution(execution_id)
            ran = await session.scalar(
                select(
                    exists().where(
                        NodeExecution.execution_id == execution_id,
                        NodeExecution.node_id == node_id,
                    )
                )
            )
            if not ran:
                raise NotFound(f"node {node_id!r} did not run in this execution",
                               code="node_not_found")  # fmt: skip
            events = (
                await session.scalars(
                    select(ExecutionEvent)
                    .where(
                        ExecutionEvent.execution_id == execution_id,
                        ExecutionEvent.node_id == node_id,
                        ExecutionEvent.type == EventType.NODE_COMPLETED.value,
                    )
                    .order_by(ExecutionEvent.seq)
                )
            ).all()
        items: list[dict[str, Any]] = []
        for event in events:
            items.extend(await self._items_of(event))
        return _page_of(items, limit, cursor)

    async def _items_of(self, event: ExecutionEvent) -> list[dict[str, Any]]:
        data: dict[str, Any] = dict(event.data)
        outputs = data.get("outputs")
        ref = data.get("outputs_ref")
        if outputs is None and isinstance(ref, str):
            if self.blobs is None:
                raise Unavailable("this node's output is in the blob store, which this "
                                  "server cannot read", code="blob_store_unavailable")  # fmt: skip
            outputs = orjson.loads(await self.blobs.get(ref))
        run = data.get("run", 0)
        items: list[dict[str, Any]] = []
        for name, entries in (outputs or {}).items():
            for index, entry in enumerate(entries):
                item = {"run": run, "output": name, "index": index, "json": entry.get("json")}
                if entry.get("binary"):
                    item["binary"] = entry["binary"]
                items.append(item)
        return items


def _no_execution(execution_id: uuid.UUID) -> NotFound:
    return NotFound(f"there is no execution {execution_id}", code="execution_not_found")
