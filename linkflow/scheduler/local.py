"""The in-process scheduler of `linkflow serve`: schedules and wait timers.

Every tick it (1) fires the schedules whose `next_run_at` has come, each by a
compare-and-set on `next_run_at` so that a tick can never fire twice even if
two schedulers run, and (2) hands the worker the waiting executions whose
resume time has come. Catch-up policy for missed ticks (no scheduler ran, or a
leader died and its follower took over): the ticks missed for less than
`catch_up_s` (LINKFLOW_SCHEDULE_CATCH_UP_S, one minute by default) fire each,
in order, with their own `scheduled_at`; a tick older than that fires once for
all of them, then the schedule continues from now (no burst of runs after a long
outage). Every half lease it
also recovers the unfinished executions nobody holds (a worker died: another
process on the same database resumes its executions once their leases expired), and
the parents left waiting for children that have all ended. Every five minutes it
queues the usage alerts that came due (`services.usage_alerts`; usage is counted as it
happens, `services.usage`), hourly it deletes executions past their retention. A tick
whose workspace is at a plan limit starts nothing (and is not fired again later).
Polling triggers' rows (`Schedule.polling`) are polled by its `poller`
(`scheduler.polling`, which states their policy); without one they wait.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from linkflow.observability.logging import get_logger
from linkflow.queue import Queue
from linkflow.scheduler.polling import Poller
from linkflow.scheduler.timing import next_fire
from linkflow.services.children import ChildExecutions
from linkflow.services.errors import LinkFlowError
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
"""How often due work is looked for; the resolution of schedules and wait timers."""
CLEANUP_EVERY_S = 3600.0
"""Retention cleanup runs at start and hourly: plans count retention in days."""
USAGE_EVERY_S = 300.0
"""How often the usage alerts are looked for (`services.usage_alerts`)."""
MAX_CATCH_UP_TICKS = 1000
"""Missed ticks one schedule fires in one go at most (a 1-second cron down for a minute)."""


class LocalScheduler:
    def __init__(
        self, database: Database, executions: ExecutionService, queue: Queue,
        *, recover_every_s: float = 15.0, children: ChildExecutions | None = None,
        catch_up_s: float = 60.0,
    ) -> None:  # fmt: skip
        self.database = database
        self.executions = executions
        self.children = children
        self.queue = queue
        self.recover_every_s = recover_every_s
        self.catch_up = timedelta(seconds=catch_up_s)
        self.dead_owner: Callable[[str], bool] | None = None
        self.usage_alerts: Callable[[], Awaitable[int]] | None = None
        """Run after each count of usage: the 80 % and 100 % e-mails (`services.usage_alerts`)."""
        self.poller: Poller | None = None
        """Polls the due polling triggers (`scheduler.polling`); None: they are not polled."""
        self._woken: set[str] = set()
        self.fired = 0
        """Schedule ticks this scheduler fired so far (its metrics)."""
        self.missed = 0
        """Ticks missed for longer than the catch-up window, which one run stood for
        (counted up to `MAX_CATCH_UP_TICKS` per schedule and outage; its metrics)."""

    async def run(self) -> None:
        last_cleanup = last_usage = -CLEANUP_EVERY_S
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
                if time.monotonic() - last_usage >= USAGE_EVERY_S:
                    last_usage = time.monotonic()
                    if self.usage_alerts is not None:
                        await self.usage_alerts()
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
            due = schedule.next_run_at
            if schedule.polling:
                if self.poller is not None:
                    started = self.poller.fired
                    await self.poller.fire(schedule, version, due, now)
                    fired += self.poller.fired - started
                continue
            for _ in range(MAX_CATCH_UP_TICKS):  # each missed tick of the window, in order
                following = await self._fire(schedule, version, due, now)
                if following is None:
                    break  # another scheduler moved it first
                fired += due is not None
                self.fired += due is not None
                if following > now:
                    break
                due = following
        return fired

    async def _fire(
        self, schedule: Schedule, version: int, due: datetime | None, now: datetime
    ) -> datetime | None:
        """Move next_run_at from `due` forward iff nobody else did (compare and set) and,
        in the same transaction, create the tick's execution: a crash between the two
        loses no tick, and two schedulers (a leader and one that believes it still is)
        never fire one tick twice. A schedule that never fired only gets its first time.
        Returns the new next_run_at, None when another scheduler moved it first."""
        # Within the window, the tick after this one (missed or not); beyond, fire once
        # for every tick missed and go on from now.
        after = due if due is not None and now - due <= self.catch_up else now
        following = next_fire(after, cron=schedule.cron, interval_s=schedule.interval_s,
                              timezone=schedule.timezone)  # fmt: skip
        async with self.database.transaction() as session:
            result = await session.execute(
                update(Schedule)
                .where(Schedule.id == schedule.id,
                       Schedule.next_run_at.is_(None) if due is None
                       else Schedule.next_run_at == due)
                .values(next_run_at=following,
                        last_run_at=now if due is not None else Schedule.last_run_at)
            )  # fmt: skip
            if not getattr(result, "rowcount", 0):
                return None
            if due is None:
                return following
            payload = {"scheduled_at": due.isoformat(), "fired_at": now.isoformat()}
            try:
                job = await self.executions.insert(session, NewExecution(
                    workspace_id=schedule.workspace_id, workflow_id=schedule.workflow_id,
                    workflow_version=version, input={**payload, **(schedule.input or {})}
                    if isinstance(schedule.input, dict) else payload,
                    trigger_type=TriggerType.SCHEDULE, start_node=schedule.node_id,
                ))  # fmt: skip
            except LinkFlowError as refused:
                if refused.code != "plan_limit":
                    raise
                # The tick is spent (a limit is no reason to fire it twice later).
                log.warning("schedule tick not run: its workspace is at a plan limit",
                            schedule_id=str(schedule.id), detail=refused.detail)  # fmt: skip
                return following
        await self.queue.enqueue(job)
        if after is now:  # the ticks between `due` and now: this one run stands for them
            self.missed += _ticks_between(schedule, due, now)
        return following

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


def _ticks_between(schedule: Schedule, since: datetime, until: datetime) -> int:
    """The fire times after `since` up to `until`, counted up to `MAX_CATCH_UP_TICKS`."""
    count, moment = 0, since
    while count < MAX_CATCH_UP_TICKS:
        moment = next_fire(moment, cron=schedule.cron, interval_s=schedule.interval_s,
                           timezone=schedule.timezone)  # fmt: skip
        if moment > until:
            break
        count += 1
    return count
