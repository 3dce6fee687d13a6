"""Executions end to end below the API: service → queue → worker → engine → rows.

On SQLite and PostgreSQL: a queued execution runs to completion and its rows
mirror its history; recovery re-delivers executions the queue lost; a worker
that dies mid-run is replaced and the execution finishes without re-running
completed nodes; cancellation stops a run at the next node boundary.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from linkflow.config import Settings
from linkflow.engine import Engine, NodeServices
from linkflow.queue import Queue
from linkflow.services.children import ChildExecutions
from linkflow.services.executions import ExecutionService, NewExecution
from linkflow.services.writer import GroupCommitWriter, WriterHistory
from linkflow.store import (
    Database,
    Execution,
    NodeExecution,
    Workflow,
    WorkflowRepository,
)
from linkflow.wiring import Shared, build_shared, build_worker
from linkflow.worker.consumer import CancelRegistry, Worker
from tests.api._support import ENCRYPTION_KEY, SECRET_KEY
from tests.integration._rows import new_workspace
from tests.unit.engine._nodes import Calls, Gate, registry_with_gate

DEADLINE_S = 20


@dataclass
class Plane:
    shared: Shared
    worker: Worker
    task: asyncio.Task[None] | None = None

    @property
    def database(self) -> Database:
        return self.shared.database

    @property
    def writer(self) -> GroupCommitWriter:
        return self.shared.writer

    @property
    def queue(self) -> Queue:
        return self.shared.queue

    @property
    def service(self) -> ExecutionService:
        return self.shared.executions

    @property
    def cancels(self) -> CancelRegistry:
        return self.shared.cancels

    @property
    def children(self) -> ChildExecutions:
        return self.shared.children

    def start(self) -> None:
        self.task = asyncio.create_task(self.worker.run())

    async def crash(self) -> None:
        """Stop the worker abruptly, as a killed process would."""
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def build_plane(
    database: Database, writer: GroupCommitWriter, *, ttl_s: float = 30, wakes: bool = True
) -> Plane:
    """One process's plane, wired by `linkflow.wiring` as `serve` wires it (its own queue
    and leases on the shared writer), running the test nodes. `wakes`: False for a process
    that dies right after a child ended, before it could wake the parent."""
    settings = Settings(secret_key=SECRET_KEY, encryption_key=ENCRYPTION_KEY, lease_ttl_s=ttl_s)
    shared = build_shared(settings, database, writer=writer)
    engine = Engine(registry_with_gate(), services=NodeServices(workflows=shared.children))
    worker = build_worker(shared, engine, concurrency=16)
    if not wakes:
        worker.children = None
    return Plane(shared, worker)


async def save_workflow(
    database: Database, workspace_id: uuid.UUID, doc: dict[str, Any]
) -> Workflow:
    async with database.transaction() as session:
        repo = WorkflowRepository(session, workspace_id)
        workflow = await repo.add(Workflow(name="wf", nodes=doc["nodes"],
                                           connections=doc["connections"]))  # fmt: skip
        await repo.add_version(workflow)
        return workflow


async def wait_for_status(database: Database, execution_id: uuid.UUID, *statuses: str) -> Execution:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        async with database.session() as session:
            row = await session.get(Execution, execution_id)
        if row is not None and row.status.value in statuses:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"execution stayed {row.status if row else None}")
        await asyncio.sleep(0.01)


async def recover_when_free(plane: Plane) -> None:
    """Recover as soon as the execution's lease has expired or been released."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while await plane.service.recover() == 0:
        assert asyncio.get_running_loop().time() < deadline, "the lease was never free"
        await asyncio.sleep(0.02)


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    ids = [n["id"] for n in nodes]
    return {
        "nodes": list(nodes),
        "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)],
    }


SIMPLE = chain({"id": "start", "type": "manual"},
               {"id": "double", "type": "set", "parameters": {"fields": {"n": "{{ json.n * 2 }}"}}},
               {"id": "count", "type": "test_count"})  # fmt: skip
GATED = chain({"id": "start", "type": "manual"}, {"id": "before", "type": "test_count"},
              {"id": "gate", "type": "test_gate"},
              {"id": "after", "type": "test_count"})  # fmt: skip


async def start(plane: Plane, doc: dict[str, Any], input_: Any) -> uuid.UUID:
    workspace = await new_workspace(plane.database)
    workflow = await save_workflow(plane.database, workspace, doc)
    return await plane.service.create(NewExecution(workspace, workflow.id, 1, input_))


async def test_a_queued_execution_runs_and_its_rows_mirror_the_history(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Row status, output, timestamps and per-node rows follow the run."""
    Calls.reset()
    plane = build_plane(database, writer)
    plane.start()
    try:
        execution_id = await start(plane, SIMPLE, [{"n": 1}, {"n": 5}])
        row = await wait_for_status(database, execution_id, "completed")
    finally:
        await plane.crash()
    assert row.output == [{"n": 2, "count": True}, {"n": 10, "count": True}]
    assert row.started_at is not None
    assert row.completed_at is not None
    async with database.session() as session:
        nodes = (await session.scalars(
            select(NodeExecution).where(NodeExecution.execution_id == execution_id)
            .order_by(NodeExecution.started_at))).all()  # fmt: skip
    assert [(n.node_id, n.status.value, n.items_out) for n in nodes] == [
        ("start", "completed", 2),
        ("double", "completed", 2),
        ("count", "completed", 2),
    ]
    events = await WriterHistory(writer, execution_id).read()
    assert [e.type.value for e in events][:2] == ["execution.queued", "execution.started"]
    assert events[-1].type.value == "execution.completed"


async def test_recovery_redelivers_executions_the_queue_lost(
    database: Database, writer: GroupCommitWriter
) -> None:
    """A queued execution whose job vanished (its process stopped renewing its lease)
    runs after `recover()` on a new queue, once the lease expired, and not before."""
    Calls.reset()
    lost = build_plane(database, writer, ttl_s=1)
    execution_id = await start(lost, SIMPLE, {"n": 3})
    fresh = build_plane(database, writer)
    assert await fresh.service.recover() == 0  # held: the job may still be on its way
    await recover_when_free(fresh)
    fresh.start()
    try:
        row = await wait_for_status(database, execution_id, "completed")
    finally:
        await fresh.crash()
    assert row.output == [{"n": 6, "count": True}]


async def test_a_worker_killed_mid_run_is_replaced_without_rerunning_completed_nodes(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Crash while a node runs; the next worker resumes from the history."""
    Calls.reset()
    Gate.reset()
    assert Gate.reached is not None
    assert Gate.opened is not None
    first = build_plane(database, writer)
    first.start()
    execution_id = await start(first, GATED, {"n": 1})
    await asyncio.wait_for(Gate.reached.wait(), DEADLINE_S)
    await first.crash()
    running = await wait_for_status(database, execution_id, "running")
    assert running.completed_at is None

    Gate.opened.set()
    second = build_plane(database, writer)
    # The crashed worker's lease is released by a write of its own, which may land a
    # moment after the crash: recover once it has.
    await recover_when_free(second)
    second.start()
    try:
        row = await wait_for_status(database, execution_id, "completed")
    finally:
        await second.crash()
    assert row.output == [{"n": 1, "before": True, "after": True}]
    assert Calls.counter[("before", 0)] == 1
    assert Calls.counter[("gate", 0)] == 2  # at-least-once: it was running at the crash
    assert Calls.counter[("after", 0)] == 1


async def test_cancel_stops_the_run_at_the_next_node_boundary(
    database: Database, writer: GroupCommitWriter
) -> None:
    """The node in progress finishes; the next one never starts."""
    Calls.reset()
    Gate.reset()
    assert Gate.reached is not None
    assert Gate.opened is not None
    plane = build_plane(database, writer)
    plane.start()
    try:
        execution_id = await start(plane, GATED, {"n": 1})
        await asyncio.wait_for(Gate.reached.wait(), DEADLINE_S)
        plane.cancels.request(execution_id, "stopped by test")
        Gate.opened.set()
        row = await wait_for_status(database, execution_id, "cancelled")
    finally:
        await plane.crash()
    assert Calls.counter[("after", 0)] == 0
    assert row.completed_at is not None


async def test_many_executions_share_few_transactions(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Group commit: 50 concurrent executions need far fewer commits than events."""
    Calls.reset()
    plane = build_plane(database, writer)
    workspace = await new_workspace(database)
    workflow = await save_workflow(database, workspace, SIMPLE)
    before_batches, before_ops = writer.batches, writer.ops
    ids = await asyncio.gather(*[
        plane.service.create(NewExecution(workspace, workflow.id, 1, {"n": i})) for i in range(50)
    ])  # fmt: skip
    plane.start()
    try:
        for execution_id in ids:
            await wait_for_status(database, execution_id, "completed")
    finally:
        await plane.crash()
    ops = writer.ops - before_ops
    batches = writer.batches - before_batches
    assert ops >= 50 * 10
    assert batches < ops / 3


async def test_the_writer_refuses_a_taken_seq_and_keeps_the_others(
    database: Database, writer: GroupCommitWriter
) -> None:
    """In one batch, the event whose seq is taken fails alone; the rest are stored."""
    from datetime import UTC, datetime

    from linkflow.engine import Event, EventType, HistoryConflict

    workspace = await new_workspace(database)
    workflow = await save_workflow(database, workspace, SIMPLE)
    plane = build_plane(database, writer)
    first = await plane.service.create(NewExecution(workspace, workflow.id, 1, {}))
    second = await plane.service.create(NewExecution(workspace, workflow.id, 1, {}))
    at = datetime.now(UTC)
    taken = writer.append_nowait(first, Event(1, EventType.EXECUTION_STARTED, None, {}, at))
    free = writer.append_nowait(second, Event(2, EventType.EXECUTION_STARTED, None, {}, at))
    with pytest.raises(HistoryConflict):
        await taken
    await free
    stored = await WriterHistory(writer, second).read()
    assert [e.type.value for e in stored] == ["execution.queued", "execution.started"]


async def test_two_claims_of_one_seq_in_a_batch_one_wins_the_other_is_refused(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Two workers appending seq 2 of one execution in the same batch: one is stored,
    the other gets HistoryConflict; re-appending the stored event itself is accepted."""
    from datetime import UTC, datetime, timedelta

    from linkflow.engine import Event, EventType, HistoryConflict

    workspace = await new_workspace(database)
    workflow = await save_workflow(database, workspace, SIMPLE)
    plane = build_plane(database, writer)
    execution = await plane.service.create(NewExecution(workspace, workflow.id, 1, {}))
    at = datetime.now(UTC)
    one = Event(2, EventType.EXECUTION_STARTED, None, {"by": "one"}, at)
    other = Event(2, EventType.EXECUTION_STARTED, None, {"by": "other"}, at + timedelta(1))
    outcomes = await asyncio.gather(
        writer.append_nowait(execution, one), writer.append_nowait(execution, other),
        return_exceptions=True,
    )  # fmt: skip
    assert outcomes[0] is None
    assert isinstance(outcomes[1], HistoryConflict)
    stored = await WriterHistory(writer, execution).read()
    assert [(e.seq, e.data) for e in stored[1:]] == [(2, {"by": "one"})]
    await writer.append_nowait(execution, one)  # the same event again: nothing to refuse
