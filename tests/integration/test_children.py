"""Child executions below the API, on SQLite and PostgreSQL: the races and the crash
windows that `linkflow serve` tests cannot aim at.

- a process dies between a child's end and waking its parent: recovery wakes it;
- twenty wake-ups at once resume a parent once;
- two starts under one key make one child.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import func, select

from linkflow.engine import ParentLink
from linkflow.services.executions import NewExecution
from linkflow.services.writer import GroupCommitWriter, WriterHistory
from linkflow.store import Database, Execution, ExecutionStatus
from tests.integration._rows import new_workspace
from tests.integration.test_execution_plane import (
    Plane,
    build_plane,
    chain,
    save_workflow,
    wait_for_status,
)

CHILD = chain({"id": "start", "type": "manual"},
              {"id": "double", "type": "set",
               "parameters": {"fields": {"n": "{{ json.n * 2 }}"}}})  # fmt: skip


def parent_of(child_id: uuid.UUID) -> dict[str, Any]:
    return chain({"id": "start", "type": "manual"},
                 {"id": "call", "type": "execute_workflow",
                  "parameters": {"workflow_id": str(child_id)}})  # fmt: skip


def child_plane(database: Database, writer: GroupCommitWriter, *, wakes: bool) -> Plane:
    """A worker wired as serve wires it, running; see `build_plane` for `wakes`."""
    plane = build_plane(database, writer, wakes=wakes)
    plane.start()
    return plane


async def waiting_parent(
    database: Database, plane: Plane
) -> tuple[uuid.UUID, uuid.UUID]:
    """A parent waiting for its child, and the child, ended: (parent, child)."""
    workspace = await new_workspace(database)
    child = await save_workflow(database, workspace, CHILD)
    parent = await save_workflow(database, workspace, parent_of(child.id))
    parent_id = await plane.service.create(NewExecution(workspace, parent.id, 1, {"n": 4}))
    await wait_for_status(database, parent_id, "waiting", "completed", "failed")
    async with database.session() as session:
        child_id = (await session.scalars(select(Execution.id).where(
            Execution.parent_execution_id == parent_id))).one()  # fmt: skip
    await wait_for_status(database, child_id, "completed")
    return parent_id, child_id


async def test_recovery_wakes_a_parent_whose_child_ended_unseen(
    database: Database, writer: GroupCommitWriter
) -> None:
    """The child ended in a process that died before waking the parent: the parent stays
    waiting; recovery (at start-up, then every half lease) resumes it, once."""
    dying = child_plane(database, writer, wakes=False)
    try:
        parent_id, _ = await waiting_parent(database, dying)
        async with database.session() as session:
            assert (await session.get(Execution, parent_id)).status is ExecutionStatus.WAITING
    finally:
        await dying.crash()
    survivor = child_plane(database, writer, wakes=True)
    try:
        assert await survivor.children.recover() == 1
        assert await survivor.children.recover() == 0
        row = await wait_for_status(database, parent_id, "completed", "failed")
    finally:
        await survivor.crash()
    assert row.status is ExecutionStatus.COMPLETED
    assert row.output == [{"n": 8}]


async def test_twenty_wake_ups_at_once_resume_the_parent_once(
    database: Database, writer: GroupCommitWriter
) -> None:
    quiet = child_plane(database, writer, wakes=False)
    try:
        parent_id, _ = await waiting_parent(database, quiet)
        woken = await asyncio.gather(*(quiet.children.wake(parent_id) for _ in range(20)))
        assert sorted(woken) == [False] * 19 + [True]
        await wait_for_status(database, parent_id, "completed")
    finally:
        await quiet.crash()
    events = await WriterHistory(writer, parent_id).read()
    assert [e.type.value for e in events].count("execution.resumed") == 1
    assert [e.node_id for e in events if e.type.value == "node.completed"] == ["start", "call"]


async def test_two_starts_under_one_key_make_one_child(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Two processes running the same parent node (one of them stale) find one child."""
    plane = child_plane(database, writer, wakes=True)
    try:
        workspace = await new_workspace(database)
        child = await save_workflow(database, workspace, CHILD)
        parent = await save_workflow(database, workspace, parent_of(child.id))
        parent_id = await plane.service.create(NewExecution(workspace, parent.id, 1, {"n": 1}))
        link = ParentLink(str(parent_id), str(parent.id), "call", 0)
        key = f"{parent_id}:elsewhere:0:1"
        starts = await asyncio.gather(*(
            plane.children.run(str(child.id), {"n": 2}, wait=True, parent=link,
                               idempotency_key=key)
            for _ in range(10)
        ))  # fmt: skip
    finally:
        await plane.crash()
    assert len({start.execution_id for start in starts}) == 1
    async with database.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Execution).where(Execution.parent_key == key))
    assert count == 1
