"""One execution, one owner: leases fence every write, requests are compare-and-set.

On SQLite and PostgreSQL, through the group-commit writer production uses:
two workers racing one execution (one runs it, the other stores nothing), a
stale lease's writes refused (and nothing after a refused event stored), the
resume link called twenty times at once (one accepted), and a job that fails
every time ending in the dead letters with its execution failed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from linkflow.engine import Engine, Event, EventType, HistoryConflict
from linkflow.services.errors import Conflict
from linkflow.services.executions import NewExecution
from linkflow.services.resume import ResumeLinks
from linkflow.services.writer import GroupCommitWriter, LeaseAction, WriterHistory
from linkflow.store import Database, Execution, ExecutionEvent, ExecutionLease
from tests.integration._rows import new_workspace
from tests.integration.test_execution_plane import (
    DEADLINE_S,
    SIMPLE,
    build_plane,
    chain,
    save_workflow,
    start,
    wait_for_status,
)
from tests.unit.engine._nodes import Calls, registry_with_gate


async def history_types(writer: GroupCommitWriter, execution_id: uuid.UUID) -> list[str]:
    return [event.type.value for event in await WriterHistory(writer, execution_id).read()]


async def expire_lease(database: Database, execution_id: uuid.UUID) -> None:
    """What time does to the lease of a worker that died."""
    async with database.transaction() as session:
        lease = await session.get(ExecutionLease, execution_id)
        assert lease is not None
        lease.expires_at = datetime.now(UTC) - timedelta(seconds=1)


async def test_two_workers_racing_one_execution_run_each_node_once(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Both are handed the same recovered execution at once: one takes the lease and
    runs it, the other stores nothing; every node completes once; the history replays."""
    Calls.reset()
    first, second = build_plane(database, writer), build_plane(database, writer)
    execution_id = await start(first, SIMPLE, {"n": 2})
    first.service.fresh.clear()  # as if its process died before its worker took the job
    await expire_lease(database, execution_id)
    results = await asyncio.gather(
        first.worker.execute(execution_id), second.worker.execute(execution_id)
    )
    assert sum(result is not None for result in results) == 1
    row = await wait_for_status(database, execution_id, "completed")
    assert row.output == [{"n": 4, "count": True}]
    assert Calls.counter[("count", 0)] == 1
    types = await history_types(writer, execution_id)
    completed = Counter(
        e.node_id for e in await WriterHistory(writer, execution_id).read()
        if e.type is EventType.NODE_COMPLETED
    )  # fmt: skip
    assert completed == {"start": 1, "double": 1, "count": 1}
    assert types.count("execution.started") == 1
    assert types.count("execution.completed") == 1
    engine = Engine(registry_with_gate())
    workspace_doc = {"name": "wf", **SIMPLE}
    replayed = await engine.run(engine.compile(workspace_doc), input={"n": 2},
                                history=WriterHistory(writer, execution_id))  # fmt: skip
    assert replayed.status == "completed"
    assert await history_types(writer, execution_id) == types  # nothing re-run


async def test_a_stale_lease_writes_nothing_after_another_worker_took_over(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Worker A's lease expired and B took it: A's appends are refused, at free seqs
    too, and B's go in."""
    workspace = await new_workspace(database)
    workflow = await save_workflow(database, workspace, SIMPLE)
    plane = build_plane(database, writer)
    plane.service.leases = None
    execution_id = await plane.service.create(NewExecution(workspace, workflow.id, 1, {}))
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert await writer.lease_nowait(LeaseAction.TAKE, execution_id, "a/1", soon)
    assert not await writer.lease_nowait(LeaseAction.TAKE, execution_id, "b/1", soon)
    await expire_lease(database, execution_id)
    assert await writer.lease_nowait(LeaseAction.TAKE, execution_id, "b/1", soon)
    at = datetime.now(UTC)
    stale = [writer.append_nowait(execution_id, Event(seq, EventType.NODE_SKIPPED, "x", {}, at),
                                  lease="a/1") for seq in (2, 3)]  # fmt: skip
    for appended in stale:
        with pytest.raises(HistoryConflict):
            await appended
    await writer.append_nowait(
        execution_id, Event(2, EventType.EXECUTION_STARTED, None, {}, at), lease="b/1"
    )
    assert await history_types(writer, execution_id) == ["execution.queued", "execution.started"]
    async with database.session() as session:
        row = await session.get(Execution, execution_id)
        lease = await session.get(ExecutionLease, execution_id)
    assert row is not None
    assert row.status.value == "running"  # the status follows B's event, in its batch
    assert lease is not None
    assert lease.fencing_token == 2


async def test_nothing_after_a_refused_event_is_stored_and_the_lease_is_revoked(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Seq 2 is taken under A's lease, 3 and 4 are free and in the same batch: none of
    A's three is stored, and A's later writes are refused too."""
    workspace = await new_workspace(database)
    workflow = await save_workflow(database, workspace, SIMPLE)
    plane = build_plane(database, writer)
    plane.service.leases = None
    execution_id = await plane.service.create(NewExecution(workspace, workflow.id, 1, {}))
    soon = datetime.now(UTC) + timedelta(seconds=30)
    assert await writer.lease_nowait(LeaseAction.TAKE, execution_id, "a/1", soon)
    at = datetime.now(UTC)
    await writer.append_nowait(execution_id, Event(2, EventType.EXECUTION_STARTED, None,
                                                   {"by": "someone else"}, at))  # fmt: skip
    mine = [writer.append_nowait(execution_id, Event(seq, EventType.NODE_SKIPPED, "x", {}, at),
                                 lease="a/1") for seq in (2, 3, 4)]  # fmt: skip
    outcomes = await asyncio.gather(*mine, return_exceptions=True)
    assert all(isinstance(outcome, HistoryConflict) for outcome in outcomes)
    assert await history_types(writer, execution_id) == ["execution.queued", "execution.started"]
    later = writer.append_nowait(execution_id, Event(3, EventType.NODE_SKIPPED, "x", {}, at),
                                 lease="a/1")  # fmt: skip
    with pytest.raises(HistoryConflict):
        await later
    assert not await writer.lease_nowait(LeaseAction.RENEW, execution_id, "a/1", soon)


WAITS = chain({"id": "start", "type": "manual"},
              {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
              {"id": "count", "type": "test_count"})  # fmt: skip


async def test_the_resume_link_called_twenty_times_at_once_resumes_once(
    database: Database, writer: GroupCommitWriter
) -> None:
    """One call is accepted, nineteen get 409 not_waiting; each node completes once."""
    Calls.reset()
    plane = build_plane(database, writer)
    links = ResumeLinks(database, plane.queue, b"k" * 32, "http://127.0.0.1")
    plane.start()
    try:
        execution_id = await start(plane, WAITS, {"n": 1})
        await wait_for_status(database, execution_id, "waiting")
        token = links.token(execution_id)
        outcomes = await asyncio.gather(
            *[links.resume(execution_id, token, {"call": i}) for i in range(20)],
            return_exceptions=True,
        )
        accepted = [outcome for outcome in outcomes if outcome is None]
        refused = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
        assert len(accepted) == 1
        assert len(refused) == 19
        assert {error.code for error in refused} == {"not_waiting"}
        await wait_for_status(database, execution_id, "completed")
    finally:
        await plane.crash()
    events = await WriterHistory(writer, execution_id).read()
    completed = Counter(e.node_id for e in events if e.type is EventType.NODE_COMPLETED)
    assert completed == {"start": 1, "approval": 1, "count": 1}
    assert [e.type for e in events].count(EventType.EXECUTION_RESUMED) == 1
    assert Calls.counter[("count", 0)] == 1


async def test_an_accepted_resume_survives_a_lost_queue(
    database: Database, writer: GroupCommitWriter
) -> None:
    """The resume was answered, then the process died before a worker took it: the next
    process's recovery runs the execution with that payload."""
    Calls.reset()
    plane = build_plane(database, writer)
    plane.start()
    execution_id = await start(plane, WAITS, {"n": 1})
    await wait_for_status(database, execution_id, "waiting")
    await plane.crash()  # no worker: the job queued by the resume is never taken
    links = ResumeLinks(database, plane.queue, b"k" * 32, "http://127.0.0.1")
    await links.resume(execution_id, links.token(execution_id), {"ok": True})
    after = build_plane(database, writer)
    assert await after.service.recover() >= 1
    after.start()
    try:
        await wait_for_status(database, execution_id, "completed")
    finally:
        await after.crash()
    resumed = [e for e in await WriterHistory(writer, execution_id).read()
               if e.type is EventType.EXECUTION_RESUMED]  # fmt: skip
    assert [e.data["payload"] for e in resumed] == [{"ok": True}]


async def test_a_job_failing_every_time_ends_in_the_dead_letters_and_fails_its_execution(
    database: Database, writer: GroupCommitWriter
) -> None:
    """A history the workflow cannot replay: three deliveries, then the dead letter with
    the reason, the execution failed with it, and nothing left for recovery."""
    plane = build_plane(database, writer)
    execution_id = await start(plane, SIMPLE, {"n": 1})
    plane.service.fresh.clear()
    async with database.transaction() as session:
        session.add(ExecutionEvent(execution_id=execution_id, seq=2, type="node.skipped",
                                   node_id="count", data={}))  # fmt: skip
    await expire_lease(database, execution_id)
    plane.start()
    try:
        row = await wait_for_status(database, execution_id, "failed")
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while not await plane.queue.dead_letters():
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
    finally:
        await plane.crash()
    [dead] = await plane.queue.dead_letters()
    assert dead.attempts == 3
    assert "NonDeterminismError" in dead.reason
    assert row.error is not None
    assert "after 3 attempts" in row.error["message"]
    assert "NonDeterminismError" in row.error["message"]
    assert await plane.service.recover() == 0
    async with database.session() as session:
        last = (await session.scalars(
            select(ExecutionEvent.type).where(ExecutionEvent.execution_id == execution_id)
            .order_by(ExecutionEvent.seq.desc()).limit(1))).one()  # fmt: skip
    assert last == "execution.failed"


async def test_cancel_from_another_process_stops_the_run_at_its_next_node(
    database: Database, writer: GroupCommitWriter
) -> None:
    """The API of another process (its own cancel registry) cancels a running execution:
    the request is stored, the worker that runs it reads it and stops before the next
    node."""
    from linkflow.security.rbac import Role, permissions_for
    from linkflow.services.context import Principal, WorkspaceAccess
    from linkflow.services.execution_views import ExecutionViews
    from linkflow.store import User, Workspace
    from linkflow.worker.consumer import CancelRegistry
    from tests.integration.test_execution_plane import GATED
    from tests.unit.engine._nodes import Gate

    Calls.reset()
    Gate.reset()
    assert Gate.reached is not None
    assert Gate.opened is not None
    async with database.transaction() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com")
        session.add(user)
        await session.flush()
        workspace = Workspace(name="Team", slug=uuid.uuid4().hex, owner_id=user.id)
        session.add(workspace)
        await session.flush()
    access = WorkspaceAccess(workspace.id, Role.OWNER, permissions_for(Role.OWNER),
                             Principal(user=user))  # fmt: skip
    workflow = await save_workflow(database, workspace.id, GATED)
    runner = build_plane(database, writer)
    other = build_plane(database, writer)
    views = ExecutionViews(database, writer, other.service, CancelRegistry())
    runner.start()
    try:
        execution_id = await runner.service.create(
            NewExecution(workspace.id, workflow.id, 1, {"n": 1})
        )
        await asyncio.wait_for(Gate.reached.wait(), DEADLINE_S)
        answer = await views.cancel(access, execution_id)
        assert answer["status"] == "running"  # accepted; the worker stops it next
        async with database.session() as session:
            stored = await session.get(Execution, execution_id)
        assert stored is not None
        assert stored.cancel_reason == "cancelled by user"
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while runner.cancels.reason(execution_id) is None:  # read by the worker's poll
            assert asyncio.get_running_loop().time() < deadline, "the request was not read"
            await asyncio.sleep(0.01)
        Gate.opened.set()
        row = await wait_for_status(database, execution_id, "cancelled")
    finally:
        await runner.crash()
    assert Calls.counter[("after", 0)] == 0
    assert row.completed_at is not None
