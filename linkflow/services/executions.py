"""Starting executions, and finding the ones the queue must (re)deliver.

The database is the truth: an execution exists once its row and its
`execution.queued` event are committed (together, through the group-commit
writer); only then is its job put on the queue. In a process that runs a worker,
the same batch takes the execution's lease for that worker, so the job it hands
itself needs no second round trip. A job lost in between (crash, flushed Redis)
is found again by `recover()`, which re-enqueues the unfinished executions
nobody holds: those whose lease expired (or belongs to a dead process of this
machine), and queued ones that never had a lease and waited longer than a lease
lasts while no job waits in the queue (their creator handed the job to a queue that
lost it: Redis restarted empty; with a backlog, they are recovered once it drained).

Plan limits: a start counts against its workspace's `executions_per_month` and
`max_concurrent_executions` in the transaction that creates it (the writer's batch,
`store.batch`; a schedule's or a child's own transaction, `services.usage`), from the
workspace's `Allowance` in memory (`services.plans`). A start over a limit stores
nothing and is refused with 429 `plan_limit` (`Retry-After`: the period's end, or a
moment for concurrency), naming the limit, its value and the usage.

The queue unreachable (Redis down): a start is refused before anything is written
(`Unavailable`, code `queue_unavailable`, the API's 503 with `Retry-After`) when the
queue already knows it is away (`Queue.reachable`, learned from its last commands: no
round trip when healthy). When it learns it only from this start's enqueue, the
execution's row and first event are durable already: the start is the success it is
(the answer says queued, and recovery queues its job once Redis is back, like a job
Redis lost), not a 503 that a client would retry into a second run.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.engine import EventType
from linkflow.engine.storable import UnstorableValue, check_input
from linkflow.observability import tracing
from linkflow.observability.logging import get_logger
from linkflow.queue import Job, JobType, Priority, Queue
from linkflow.services.errors import Invalid, LinkFlowError, Unavailable, as_unavailable
from linkflow.services.plan_limits import Limit, over_limit, refusal
from linkflow.services.plans import Allowance
from linkflow.services.usage import claim_start
from linkflow.services.writer import GroupCommitWriter, OverLimit
from linkflow.store import (
    Database,
    Execution,
    ExecutionEvent,
    ExecutionLease,
    ExecutionStatus,
    NewEvent,
    TriggerType,
    new_id,
)
from linkflow.store import Priority as StoredPriority

__all__ = [
    "ExecutionRecord",
    "ExecutionService",
    "Fresh",
    "NewExecution",
    "carry_fresh",
    "enqueue_stored",
    "execution_job",
    "fresh_from_job",
    "require_queue",
    "storable_input",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """What a worker needs of an `executions` row to run it."""

    id: uuid.UUID
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    status: ExecutionStatus
    trigger_type: TriggerType
    input: Any
    attempt: int = 1
    wait_until: datetime | None = None

    @classmethod
    def of(cls, row: Execution) -> ExecutionRecord:
        return cls(
            id=row.id, workspace_id=row.workspace_id, workflow_id=row.workflow_id,
            workflow_version=row.workflow_version, status=row.status,
            trigger_type=row.trigger_type, input=row.input, attempt=row.attempt,
            wait_until=row.wait_until,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fresh:
    """A just-created execution: its record, its only event, and where it starts."""

    row: ExecutionRecord
    queued: NewEvent
    start_node: str | None
    lease: str | None = None
    """The lease this process's worker took in the batch that created the execution."""


@dataclass(frozen=True, slots=True)
class NewExecution:
    workspace_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    input: Any = None
    trigger_type: TriggerType = TriggerType.MANUAL
    priority: Priority = Priority.NORMAL
    parent_execution_id: uuid.UUID | None = None
    created_by_id: uuid.UUID | None = None
    start_node: str | None = None
    id: uuid.UUID | None = None
    """Chosen by the caller when it must know the id before the job exists (to subscribe)."""


LeaseMinter = Callable[[uuid.UUID], tuple[str, datetime]]
"""Mints a lease (id, expiry) on a new execution for this process's worker."""
Allowances = Callable[[uuid.UUID], Awaitable[Allowance]]
"""A workspace's limits on starting executions (`PlanLimits.allowance`)."""


class ExecutionService:
    def __init__(
        self, database: Database, writer: GroupCommitWriter, queue: Queue,
        *, leases: LeaseMinter | None = None, lease_ttl_s: float = 30.0,
        keep_fresh: bool = True, unlease: Callable[[str], object] | None = None,
        allowances: Allowances | None = None,
    ) -> None:  # fmt: skip
        self.database = database
        self.allowances = allowances
        """Where the limits of a start come from; None: nothing is counted or limited."""
        self.writer = writer
        self.queue = queue
        self.leases = leases
        self.lease_ttl = timedelta(seconds=lease_ttl_s)
        self.fresh: dict[uuid.UUID, Fresh] = {}
        """Executions created by this process and not yet taken by its worker: the worker
        starts them from here instead of reading back what was just written."""
        self.keep_fresh = keep_fresh
        """False in a process without a worker (`linkflow api`): nobody would take them."""
        self.unlease = unlease
        """Gives up a lease `leases` minted (`LeaseKeeper.release`), for a job not queued."""

    async def create(
        self,
        new: NewExecution,
        *,
        carried: Sequence[tuple[str, str | None, dict[str, Any], datetime]] = (),
    ) -> uuid.UUID:
        """Store a queued execution (row + first event, durably), then enqueue its job.

        `carried` events (type, node id, data, time) follow `execution.queued` in
        the new history: a retry from the failed node carries the completed
        steps of the execution it retries, so they are replayed, not run. Refused before
        anything is written while the queue is known to be away; an enqueue that fails
        after the write is logged and left to recovery (see the module's doc).
        """
        require_queue(self.queue)
        execution_id, values, queued = _first_write(new)
        with tracing.span("execution.create", execution_id=execution_id,
                          workflow_id=new.workflow_id, trigger=new.trigger_type.value):  # fmt: skip
            copies = [
                NewEvent(execution_id, seq, type_, node_id, data, at)
                for seq, (type_, node_id, data, at) in enumerate(carried, start=2)
            ]
            allowance = await self._allowance(new.workspace_id)
            lease = self.leases(execution_id) if self.leases is not None and not copies else None
            try:
                await self.writer.create_execution(
                    values, queued, *copies, lease=lease,
                    quota=None if allowance is None else allowance.quota,
                )  # fmt: skip
            except OverLimit as over:
                if lease is not None and self.unlease is not None:
                    self.unlease(lease[0])
                assert allowance is not None
                raise _refused(over.limit, over.value, over.usage, allowance) from None
            if not copies and self.keep_fresh:
                record = ExecutionRecord(
                    id=execution_id, workspace_id=new.workspace_id, workflow_id=new.workflow_id,
                    workflow_version=new.workflow_version, status=ExecutionStatus.QUEUED,
                    trigger_type=new.trigger_type, input=values["input"],
                )  # fmt: skip
                self.fresh[execution_id] = Fresh(record, queued, new.start_node,
                                                 lease[0] if lease else None)  # fmt: skip
            with tracing.span("enqueue workflow_execution", kind="producer",
                              queue=new.priority.value):  # fmt: skip
                # A worker in another process starts it from the job, not from a read back.
                fresh = None if self.keep_fresh or copies else carry_fresh(values, queued)
                job = execution_job(execution_id, new.priority, carried=fresh)
                if not await enqueue_stored(self.queue, job):
                    self._leave_to_recovery(execution_id, lease[0] if lease else None)
        return execution_id

    def _leave_to_recovery(self, execution_id: uuid.UUID, lease: str | None) -> None:
        """A job that could not be queued: this process's worker will not be handed it, so
        the lease minted for it is given up (expired, not renewed), for recovery to see."""
        self.fresh.pop(execution_id, None)
        if lease is not None and self.unlease is not None:
            self.unlease(lease)

    async def _allowance(self, workspace_id: uuid.UUID) -> Allowance | None:
        return None if self.allowances is None else await self.allowances(workspace_id)

    async def insert(self, session: AsyncSession, new: NewExecution) -> Job:
        """Add a queued execution (row + first event) to the caller's transaction, which
        other writes of the same decision share (a schedule's tick: its compare-and-set
        and the execution it starts commit together or not at all). Returns the job to
        enqueue once that transaction committed; a job lost before is `recover()`'s.
        Over a plan limit, nothing is added and the `plan_limit` error is raised (the
        transaction may go on: only the counter's row lock was taken)."""
        execution_id, values, queued = _first_write(new)
        allowance = await self._allowance(new.workspace_id)
        if allowance is not None:
            over = await claim_start(session, new.workspace_id, allowance.quota,
                                     dialect=self.database.dialect)  # fmt: skip
            if over is not None:
                raise _refused(*over, allowance)
        session.add(Execution(**values))
        session.add(ExecutionEvent(
            execution_id=execution_id, seq=queued.seq, type=queued.type, node_id=None,
            data=queued.data, created_at=queued.created_at,
        ))  # fmt: skip
        return execution_job(execution_id, new.priority)

    async def recover(self, dead_owner: Callable[[str], bool] | None = None) -> int:
        """Re-enqueue the unfinished executions nobody holds (see the module's doc); a
        lease of a dead process (`dead_owner`) is expired first. Returns how many."""
        now = datetime.now(UTC)
        statement = (
            select(Execution.id, Execution.priority, Execution.status, Execution.queued_at,
                   ExecutionLease.owner, ExecutionLease.expires_at)
            .outerjoin(ExecutionLease, ExecutionLease.execution_id == Execution.id)
            .where(Execution.status.in_([ExecutionStatus.QUEUED, ExecutionStatus.RUNNING]))
            .order_by(Execution.queued_at)
        )  # fmt: skip
        async with self.database.session() as session:
            rows = (await session.execute(statement)).all()
        due: list[tuple[uuid.UUID, Any]] = []
        ready: int | None = None
        for execution_id, priority, status, queued_at, owner, expires_at in rows:
            if owner is None:
                if status is ExecutionStatus.RUNNING:
                    due.append((execution_id, priority))
                elif queued_at < now - self.lease_ttl:
                    if ready is None:
                        ready = await self._ready_jobs()
                    if ready == 0:
                        due.append((execution_id, priority))
            elif expires_at <= now:
                due.append((execution_id, priority))
            elif dead_owner is not None and dead_owner(owner):
                await self._expire(execution_id, owner, now)
                due.append((execution_id, priority))
        for execution_id, priority in due:
            await self.queue.enqueue(execution_job(execution_id, Priority(priority.value)))
        return len(due)

    async def _ready_jobs(self) -> int:
        """Jobs waiting in the queue for a worker. A queued execution nobody took is only
        known to have lost its job when none wait: with a backlog, its job is likely in it,
        and enqueuing one more per recovery round would multiply the backlog."""
        depth = await self.queue.depth()
        return sum(depth.get(priority.value, 0) for priority in Priority)

    async def _expire(self, execution_id: uuid.UUID, owner: str, now: datetime) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                update(ExecutionLease)
                .where(ExecutionLease.execution_id == execution_id, ExecutionLease.owner == owner)
                .values(expires_at=now)
            )


def _refused(limit: str, value: int, usage: int, allowance: Allowance) -> LinkFlowError:
    """The `plan_limit` error of a start a counter refused."""
    verdict = over_limit(Limit(limit), value, usage, now=datetime.now(UTC),
                         period_end=allowance.period_end)  # fmt: skip
    log.info("execution refused by a plan limit", limit=limit, value=value, usage=usage)
    return refusal(verdict)


def _first_write(new: NewExecution) -> tuple[uuid.UUID, dict[str, Any], NewEvent]:
    """A new execution's id, its row's values and its `execution.queued` event; refuses
    an input it could not store (`storable_input`)."""
    now = datetime.now(UTC)
    execution_id = new.id or new_id()
    payload = new.input if new.input is not None else {}
    storable_input(payload, "the execution's input")
    values = {
        "id": execution_id, "workspace_id": new.workspace_id, "workflow_id": new.workflow_id,
        "workflow_version": new.workflow_version, "status": ExecutionStatus.QUEUED,
        "trigger_type": new.trigger_type, "priority": StoredPriority(new.priority.value),
        "input": payload, "parent_execution_id": new.parent_execution_id,
        "created_by_id": new.created_by_id, "queued_at": now, "attempt": 1,
    }  # fmt: skip
    queued = NewEvent(
        execution_id, 1, EventType.EXECUTION_QUEUED.value, None,
        {"trigger_type": new.trigger_type.value, "priority": new.priority.value,
         "start_node": new.start_node},
        now,
    )  # fmt: skip
    return execution_id, values, queued


def require_queue(queue: Queue) -> None:
    """Refuse work that needs the queue while it is known to be away, before anything is
    written: `Unavailable` with code `queue_unavailable`, the caller's 503."""
    if not queue.reachable:
        raise Unavailable("the job queue (Redis) cannot be reached; nothing was started, "
                          "try again shortly", code="queue_unavailable")  # fmt: skip


async def enqueue_stored(queue: Queue, job: Job) -> bool:
    """Enqueue the job of an execution whose state is durable already; if the queue
    cannot be reached, leave it to recovery (`ExecutionService.recover` finds the
    execution queued) rather than fail what is done. False when it was left."""
    try:
        await queue.enqueue(job)
    except Exception as error:
        if as_unavailable(error) is None:
            raise
        log.warning("the job queue cannot be reached: the execution is stored and will be "
                    "queued by recovery once it is back", job_id=job.id,
                    payload=job.payload, error=str(error))  # fmt: skip
        return False
    return True


def storable_input(value: Any, what: str) -> None:
    """Refuse a value an execution could not store (`engine.storable`), before anything
    is written: `Invalid` with code `unstorable_input`, the caller's 422."""
    try:
        check_input(value)
    except UnstorableValue as error:
        raise Invalid(f"{what} cannot be stored: {error.reason}", code="unstorable_input") from None


def execution_job(
    execution_id: uuid.UUID, priority: Priority = Priority.NORMAL,
    *, carried: dict[str, Any] | None = None,
) -> Job:  # fmt: skip
    """The queue job that runs (or resumes) an execution; made inside a span (tracing on),
    it carries that span's `traceparent`, so the worker's run continues the trace.
    `carried`: what its creator just wrote (`carry_fresh`)."""
    payload: dict[str, Any] = {"execution_id": str(execution_id)}
    if carried is not None:
        payload["fresh"] = carried
    return Job(type=JobType.WORKFLOW_EXECUTION, payload=tracing.carry(payload), queue=priority)


MAX_CARRIED_INPUT_BYTES = 16 * 1024
"""Inputs up to this size ride in the job of a new execution (`carry_fresh`); a larger
one is read back from the database by the worker, as Redis should not hold big values."""


def carry_fresh(values: dict[str, Any], queued: NewEvent) -> dict[str, Any] | None:
    """What a worker in another process needs to start a just-created execution without
    reading back its row and history: the row's fields and the `execution.queued` event
    (its only event). None when the input is too large to carry."""
    if len(orjson.dumps(values["input"])) > MAX_CARRIED_INPUT_BYTES:
        return None
    assert queued.created_at is not None
    return {
        "workspace_id": str(values["workspace_id"]), "workflow_id": str(values["workflow_id"]),
        "workflow_version": values["workflow_version"],
        "trigger_type": values["trigger_type"].value, "input": values["input"],
        "queued": queued.data, "queued_at": queued.created_at.isoformat(),
    }  # fmt: skip


def fresh_from_job(execution_id: uuid.UUID, payload: dict[str, Any]) -> Fresh | None:
    """The `Fresh` a job carries (`carry_fresh`), or None (not carried, or malformed: the
    worker then reads the execution from the database, as for any other job)."""
    carried = payload.get("fresh")
    if not isinstance(carried, dict):
        return None
    try:
        queued_at = datetime.fromisoformat(carried["queued_at"])
        row = ExecutionRecord(
            id=execution_id, workspace_id=uuid.UUID(carried["workspace_id"]),
            workflow_id=uuid.UUID(carried["workflow_id"]),
            workflow_version=int(carried["workflow_version"]), status=ExecutionStatus.QUEUED,
            trigger_type=TriggerType(carried["trigger_type"]), input=carried["input"],
        )  # fmt: skip
        data = dict(carried["queued"])
    except (KeyError, TypeError, ValueError):
        return None
    queued = NewEvent(execution_id, 1, EventType.EXECUTION_QUEUED.value, None, data, queued_at)
    start = data.get("start_node")
    return Fresh(row, queued, start if isinstance(start, str) else None)
