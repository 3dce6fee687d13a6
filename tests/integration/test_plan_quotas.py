"""Plan limits where executions start, decided by the counters the writes themselves
move (SQLite and PostgreSQL): `executions_per_month` and `max_concurrent_executions`
refuse exactly at their boundary, of concurrent starts at the last slot exactly one
passes (through several writers, each on a connection of its own, as several processes
would write), and node runs count once however often their write is retried."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from linkflow.engine import Event, EventType
from linkflow.queue import LocalQueue
from linkflow.services.errors import LinkFlowError, RateLimited
from linkflow.services.executions import ExecutionService, NewExecution
from linkflow.services.plan_limits import CONCURRENCY_RETRY_AFTER_S, month_of, next_month
from linkflow.services.plans import Allowance
from linkflow.services.writer import GroupCommitWriter, LeaseAction
from linkflow.store import Database, Execution, ExecutionEvent, ExecutionLease, ExecutionStatus
from linkflow.store import Usage as UsageRow
from linkflow.store.batch import Quota
from tests.integration._rows import new_workflow, new_workspace

RACERS = 20
WRITERS = 4


class Limits:
    """What `PlanLimits.allowance` would answer, set by the test."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        self.start, self.end = month_of(now), next_month(now)
        self.executions: int | None = None
        self.concurrent: int | None = None

    async def __call__(self, workspace_id: uuid.UUID) -> Allowance:
        return Allowance(Quota(self.start, self.executions, self.concurrent), self.end)


@pytest.fixture
async def writers(database: Database) -> AsyncIterator[list[GroupCommitWriter]]:
    started = [GroupCommitWriter(database) for _ in range(WRITERS)]
    for writer in started:
        writer.start()
    yield started
    for writer in started:
        await writer.close()


def services(
    database: Database, writers: list[GroupCommitWriter], limits: Limits
) -> list[ExecutionService]:
    queue = LocalQueue()
    return [ExecutionService(database, writer, queue, allowances=limits) for writer in writers]


async def _outcome(start: Awaitable[uuid.UUID]) -> uuid.UUID | LinkFlowError:
    try:
        return await start
    except LinkFlowError as error:
        return error


async def stored(database: Database, workspace: uuid.UUID) -> tuple[int, int, int]:
    """(executions, their events, usage counted) of the workspace."""
    async with database.session() as session:
        executions = await session.scalar(
            select(func.count()).select_from(Execution)
            .where(Execution.workspace_id == workspace)
        )  # fmt: skip
        events = await session.scalar(
            select(func.count()).select_from(ExecutionEvent)
            .join(Execution, Execution.id == ExecutionEvent.execution_id)
            .where(Execution.workspace_id == workspace)
        )  # fmt: skip
        used = await session.scalar(
            select(func.coalesce(func.sum(UsageRow.quantity), 0))
            .where(UsageRow.workspace_id == workspace, UsageRow.metric == "executions")
        )  # fmt: skip
    return int(executions or 0), int(events or 0), int(used or 0)


async def test_executions_per_month_refuses_exactly_at_its_boundary(
    database: Database, writers: list[GroupCommitWriter]
) -> None:
    limits = Limits()
    limits.executions = 3
    [service, *_] = services(database, writers, limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    new = NewExecution(workspace, workflow.id, workflow.version)
    for _ in range(3):
        await service.create(new)
    with pytest.raises(RateLimited) as refused:
        await service.create(new)
    error = refused.value
    assert error.code == "plan_limit"
    assert error.extra == {"limit": "executions_per_month", "value": 3, "usage": 3}
    # Retry-After: the seconds until the month (the period) ends.
    until_reset = (limits.end - datetime.now(UTC)).total_seconds()
    assert until_reset - 5 <= error.retry_after_s <= until_reset + 5
    assert await stored(database, workspace) == (3, 3, 3), "nothing of the refused one"

    limits.executions = 4  # an admin raised the limit
    await service.create(new)
    assert await stored(database, workspace) == (4, 4, 4)


async def test_twenty_racing_for_the_last_execution_of_the_month_one_passes(
    database: Database, writers: list[GroupCommitWriter]
) -> None:
    limits = Limits()
    limits.executions = 5
    racing = services(database, writers, limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    new = NewExecution(workspace, workflow.id, workflow.version)
    for _ in range(4):
        await racing[0].create(new)
    outcomes = await asyncio.gather(*(
        _outcome(racing[n % WRITERS].create(new)) for n in range(RACERS)
    ))  # fmt: skip
    passed = [o for o in outcomes if isinstance(o, uuid.UUID)]
    refused = [o for o in outcomes if isinstance(o, LinkFlowError)]
    assert len(passed) == 1
    assert len(refused) == RACERS - 1
    assert {(e.code, e.extra["limit"], e.extra["value"], e.extra["usage"]) for e in refused} == {
        ("plan_limit", "executions_per_month", 5, 5)
    }
    assert await stored(database, workspace) == (5, 5, 5)


async def test_concurrent_executions_count_the_queued_and_running_ones(
    database: Database, writers: list[GroupCommitWriter]
) -> None:
    limits = Limits()
    limits.concurrent = 2
    [service, *_] = services(database, writers, limits)
    writer = writers[0]
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    new = NewExecution(workspace, workflow.id, workflow.version)
    first, second = await service.create(new), await service.create(new)
    await writer.update_execution(first, status=ExecutionStatus.RUNNING)
    with pytest.raises(RateLimited) as refused:
        await service.create(new)
    assert refused.value.extra == {"limit": "max_concurrent_executions", "value": 2, "usage": 2}
    assert refused.value.retry_after_s == CONCURRENCY_RETRY_AFTER_S

    await writer.update_execution(first, status=ExecutionStatus.COMPLETED)  # a slot frees
    third = await service.create(new)
    with pytest.raises(RateLimited):
        await service.create(new)
    # A waiting execution holds no worker, and no slot.
    await writer.update_execution(second, status=ExecutionStatus.RUNNING)
    await writer.update_execution(second, status=ExecutionStatus.WAITING)
    await service.create(new)
    assert third != first
    assert (await stored(database, workspace))[0] == 4


async def test_twenty_racing_for_the_last_concurrent_slot_one_passes(
    database: Database, writers: list[GroupCommitWriter]
) -> None:
    limits = Limits()
    limits.concurrent = 3
    racing = services(database, writers, limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    new = NewExecution(workspace, workflow.id, workflow.version)
    for _ in range(2):
        await racing[0].create(new)
    outcomes = await asyncio.gather(*(
        _outcome(racing[n % WRITERS].create(new)) for n in range(RACERS)
    ))  # fmt: skip
    assert sum(isinstance(o, uuid.UUID) for o in outcomes) == 1
    assert {o.extra["limit"] for o in outcomes if isinstance(o, LinkFlowError)} == {
        "max_concurrent_executions"
    }
    assert await stored(database, workspace) == (3, 3, 3)


async def test_a_refused_start_leaves_no_lease_behind(
    database: Database, writers: list[GroupCommitWriter]
) -> None:
    """In a process with a worker the creating batch also takes the execution's lease:
    refused, the lease goes with the execution."""
    limits = Limits()
    limits.executions = 0
    released: list[str] = []
    expiry = datetime.now(UTC) + timedelta(seconds=30)
    service = ExecutionService(database, writers[0], LocalQueue(), allowances=limits,
                               leases=lambda execution_id: (f"test/{execution_id}", expiry),
                               unlease=released.append)  # fmt: skip
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    execution_id = uuid.uuid4()
    with pytest.raises(RateLimited):
        await service.create(NewExecution(workspace, workflow.id, workflow.version,
                                          id=execution_id))  # fmt: skip
    async with database.session() as session:
        lease = await session.get(ExecutionLease, execution_id)
    assert lease is None
    assert released == [f"test/{execution_id}"]
    assert execution_id not in service.fresh


async def node_runs(database: Database, workspace: uuid.UUID) -> int:
    async with database.session() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(UsageRow.quantity), 0))
            .where(UsageRow.workspace_id == workspace, UsageRow.metric == "node_runs")
        )  # fmt: skip
    return int(total or 0)


async def test_node_runs_count_once_however_often_their_write_is_retried(
    database: Database, writers: list[GroupCommitWriter]
) -> None:
    limits = Limits()
    writer = writers[0]
    [service, *_] = services(database, writers, limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    execution_id = await service.create(NewExecution(workspace, workflow.id, workflow.version))
    lease = "test/worker"
    taken = writer.lease_nowait(LeaseAction.TAKE, execution_id, lease,
                                datetime.now(UTC) + timedelta(seconds=30))  # fmt: skip
    assert await taken
    at = datetime.now(UTC)
    history: list[Event] = [
        Event(2, EventType.EXECUTION_STARTED, None, {}, at),
        Event(3, EventType.NODE_STARTED, "a", {}, at),
        Event(4, EventType.NODE_COMPLETED, "a", {"items": []}, at),
        Event(5, EventType.NODE_STARTED, "b", {}, at),
        Event(6, EventType.NODE_FAILED, "b", {"error": {"message": "no"}}, at),
        Event(7, EventType.NODE_SKIPPED, "c", {}, at),
    ]

    async def append(events: list[Event]) -> None:
        for appended in [writer.append_nowait(execution_id, e, lease=lease) for e in events]:
            await appended

    await append(history)
    assert await node_runs(database, workspace) == 2, "a completed and a failed node"
    # The same writes again (a caller that retries after its batch's answer was lost),
    # and another worker's resumption writing only what was not stored: nothing twice.
    await append(history[2:4])
    await append([Event(8, EventType.NODE_COMPLETED, "d", {"items": []}, at)])
    assert await node_runs(database, workspace) == 3




async def test_limits_hold_through_the_writer_process(
    database: Database, process_writer: GroupCommitWriter
) -> None:
    """The writer `serve` uses writes in child processes: quotas and refusals cross the
    channel (and so do the counts of node runs)."""
    limits = Limits()
    limits.executions = 2
    service = ExecutionService(database, process_writer, LocalQueue(), allowances=limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    new = NewExecution(workspace, workflow.id, workflow.version)
    outcomes = await asyncio.gather(*(_outcome(service.create(new)) for _ in range(RACERS)))
    assert sum(isinstance(o, uuid.UUID) for o in outcomes) == 2
    refused = next(o for o in outcomes if isinstance(o, LinkFlowError))
    assert refused.extra == {"limit": "executions_per_month", "value": 2, "usage": 2}
    assert await stored(database, workspace) == (2, 2, 2)
