"""Usage counted as it happens, and plan limits on the starts made in transactions of their
own (a schedule's tick, a sub-workflow), on SQLite and PostgreSQL: those take the same
counter as the writer's batches, so of both kinds racing at the last slot one passes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from linkflow.engine import Event, EventType, ParentLink
from linkflow.queue import LocalQueue
from linkflow.scheduler.local import LocalScheduler
from linkflow.services.children import ChildExecutions
from linkflow.services.errors import LinkFlowError
from linkflow.services.executions import ExecutionService, NewExecution
from linkflow.services.plans import PlanLimits
from linkflow.services.writer import GroupCommitWriter, LeaseAction
from linkflow.store import Database, Schedule
from tests.integration._rows import new_workflow, new_workspace
from tests.integration.test_plan_quotas import Limits, stored
from tests.integration.test_scheduler import _active_schedule, _executions


async def test_a_schedule_tick_at_the_monthly_limit_starts_nothing_and_is_spent(
    database: Database, writer: GroupCommitWriter
) -> None:
    limits = Limits()
    limits.executions = 1
    queue = LocalQueue()
    scheduler = LocalScheduler(database, ExecutionService(database, writer, queue,
                                                          allowances=limits), queue)  # fmt: skip
    workflow_id, schedule_id = await _active_schedule(database)
    now = datetime.now(UTC)
    await scheduler.tick(now)  # first sight: sets next_run_at
    await scheduler.tick(now + timedelta(seconds=61))
    [run] = await _executions(database, workflow_id)
    await scheduler.tick(now + timedelta(seconds=121))  # the second of a limit of one
    assert [row.id for row in await _executions(database, workflow_id)] == [run.id]
    async with database.session() as session:
        schedule = await session.get(Schedule, schedule_id)
    assert schedule is not None
    assert schedule.next_run_at == now + timedelta(seconds=180), "the refused tick is spent"
    assert (await stored(database, run.workspace_id))[2] == 1
    assert (await queue.depth())["normal"] == 1


async def test_a_sub_workflow_over_the_limit_is_not_started_and_says_why(
    database: Database, writer: GroupCommitWriter
) -> None:
    limits = Limits()
    limits.executions = 1
    queue = LocalQueue()
    service = ExecutionService(database, writer, queue, allowances=limits)
    children = ChildExecutions(database, queue, allowances=limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    parent_id = await service.create(NewExecution(workspace, workflow.id, workflow.version))
    link = ParentLink(str(parent_id), str(workflow.id), "call", 0)
    child = await children.run(str(workflow.id), {}, wait=True, parent=link,
                               idempotency_key=f"{parent_id}:call:0:1")  # fmt: skip
    assert child.status == "failed"
    assert child.error is not None
    assert child.error["code"] == "plan_limit"
    assert child.error["limit"] == "executions_per_month"
    assert "allows 1 executions per month and 1 are used" in child.error["message"]
    assert await stored(database, workspace) == (1, 1, 1), "no child row, nothing counted"

    limits.executions = 2
    started = await children.run(str(workflow.id), {}, wait=True, parent=link,
                                 idempotency_key=f"{parent_id}:call:0:2")  # fmt: skip
    assert started.status == "queued"
    assert await stored(database, workspace) == (2, 2, 2)


async def test_starts_of_both_kinds_racing_for_the_last_slot_one_passes(
    database: Database, writer: GroupCommitWriter
) -> None:
    """Ten starts in transactions of their own, ten through the writer's batches."""
    limits = Limits()
    limits.concurrent = 1
    queue = LocalQueue()
    service = ExecutionService(database, writer, queue, allowances=limits)
    workspace = await new_workspace(database)
    workflow = await new_workflow(database, workspace)
    new = NewExecution(workspace, workflow.id, workflow.version)

    async def in_own_transaction() -> str | None:
        try:
            async with database.transaction() as session:
                await service.insert(session, new)
        except LinkFlowError as error:
            return str(error.extra["limit"])
        return None

    async def through_writer() -> str | None:
        try:
            await service.create(new)
        except LinkFlowError as error:
            return str(error.extra["limit"])
        return None

    passed = await asyncio.gather(*(
        (in_own_transaction if n % 2 else through_writer)() for n in range(20)
    ))  # fmt: skip
    assert passed.count(None) == 1
    assert set(passed) == {None, "max_concurrent_executions"}
    assert await stored(database, workspace) == (1, 1, 1)


async def test_the_usage_report_adds_up_what_the_writes_counted(
    database: Database, writer: GroupCommitWriter
) -> None:
    """On the default plan of a self-hosted instance (unlimited) usage still counts: the
    period's executions, and the node runs of every connection of the writer."""
    limits = Limits()
    service = ExecutionService(database, writer, LocalQueue(), allowances=limits)
    second = GroupCommitWriter(database, connections=2)
    second.start()
    try:
        workspace = await new_workspace(database)
        workflow = await new_workflow(database, workspace)
        ids = [await service.create(NewExecution(workspace, workflow.id, workflow.version))
               for _ in range(6)]  # fmt: skip
        at = datetime.now(UTC)
        for execution_id in ids:  # through both connections of `second` (by execution id)
            lease = f"test/{execution_id}"
            assert await second.lease_nowait(LeaseAction.TAKE, execution_id, lease,
                                             at + timedelta(seconds=30))  # fmt: skip
            for appended in [second.append_nowait(execution_id, event, lease=lease) for event in (
                Event(2, EventType.EXECUTION_STARTED, None, {}, at),
                Event(3, EventType.NODE_COMPLETED, "a", {"items": []}, at),
                Event(4, EventType.NODE_COMPLETED, "b", {"items": []}, at),
            )]:  # fmt: skip
                await appended
    finally:
        await second.close()
    report = await PlanLimits(database, "enterprise").usage(workspace)
    assert report.metrics == {"executions": 6, "node_runs": 12}
    assert report.period_start == limits.start
    assert report.standing.limits.as_dict()["executions_per_month"] is None
