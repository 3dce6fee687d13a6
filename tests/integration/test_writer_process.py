"""The writer in a child process (what `linkflow serve`, `api` and `worker` run), on SQLite
and on PostgreSQL: it stores what the in-process writer stores, refuses a taken seq
alike, survives its child being killed, ignores the terminal's Ctrl-C, and leaves no
process behind."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from linkflow.engine import Event, EventType, HistoryConflict
from linkflow.services.executions import ExecutionService, NewExecution
from linkflow.services.writer import GroupCommitWriter, WriterHistory
from linkflow.store import Database, Execution, ExecutionStatus, NodeExecution
from linkflow.store.writer_process import WriterProcess
from tests.api._support import eventually
from tests.integration._rows import new_workspace
from tests.integration.test_execution_plane import (
    SIMPLE,
    build_plane,
    start,
    wait_for_status,
)


@pytest.fixture
def writer(process_writer: GroupCommitWriter) -> GroupCommitWriter:
    """Every test here runs on the writer process."""
    return process_writer


def child_of(writer: GroupCommitWriter, execution_id: uuid.UUID) -> WriterProcess:
    """The child writing `execution_id` (on PostgreSQL each connection has its own)."""
    process = writer.process_of(execution_id)
    assert process is not None
    return process


async def started_child(writer: GroupCommitWriter, execution_id: uuid.UUID) -> WriterProcess:
    """The child writing `execution_id`'s ops, once it runs: a creation that counts usage
    goes through its workspace's connection, which may be another child."""
    await writer.update_execution(execution_id, attempt=1)
    return child_of(writer, execution_id)


def _truthy(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool | None]]:
    """`condition` as the poll of `eventually` (None until it holds)."""

    async def check() -> bool | None:
        return True if condition() else None

    return check


async def stored_status(database: Database, execution_id: uuid.UUID) -> ExecutionStatus:
    async with database.session() as session:
        row = await session.get(Execution, execution_id)
    assert row is not None
    return row.status


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_run_through_the_child_is_stored_whole(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Execution row, history and node rows: as the in-process writer stores them."""
    plane = build_plane(database, writer)
    plane.start()
    execution_id = await start(plane, SIMPLE, {"n": 21})
    row = await wait_for_status(database, execution_id, "completed")
    assert row.output == [{"n": 42, "count": True}]
    assert row.started_at is not None
    assert row.completed_at is not None
    assert row.started_at <= row.completed_at
    events = await WriterHistory(writer, execution_id).read()
    assert [e.type.value for e in events][:2] == ["execution.queued", "execution.started"]
    assert events[-1].type.value == "execution.completed"
    async with database.session() as session:
        nodes = (
            await session.scalars(
                select(NodeExecution).where(NodeExecution.execution_id == execution_id)
            )
        ).all()
    assert sorted(n.node_id for n in nodes) == ["count", "double", "start"]
    assert {n.status.value for n in nodes} == {"completed"}
    assert child_of(writer, execution_id).pid is not None
    await plane.crash()


async def test_a_taken_seq_is_refused_through_the_child(
    database: Database, writer: GroupCommitWriter
) -> None:
    plane = build_plane(database, writer)
    execution_id = await start(plane, SIMPLE, {})
    at = datetime.now(UTC)
    taken = writer.append_nowait(execution_id, Event(1, EventType.EXECUTION_STARTED, None, {}, at))
    with pytest.raises(HistoryConflict):
        await taken


async def test_a_killed_child_fails_its_batch_at_most_and_a_new_one_takes_over(
    database: Database, writer: GroupCommitWriter
) -> None:
    plane = build_plane(database, writer)
    execution_id = await start(plane, SIMPLE, {})
    first = (await started_child(writer, execution_id)).pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    child = child_of(writer, execution_id)
    await eventually(_truthy(lambda: child.pid != first), what="the dead child to be noticed")
    await writer.update_execution(execution_id, status=ExecutionStatus.CANCELLED)
    second = child_of(writer, execution_id).pid
    assert second is not None
    assert second != first
    assert await stored_status(database, execution_id) is ExecutionStatus.CANCELLED


async def test_ctrl_c_does_not_reach_the_child(
    database: Database, writer: GroupCommitWriter
) -> None:
    """A terminal's SIGINT goes to the whole process group; the parent decides when the
    child stops (after its last flush)."""
    plane = build_plane(database, writer)
    execution_id = await start(plane, SIMPLE, {})
    pid = (await started_child(writer, execution_id)).pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    await writer.update_execution(execution_id, status=ExecutionStatus.CANCELLED)
    assert child_of(writer, execution_id).pid == pid


async def test_close_writes_what_is_queued_and_ends_the_child(database: Database) -> None:
    writer = GroupCommitWriter(database, process=True)
    writer.start()
    plane = build_plane(database, writer)
    execution_id = await start(plane, SIMPLE, {})
    pid = (await started_child(writer, execution_id)).pid
    assert pid is not None
    writer.update_execution_nowait(execution_id, status=ExecutionStatus.CANCELLED)
    await writer.close()
    await eventually(_truthy(lambda: not alive(pid)), what="the child to exit")
    assert await stored_status(database, execution_id) is ExecutionStatus.CANCELLED


async def test_a_child_that_cannot_write_fails_the_batch_not_the_writer(
    database: Database, writer: GroupCommitWriter
) -> None:
    """A batch the database refuses (an execution of no workflow: foreign key) fails its
    callers; the next batch goes through the same child."""
    plane = build_plane(database, writer)
    workspace = await new_workspace(database)
    bad = NewExecution(workspace, uuid.uuid4(), 1, {})
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        await ExecutionService(database, writer, plane.queue).create(bad)
    started = {process.pid for process in writer.processes} - {None}
    assert started  # the child that refused the batch
    for _ in range(8):  # on PostgreSQL, every connection's child writes some
        execution_id = await start(plane, SIMPLE, {})
        await writer.update_execution(execution_id, status=ExecutionStatus.CANCELLED)
    assert started <= {process.pid for process in writer.processes}
