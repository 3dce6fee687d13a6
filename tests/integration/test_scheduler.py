"""The in-process scheduler: schedules fire once per tick time, waiting runs wake up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from linkflow.queue import LocalQueue
from linkflow.scheduler.local import MAX_CATCH_UP_TICKS, LocalScheduler, _ticks_between
from linkflow.scheduler.timing import next_fire
from linkflow.services.executions import ExecutionService
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import (
    Database,
    Execution,
    Schedule,
    Workflow,
    WorkflowRepository,
    WorkflowStatus,
)
from tests.integration._rows import new_workspace

DOC = {
    "nodes": [{"id": "every", "type": "schedule", "parameters": {"interval_s": 60}},
              {"id": "noop", "type": "noop"}],
    "connections": [{"from": "every", "to": "noop"}],
}  # fmt: skip


async def _active_schedule(database: Database) -> tuple[uuid.UUID, uuid.UUID]:
    workspace = await new_workspace(database)
    async with database.transaction() as session:
        repo = WorkflowRepository(session, workspace)
        workflow = await repo.add(Workflow(name="tick", nodes=DOC["nodes"],
                                           connections=DOC["connections"],
                                           status=WorkflowStatus.ACTIVE))  # fmt: skip
        await repo.add_version(workflow)
        schedule = Schedule(workspace_id=workspace, workflow_id=workflow.id, node_id="every",
                            interval_s=60)  # fmt: skip
        session.add(schedule)
        await session.flush()
        return workflow.id, schedule.id


async def _executions(database: Database, workflow_id: uuid.UUID) -> list[Execution]:
    async with database.session() as session:
        rows = await session.scalars(select(Execution).where(Execution.workflow_id == workflow_id))
        return list(rows.all())


async def test_a_schedule_fires_once_per_due_time_even_with_two_schedulers(
    database: Database,
) -> None:
    """First sight sets next_run_at; when due, two schedulers' ticks start one execution."""
    writer = GroupCommitWriter(database)
    writer.start()
    try:
        queue = LocalQueue()
        service = ExecutionService(database, writer, queue)
        first, second = (
            LocalScheduler(database, service, queue),
            LocalScheduler(database, service, queue),
        )
        workflow_id, schedule_id = await _active_schedule(database)
        now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        await first.tick(now)
        assert await _executions(database, workflow_id) == []
        due = now + timedelta(seconds=61)
        await first.tick(due)
        await second.tick(due)
        runs = await _executions(database, workflow_id)
        assert len(runs) == 1
        assert runs[0].trigger_type.value == "schedule"
        assert runs[0].input["scheduled_at"] == (now + timedelta(seconds=60)).isoformat()
        async with database.session() as session:
            schedule = await session.get(Schedule, schedule_id)
        assert schedule is not None
        # The next tick follows the one that fired, not the moment it fired: no drift.
        assert schedule.next_run_at == now + timedelta(seconds=120)
        assert (await queue.depth())["normal"] == 1
    finally:
        await writer.close()


async def test_ticks_missed_within_the_catch_up_window_fire_each_older_ones_once(
    database: Database,
) -> None:
    """Down for 3.5 intervals (inside a 5-minute window): three runs, each with its own
    scheduled_at, in order; down for an hour: one run, and the schedule goes on from now.
    The scheduler's metrics count the ticks the one run stood for as missed."""
    writer = GroupCommitWriter(database)
    writer.start()
    try:
        queue = LocalQueue()
        scheduler = LocalScheduler(database, ExecutionService(database, writer, queue), queue,
                                   catch_up_s=300)  # fmt: skip
        workflow_id, schedule_id = await _active_schedule(database)
        now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
        await scheduler.tick(now)
        await scheduler.tick(now + timedelta(seconds=210))
        runs = await _executions(database, workflow_id)
        assert sorted(run.input["scheduled_at"] for run in runs) == [
            (now + timedelta(seconds=60 * n)).isoformat() for n in (1, 2, 3)
        ]
        # Other tests' schedules share the database: the counts grow by at least ours.
        fired, missed = scheduler.fired, scheduler.missed
        later = now + timedelta(hours=1)
        await scheduler.tick(later)
        # The run stands for the tick due at +4 min; those of +5 ... +60 min were missed.
        assert scheduler.fired - fired >= 1
        assert scheduler.missed - missed >= 56
        async with database.session() as session:
            schedule = await session.get(Schedule, schedule_id)
        assert schedule is not None
        assert schedule.next_run_at == later + timedelta(seconds=60)
        assert len(await _executions(database, workflow_id)) == 4
    finally:
        await writer.close()


def test_the_ticks_missed_are_every_fire_time_after_the_one_run_up_to_now() -> None:
    """What `linkflow_scheduler_ticks_missed_total` counts: cron and interval alike, and
    no more than the catch-up cap for a schedule down for years."""
    due = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    hourly = Schedule(cron="0 * * * *", timezone="UTC")
    assert _ticks_between(hourly, due, due + timedelta(hours=5, minutes=30)) == 5
    assert _ticks_between(hourly, due, due + timedelta(minutes=59)) == 0
    every_second = Schedule(interval_s=1, timezone="UTC")
    assert _ticks_between(every_second, due, due + timedelta(days=400)) == MAX_CATCH_UP_TICKS


def test_cron_is_evaluated_in_the_schedules_time_zone_across_dst() -> None:
    """9:00 in Paris is 07:00 UTC in summer and 08:00 UTC in winter."""
    summer = next_fire(datetime(2026, 7, 1, tzinfo=UTC), cron="0 9 * * *", interval_s=None,
                       timezone="Europe/Paris")  # fmt: skip
    winter = next_fire(datetime(2026, 12, 1, tzinfo=UTC), cron="0 9 * * *", interval_s=None,
                       timezone="Europe/Paris")  # fmt: skip
    assert summer == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert winter == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def test_six_field_cron_has_seconds_first() -> None:
    """`*/15 * * * * *` fires every 15 seconds."""
    fire = next_fire(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), cron="*/15 * * * * *",
                     interval_s=None)  # fmt: skip
    assert fire == datetime(2026, 1, 1, 0, 0, 15, tzinfo=UTC)


async def test_finished_executions_past_the_plans_retention_are_deleted(
    database: Database,
) -> None:
    """A workspace with no subscription is on the free plan: its old runs go, recent stay."""
    from linkflow.services.retention import purge_expired_executions
    from linkflow.store import ExecutionEvent, ExecutionStatus, Plan

    async with database.session() as session:
        free_days = await session.scalar(select(Plan.retention_days).where(Plan.code == "free"))
    assert free_days is not None
    workflow_id, _ = await _active_schedule(database)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    async with database.transaction() as session:
        workflow = await session.get(Workflow, workflow_id)
        assert workflow is not None
        rows = {
            age: Execution(workspace_id=workflow.workspace_id, workflow_id=workflow_id,
                           workflow_version=1, status=ExecutionStatus.COMPLETED,
                           completed_at=now - timedelta(days=age))
            for age in (free_days + 1, free_days - 1)
        }  # fmt: skip
        session.add_all(rows.values())
        await session.flush()
        session.add(ExecutionEvent(execution_id=rows[free_days + 1].id, seq=1,
                                   type="execution.queued", data={}))  # fmt: skip
    assert await purge_expired_executions(database, now) >= 1
    left = {row.id for row in await _executions(database, workflow_id)}
    assert rows[free_days + 1].id not in left
    assert rows[free_days - 1].id in left
    async with database.session() as session:
        orphans = await session.scalars(
            select(ExecutionEvent).where(ExecutionEvent.execution_id == rows[free_days + 1].id)
        )
        assert orphans.all() == []
