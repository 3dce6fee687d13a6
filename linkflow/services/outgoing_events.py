"""What an execution event sends out: a `webhook_delivery` job per matching subscription,
and a `notification` job (an e-mail to the workspace's admins) when an execution fails.

The worker calls `OutgoingEvents.after_run` when a run ended (completed, failed,
cancelled, timed out) or started to wait. Without a subscription and without failure
alerts in the workspace that costs a dictionary lookup (the workspace's subscriptions
are cached for `CACHE_TTL_S`; changes made through this process show at once).

Durability, and the one window: a delivery is a row (`webhook_deliveries`) before it is
a job, and the row is written only once the execution's end is durable: `after_run`
first waits for the writer's batch holding the end (a barrier write queued after it,
`GroupCommitWriter.update_execution`), then checks the stored status, then inserts the
rows (unique per subscription, execution and event: a repeated fan-out adds nothing)
and enqueues their jobs. So:
- a delivery is never sent for an end that was not stored (a refused end, a lost lease);
- a process that dies after the rows were written loses no delivery: `recover` (at
  start-up) enqueues every row still open, each after the delay its row says;
- a process that dies between the end's commit and the rows' commit (one batch and one
  transaction, milliseconds) leaves an ended execution without rows: `recover` finds
  the executions created within `RECOVERY_HORIZON` that ended, in workspaces with
  subscriptions, that lack their rows, and fans them out then. An execution older than
  that, or a wait (`execution.waiting` is not looked for by recovery), in that window
  is not delivered.
The delivery row is not written in the end's own batch: the end is written by the
group-commit writer (`Engine.run(on_end=...)`), whose batches know executions, events,
node rows and leases only; adding a table to every batch's hot path for a feature most
executions do not use was judged worse than this window, which recovery closes.

Notifications are jobs only (no row): a process that dies between the end and the
enqueue, or an embedded queue's process that dies before the job ran, loses the alert.
Executions ended outside a worker run (cancelled while queued or waiting, through the
API; failed by the dead letter of their job) are fanned out by recovery only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.engine import ExecutionState
from linkflow.observability import tracing
from linkflow.observability.logging import get_logger
from linkflow.queue import Job, JobType, Queue
from linkflow.services._ttl_cache import TTLCache
from linkflow.services.executions import ExecutionRecord
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import (
    Database,
    DeliveryStatus,
    Execution,
    ExecutionStatus,
    WebhookDelivery,
    WebhookSubscription,
    Workflow,
    Workspace,
    new_id,
)

__all__ = [
    "CACHE_TTL_S",
    "DELIVERY_ATTEMPTS",
    "EVENTS",
    "OPEN_STATUSES",
    "RECOVERY_HORIZON",
    "Ended",
    "OutgoingEvents",
    "delivery_job",
    "failure_alerts_on",
    "summary",
]

log = get_logger(__name__)

EVENT_OF_STATUS: Final = {
    "completed": "execution.completed",
    "failed": "execution.failed",
    "cancelled": "execution.cancelled",
    "timeout": "execution.timed_out",
    "waiting": "execution.waiting",
}
"""The event a subscription names for each status an execution reaches (the names of
the history's events, CONTRACT.md section 4)."""
EVENTS: Final = tuple(EVENT_OF_STATUS.values())
_TERMINAL: Final = frozenset({"completed", "failed", "cancelled", "timeout"})

DELIVERY_ATTEMPTS: Final = 5
"""Attempts of one delivery (and of one notification) before its dead letter; with the
default 1 s backoff the last one comes 15 s after the first."""
DELIVERY_JOB_TIMEOUT_S: Final = 60.0
"""A job runs one POST (10 s by default) or a few e-mails: a minute bounds either."""
CACHE_TTL_S: Final = 1.0
"""How stale a process's view of a workspace's subscriptions may be (twice this long for
a change made through another process)."""
RECOVERY_HORIZON: Final = timedelta(hours=1)
"""How far back `recover` looks for ended executions that lack their deliveries: long
past any restart, short enough that the scan (an index range per subscribed workspace)
stays small."""
OPEN_STATUSES: Final = (DeliveryStatus.PENDING, DeliveryStatus.DELIVERING,
                        DeliveryStatus.RETRYING)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Subscription:
    id: uuid.UUID
    events: frozenset[str]
    workflow_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Ended:
    """An execution event worth sending: the execution's summary, and which event."""

    execution_id: uuid.UUID
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    status: str
    seq: int
    summary: dict[str, Any]

    @property
    def event(self) -> str:
        return EVENT_OF_STATUS[self.status]

    @property
    def key(self) -> str:
        """Unique per execution and event: an execution ends once, but may wait often."""
        return self.event if self.status in _TERMINAL else f"{self.event}:{self.seq}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def summary(
    *, execution_id: uuid.UUID, workflow_id: uuid.UUID, workflow_name: str, version: int,
    status: str, trigger_type: str, error: Any, started_at: datetime | None,
    completed_at: datetime | None,
) -> dict[str, Any]:  # fmt: skip
    """The execution as a delivery and an alert show it: no input, no output."""
    return {
        "id": str(execution_id), "workflow_id": str(workflow_id), "workflow_name": workflow_name,
        "workflow_version": version, "status": status, "trigger_type": trigger_type,
        "error": error, "started_at": _iso(started_at), "completed_at": _iso(completed_at),
    }  # fmt: skip


def delivery_job(row: WebhookDelivery, *, delay_s: float = 0.0) -> tuple[Job, float]:
    """The `webhook_delivery` job of a delivery row (and the delay to enqueue it with)."""
    data = row.payload.get("data")
    # Made while the execution's job runs (tracing on): the delivery continues its trace.
    payload = tracing.carry({
        "delivery_id": str(row.id), "subscription_id": str(row.subscription_id),
        "event": row.event, "execution": data.get("execution") if isinstance(data, dict) else None,
    })  # fmt: skip
    job = Job(type=JobType.WEBHOOK_DELIVERY, payload=payload, max_attempts=DELIVERY_ATTEMPTS,
              timeout=DELIVERY_JOB_TIMEOUT_S)  # fmt: skip
    return job, delay_s


def failure_alerts_on(settings: Any) -> bool:
    """A workspace's `settings.notifications.execution_failed` (off unless true)."""
    notifications = settings.get("notifications") if isinstance(settings, dict) else None
    return isinstance(notifications, dict) and notifications.get("execution_failed") is True


class OutgoingEvents:
    """Fans execution events out to delivery rows and jobs; recovers what a crash left."""

    def __init__(self, database: Database, writer: GroupCommitWriter, queue: Queue) -> None:
        self.database = database
        self.writer = writer
        self.queue = queue
        self._subscriptions: TTLCache[uuid.UUID, tuple[_Subscription, ...]] = TTLCache(CACHE_TTL_S)

    def forget(self, workspace_id: uuid.UUID) -> None:
        """The workspace's subscriptions changed (through this process)."""
        self._subscriptions.forget(workspace_id)

    async def _active(self, workspace_id: uuid.UUID) -> tuple[_Subscription, ...]:
        async def load() -> tuple[_Subscription, ...]:
            async with self.database.session() as session:
                rows = await session.execute(
                    select(WebhookSubscription.id, WebhookSubscription.events,
                           WebhookSubscription.workflow_id, WebhookSubscription.created_at)
                    .where(WebhookSubscription.workspace_id == workspace_id,
                           WebhookSubscription.active.is_(True))
                )  # fmt: skip
                return tuple(_Subscription(row_id, frozenset(events), workflow, created)
                             for row_id, events, workflow, created in rows.all())  # fmt: skip

        return await self._subscriptions.get(workspace_id, load)

    async def after_run(self, row: ExecutionRecord, state: ExecutionState) -> None:
        """A worker's run of `row` ended or waits (its writes queued): send what it asks."""
        status = state.status.value
        if status not in EVENT_OF_STATUS:
            return
        wanted = [s for s in await self._active(row.workspace_id) if _matches(s, row, status)]
        alert = status == "failed"
        if not wanted and not alert:
            return
        ended = Ended(
            execution_id=row.id, workspace_id=row.workspace_id, workflow_id=row.workflow_id,
            status=status, seq=state.seq,
            summary=summary(
                execution_id=row.id, workflow_id=row.workflow_id,
                workflow_name=state.workflow.document.name, version=row.workflow_version,
                status=status, trigger_type=row.trigger_type.value, error=state.error,
                started_at=state.started_at, completed_at=state.completed_at,
            ),
        )  # fmt: skip
        try:
            # The barrier: queued after the run's writes, durable once they are.
            await self.writer.update_execution(row.id)
            await self._fan_out(ended, wanted, alert=alert)
        except Exception:  # the run is over; recovery sends what this missed
            log.warning("sending an execution's events failed", execution_id=str(row.id),
                        exc_info=True)  # fmt: skip

    async def _fan_out(self, ended: Ended, wanted: Sequence[_Subscription], *, alert: bool) -> None:
        async with self.database.transaction() as session:
            stored = await session.get(Execution, ended.execution_id)
            if stored is None or (ended.status in _TERMINAL and stored.status != ended.status):
                return  # the end was not stored (the lease was lost): its owner sends it
            settings = None
            if alert:
                workspace = await session.get(Workspace, ended.workspace_id)
                settings = None if workspace is None else workspace.settings
            rows = await self._insert(session, ended, wanted)
        for delivery in rows:
            job, delay_s = delivery_job(delivery)
            await self.queue.enqueue(job, delay_s=delay_s)
        if alert and failure_alerts_on(settings):
            await self.queue.enqueue(Job(
                type=JobType.NOTIFICATION, max_attempts=DELIVERY_ATTEMPTS,
                timeout=DELIVERY_JOB_TIMEOUT_S,
                payload=tracing.carry({"kind": "execution_failed",
                                       "workspace_id": str(ended.workspace_id),
                                       "execution": ended.summary}),
            ))  # fmt: skip

    async def _insert(
        self, session: AsyncSession, ended: Ended, wanted: Iterable[_Subscription]
    ) -> list[WebhookDelivery]:
        """Insert a pending delivery per subscription (none twice); the rows inserted."""
        insert = postgresql_insert if self.database.dialect == "postgresql" else sqlite_insert
        now = datetime.now(UTC)
        inserted: list[WebhookDelivery] = []
        for subscription in wanted:
            delivery_id = new_id()
            payload = {
                "id": str(delivery_id), "event": ended.event, "created_at": now.isoformat(),
                "workspace_id": str(ended.workspace_id),
                "subscription_id": str(subscription.id),
                "data": {"execution": ended.summary},
            }  # fmt: skip
            values = {
                "id": delivery_id, "workspace_id": ended.workspace_id,
                "subscription_id": subscription.id, "execution_id": ended.execution_id,
                "event": ended.event, "event_key": ended.key, "status": DeliveryStatus.PENDING,
                "attempts": 0, "payload": payload, "next_attempt_at": now,
                "created_at": now, "updated_at": now,
            }  # fmt: skip
            result = await session.execute(insert(WebhookDelivery).values(**values)
                                           .on_conflict_do_nothing())  # fmt: skip
            if getattr(result, "rowcount", 0):
                inserted.append(WebhookDelivery(**values))
        return inserted

    async def recover(self, *, horizon: timedelta = RECOVERY_HORIZON) -> int:
        """Enqueue every open delivery again (each after the delay its row says), and fan
        out the ended executions (created within `horizon`) that lack their deliveries;
        returns how many jobs were enqueued. A job that arrives for a delivery another
        job already handles finds nothing to do (see `worker.webhook_deliveries`)."""
        now = datetime.now(UTC)
        async with self.database.session() as session:
            open_rows = list((await session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.status.in_(OPEN_STATUSES))
            )).all())  # fmt: skip
        for delivery in open_rows:
            due = delivery.next_attempt_at or now
            job, delay_s = delivery_job(delivery, delay_s=max(0.0, (due - now).total_seconds()))
            await self.queue.enqueue(job, delay_s=delay_s)
        return len(open_rows) + await self._missing(now - horizon)

    async def _missing(self, since: datetime) -> int:
        async with self.database.session() as session:
            subscriptions = (await session.execute(
                select(WebhookSubscription.workspace_id, WebhookSubscription.id,
                       WebhookSubscription.events, WebhookSubscription.workflow_id,
                       WebhookSubscription.created_at)
                .where(WebhookSubscription.active.is_(True))
            )).all()  # fmt: skip
        by_workspace: dict[uuid.UUID, list[_Subscription]] = {}
        for workspace_id, row_id, events, workflow_id, created_at in subscriptions:
            by_workspace.setdefault(workspace_id, []).append(
                _Subscription(row_id, frozenset(events), workflow_id, created_at)
            )
        enqueued = 0
        for workspace_id, wanted in by_workspace.items():
            enqueued += await self._missing_in(workspace_id, wanted, since)
        return enqueued

    async def _missing_in(
        self, workspace_id: uuid.UUID, wanted: list[_Subscription], since: datetime
    ) -> int:
        terminal = [ExecutionStatus(status) for status in _TERMINAL]
        async with self.database.session() as session:
            found = (await session.execute(
                select(Execution, Workflow.name)
                .join(Workflow, Workflow.id == Execution.workflow_id)
                .where(Execution.workspace_id == workspace_id, Execution.created_at >= since,
                       Execution.status.in_(terminal))
            )).all()  # fmt: skip
            sent = set((await session.execute(
                select(WebhookDelivery.subscription_id, WebhookDelivery.execution_id,
                       WebhookDelivery.event_key)
                .join(Execution, and_(Execution.id == WebhookDelivery.execution_id,
                                      Execution.workspace_id == workspace_id,
                                      Execution.created_at >= since))
            )).all())  # fmt: skip
        enqueued = 0
        for execution, name in found:
            record = ExecutionRecord.of(execution)
            status = execution.status.value
            event = EVENT_OF_STATUS[status]
            lacking = [
                s for s in wanted
                if _matches(s, record, status) and (s.id, execution.id, event) not in sent
                and execution.completed_at is not None and s.created_at <= execution.completed_at
            ]  # fmt: skip
            if not lacking:
                continue
            ended = Ended(
                execution_id=execution.id, workspace_id=workspace_id,
                workflow_id=execution.workflow_id, status=status, seq=0,
                summary=summary(
                    execution_id=execution.id, workflow_id=execution.workflow_id,
                    workflow_name=name, version=execution.workflow_version, status=status,
                    trigger_type=execution.trigger_type.value, error=execution.error,
                    started_at=execution.started_at, completed_at=execution.completed_at,
                ),
            )  # fmt: skip
            log.info("an ended execution lacked its webhook deliveries: sending them now",
                     execution_id=str(execution.id), subscriptions=len(lacking))  # fmt: skip
            await self._fan_out(ended, lacking, alert=False)
            enqueued += len(lacking)
        return enqueued


def _matches(subscription: _Subscription, row: ExecutionRecord, status: str) -> bool:
    return EVENT_OF_STATUS[status] in subscription.events and (
        subscription.workflow_id is None or subscription.workflow_id == row.workflow_id
    )
