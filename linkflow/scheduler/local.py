"""The in-process scheduler of `linkflow serve`: schedules and wait timers.

Every tick it (1) fires the schedules whose `next_run_at` has come, each by a
compare-and-set on `next_run_at` so that a tick can never fire twice even if
two schedulers run, and (2) hands the worker the waiting executions whose
resume time has come. Missed ticks (the process was down) fire once, then the
schedule continues from now: no burst of catch-up runs. Every half lease it
also recovers the unfinished executions nobody holds (a worker died: another
process on the same database resumes its executions once their leases expired), and
the parents left waiting for children that have all ended.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update

from linkflow.observability.logging import get_logger
from linkflow.queue import Queue
from linkflow.scheduler.timing import next_fire
from linkflow.services.children import ChildExecutions
from linkflow.services.executions import ExecutionService, NewExecution, execution_job
from linkflow.services.retention import purge_expired_executions
from linkflow.store import (
    Database,
    Execution,
    ExecutionStatus,
    Schedule,
    ScheduleStatus,
    TriggerType,
    Workflow,
    WorkflowStatus,
)

__all__ = ["LocalScheduler"]

log = get_logger(__name__)

TICK_S = 0.5
CLEANUP_EVERY_S = 3600.0
"""Retention cleanup runs at start and hourly: plans count retention in days."""
"""How often due work is looked for; the resolution of schedules and wait timers."""


class LocalScheduler:
    def __init__(
        self, database: Database, executions: ExecutionService, queue: Queue,
        *, recover_every_s: float = 15.0, children: ChildExecutions | None = None,
    ) -> None:  # fmt: skip
        self.database = database
        self.executions = executions
        self.children = children
        self.queue = queue
        self.recover_every_s = recover_every_s
        self.dead_owner: Callable[[str], bool] | None = None
        self._woken: set[str] = set()

    async def run(self) -> None:
        last_cleanup = -CLEANUP_EVERY_S
        last_recovery = time.monotonic()
        while True:
            try:
                await self.tick()
                if time.monotonic() - last_recovery >= self.recover_every_s:
                    last_recovery = time.monotonic()
                    recovered = await self.executions.recover(self.dead_owner)
                    if self.children is not None:
                        recovered += await self.children.recover()
                    if recovered:
                        log.info("resuming executions whose worker is gone", count=recovered)
                if time.monotonic() - last_cleanup >= CLEANUP_EVERY_S:
                    last_cleanup = time.monotonic()
                    purged = await purge_expired_executions(self.database, datetime.now(UTC))
                    if purged:
                        log.info("deleted executions past their plan's retention", count=purged)
            except Exception:
                log.exception("scheduler tick failed")  # retried on the next tick
            await asyncio.sleep(TICK_S)

    async def tick(self, now: datetime | None = None) -> int:
        """Fire what is due; returns how many executions were started or woken."""
        moment = now or datetime.now(UTC)
        return await self._fire_schedules(moment) + await self._wake_waiting(moment)

    async def _fire_schedules(self, now: datetime) -> int:
        statement = (
            select(Schedule, Workflow.version)
            .join(Workflow, Workflow.id == Schedule.workflow_id)
            .where(Schedule.status == ScheduleStatus.ACTIVE,
                   Workflow.status == WorkflowStatus.ACTIVE,
                   (Schedule.next_run_at.is_(None)) | (Schedule.next_run_at <= now))
        )  # fmt: skip
        async with self.database.session() as session:
            rows = (await session.execute(statement)).all()
        fired = 0
        for schedule, version in rows:
            if await self._claim(schedule, now) and schedule.next_run_at is not None:
                await self._start(schedule, version, schedule.next_run_at, now)
                fired += 1
        return fired

    async def _claim(self, schedule: Schedule, now: datetime) -> bool:
        """Move next_run_at forward iff nobody else did (compare and set)."""
        following = next_fire(now, cron=schedule.cron, interval_s=schedule.interval_s,
                              timezone=schedule.timezone)  # fmt: skip
        async with self.database.transaction() as session:
            result = await session.execute(
                update(Schedule)
                .where(Schedule.id == schedule.id,
                       Schedule.next_run_at.is_(None) if schedule.next_run_at is None
                       else Schedule.next_run_at == schedule.next_run_at)
                .values(next_run_at=following,
                        last_run_at=now if schedule.next_run_at is not None
                        else Schedule.last_run_at)
            )  # fmt: skip
        return bool(getattr(result, "rowcount", 0))

    async def _start(self, schedule: Schedule, version: int, due: datetime, now: datetime) -> None:
        payload = {"scheduled_at": due.isoformat(), "fired_at": now.isoformat()}
        await self.executions.create(
            NewExecution(
                workspace_id=schedule.workspace_id, workflow_id=schedule.workflow_id,
                workflow_version=version, input={**payload, **(schedule.input or {})}
                if isinstance(schedule.input, dict) else payload,
                trigger_type=TriggerType.SCHEDULE, start_node=schedule.node_id,
            )
        )  # fmt: skip

    async def _wake_waiting(self, now: datetime) -> int:
        statement = select(Execution.id).where(
            Execution.status == ExecutionStatus.WAITING, Execution.wait_until <= now
        )
        async with self.database.session() as session:
            due = [str(row_id) for row_id in (await session.scalars(statement)).all()]
        woken = 0
        for execution_id in due:
            if execution_id in self._woken:
                continue  # already handed over; the worker moves it off `waiting`
            self._woken.add(execution_id)
            await self.queue.enqueue(execution_job(uuid.UUID(execution_id)))
            woken += 1
        self._woken &= set(due)
        return woken
