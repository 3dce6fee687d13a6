"""The worker: takes execution jobs from the queue and runs them on the engine.

For each job: hold the execution's lease (`worker.leases`), load the
execution and its workflow version, run (or resume) it against its history in
the database, then project the node runs onto `node_executions` (the row's
status, times and output follow the events in the writer, in the same
transaction). Every write is fenced by the lease: if another worker took the
execution over, the writes are refused and this run is stopped at once. A
crash anywhere leaves the history as the truth: the lease expires, recovery
re-enqueues the execution, and the engine resumes from the history without
re-running completed nodes.

A job that fails is delivered again after an exponential backoff; after
`max_attempts` it goes to the dead letters and its execution fails with the
reason (retryable by the user). A job runs at most `Job.timeout` seconds.

Live events go to the bus as they are appended (`execution.<id>` and
`workspace.<id>` channels, in the contract's envelope). With tracing on, a job's run is
a span continuing the trace its job carries, and each node run a span in it, made from
the same events (`observability.tracing`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import select

from linkflow.bus import Bus
from linkflow.bus.envelope import event_data, message, stamp
from linkflow.engine import (
    CompiledWorkflow,
    Engine,
    Event,
    EventType,
    ExecutionInfo,
    ExecutionState,
    HistoryConflict,
    InvalidWorkflow,
    ParentLink,
    RunResult,
)
from linkflow.engine import ExecutionStatus as EngineStatus
from linkflow.observability import tracing
from linkflow.observability.logging import bind_context, get_logger
from linkflow.queue import Delivery, Job, Queue, QueueClosed, backoff_s
from linkflow.queue.job import JobType
from linkflow.services.children import ChildExecutions
from linkflow.services.credential_resolver import ExecutionCredentials
from linkflow.services.executions import ExecutionRecord, Fresh, fresh_from_job
from linkflow.services.history import event_from_row
from linkflow.services.outgoing_events import OutgoingEvents
from linkflow.services.variables import Variables
from linkflow.services.writer import GroupCommitWriter, LeaseWrite, WriterHistory
from linkflow.store import (
    Database,
    EventRepository,
    Execution,
    ExecutionStatus,
    NodeExecutionStatus,
    Workflow,
    WorkflowVersion,
    move_execution,
)
from linkflow.worker.handlers import JobHandlers
from linkflow.worker.leases import LeaseKeeper

__all__ = ["CancelRegistry", "RunWatch", "Worker"]

log = get_logger(__name__)

CANCEL_POLL_S = 1.0
"""How often a worker reads the cancel requests of the executions it runs (stored by
the API of any process); a cancel takes effect at the next node after that."""

COMPILED_CACHE_SIZE = 512
"""Compiled workflow versions kept per process; versions are immutable, so never stale."""

_FINISHED = {
    ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
    ExecutionStatus.TIMEOUT,
}  # fmt: skip
_FINISHED_VALUES = frozenset(status.value for status in _FINISHED)

Observer = Callable[[Event], None]
RunWatch = Callable[[str, Sequence[Event] | None, Callable[[str], str], Observer], Observer]
"""`Worker.watch`: (trigger, the history the run starts from, node type of a node id,
the run's observer) -> an observer that also hears every event (`ExecutionMetrics`)."""


class CancelRegistry:
    """Cancel requests for executions running in this process (checked between nodes)."""

    def __init__(self) -> None:
        self._reasons: dict[uuid.UUID, str] = {}

    def request(self, execution_id: uuid.UUID, reason: str = "cancelled by user") -> None:
        self._reasons[execution_id] = reason

    def forget(self, execution_id: uuid.UUID) -> None:
        self._reasons.pop(execution_id, None)

    def probe(self, execution_id: uuid.UUID) -> _Probe:
        return _Probe(self, execution_id)

    def reason(self, execution_id: uuid.UUID) -> str | None:
        return self._reasons.get(execution_id)


@dataclass(frozen=True, slots=True)
class _Probe:
    registry: CancelRegistry
    execution_id: uuid.UUID

    async def requested(self) -> str | None:
        return self.registry.reason(self.execution_id)


class Worker:
    """Consumes `workflow_execution` jobs with at most `concurrency` at a time."""

    def __init__(
        self,
        *,
        database: Database,
        writer: GroupCommitWriter,
        queue: Queue,
        engine: Engine,
        bus: Bus,
        cancels: CancelRegistry,
        concurrency: int = 16,
        variables: Variables | None = None,
        credentials: ExecutionCredentials | None = None,
        fresh: dict[uuid.UUID, Fresh] | None = None,
        resume_url: Callable[[uuid.UUID], str] | None = None,
        leases: LeaseKeeper | None = None,
        children: ChildExecutions | None = None,
        jobs: JobHandlers | None = None,
        outgoing: OutgoingEvents | None = None,
        watch: RunWatch | None = None,
    ) -> None:
        self.watch = watch
        """Wraps each run's observer (metrics): trigger, the known history, node types."""
        self.jobs = jobs or JobHandlers(queue, {})
        """Jobs of the other types, by their handlers (none: dead-lettered)."""
        self.outgoing = outgoing
        self.leases = leases or LeaseKeeper(writer)
        self.children = children
        self.fresh = fresh
        self.resume_url = resume_url
        self.variables = variables
        self.credentials = credentials
        self.database = database
        self.writer = writer
        self.queue = queue
        self.engine = engine
        self.bus = bus
        self.cancels = cancels
        self.concurrency = concurrency
        self._compiled: OrderedDict[tuple[uuid.UUID, int], CompiledWorkflow] = OrderedDict()
        self._running: set[asyncio.Task[None]] = set()
        self.active: dict[uuid.UUID, asyncio.Task[None]] = {}
        """The executions this worker runs now, by id: never two runs of one here."""
        self.interrupted: list[Delivery] = []
        """Deliveries whose run a shutdown stopped, for `hand_back`."""

    async def run(self) -> None:
        """Consume until the queue closes (then finish what runs) or the task is cancelled
        (then stop at once: what ran is in the history, and the jobs come back)."""
        slots = asyncio.Semaphore(self.concurrency)
        watcher = asyncio.create_task(self._watch_cancels(), name="cancel-requests")
        try:
            while True:
                await slots.acquire()
                try:
                    delivery = await self.queue.dequeue()
                except QueueClosed:
                    slots.release()
                    break
                task = asyncio.create_task(self._handle(delivery, slots))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        except asyncio.CancelledError:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*list(self._running), return_exceptions=True)
            raise
        finally:
            watcher.cancel()
        await self.drain()

    async def _watch_cancels(self) -> None:
        """Hand the cancel requests stored for running executions to their runs here."""
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            if not self.active:
                continue
            try:
                async with self.database.reader() as session:
                    requested = (await session.execute(
                        select(Execution.id, Execution.cancel_reason).where(
                            Execution.id.in_(list(self.active)),
                            Execution.cancel_reason.is_not(None))
                    )).all()  # fmt: skip
            except Exception:  # the database is away: ask again next time
                log.warning("reading cancel requests failed", exc_info=True)
                continue
            for execution_id, reason in requested:
                self.cancels.request(execution_id, reason or "cancelled by user")

    async def hand_back(self) -> int:
        """Queue again, for another worker, the executions a shutdown stopped: a new job
        each, then the old delivery acked (at least once: a crash in between leaves both,
        and the lease lets one run). Call once their leases' releases are durable (the
        writer flushed), so the next worker can take them at once. Returns how many."""
        handed, self.interrupted = self.interrupted, []
        for delivery in handed:
            # Not as a new execution any more (it ran): the next worker reads its history.
            payload = {k: v for k, v in delivery.job.payload.items() if k != "fresh"}
            await self.queue.enqueue(Job(
                type=delivery.job.type, payload=payload, queue=delivery.job.queue,
                max_attempts=delivery.job.max_attempts, timeout=delivery.job.timeout,
            ))  # fmt: skip
            await self.queue.ack(delivery)
        return len(handed)

    async def drain(self) -> None:
        """Let the executions in flight reach their next durable point."""
        if self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def _handle(self, delivery: Delivery, slots: asyncio.Semaphore) -> None:
        job = delivery.job
        try:
            if job.type is not JobType.WORKFLOW_EXECUTION:
                with tracing.job_span(job, delivery.attempt):
                    await self.jobs.run(delivery)
                return
            try:
                execution_id = uuid.UUID(job.payload["execution_id"])
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                await self.jobs.undecodable(delivery, error)
                return
            with (
                bind_context(execution_id=str(execution_id), job_id=job.id),
                tracing.job_span(job, delivery.attempt, execution_id=execution_id),
            ):
                if delivery.attempt > job.max_attempts:  # reclaimed once too often
                    await self._dead_letter(delivery, execution_id, "the job was abandoned "
                                            f"{delivery.attempt - 1} times")  # fmt: skip
                    return
                try:
                    # A job's first delivery may carry the new execution (`carry_fresh`).
                    carried = fresh_from_job(execution_id, job.payload) \
                        if delivery.attempt == 1 else None  # fmt: skip
                    async with asyncio.timeout(job.timeout):
                        await self.execute(execution_id, carried)
                except asyncio.CancelledError:
                    self.interrupted.append(delivery)  # a shutdown: `hand_back` requeues it
                    raise
                except HistoryConflict:
                    log.info("another worker owns this execution")
                except Exception as error:  # noqa: BLE001 - retried, then dead-lettered
                    await self._failed(delivery, execution_id, error)
                    return
                await self.queue.ack(delivery)
                log.debug("execution job done", attempt=delivery.attempt)
        finally:
            slots.release()

    async def _failed(self, delivery: Delivery, execution_id: uuid.UUID, error: Exception) -> None:
        if isinstance(error, TimeoutError):
            reason = f"the job exceeded its timeout of {delivery.job.timeout:g} s"
        else:
            reason = f"{type(error).__name__}: {error}"
        if delivery.last_attempt:
            log.error("execution job failed for the last time", reason=reason,
                      attempt=delivery.attempt, exc_info=error)  # fmt: skip
            await self._dead_letter(delivery, execution_id, reason)
            return
        log.warning("execution job failed; it will be retried", reason=reason,
                    attempt=delivery.attempt, exc_info=error)  # fmt: skip
        await self.queue.nack(delivery, delay_s=backoff_s(delivery.attempt))

    async def _dead_letter(self, delivery: Delivery, execution_id: uuid.UUID, reason: str) -> None:
        """The job goes to the dead letters; its execution fails with the reason."""
        await self.queue.dead_letter(delivery, reason)
        message = f"the execution could not be run after {delivery.attempt} attempts: {reason}"
        error: dict[str, Any] = {"message": message[:2000], "node_id": None}
        async with self.database.transaction() as session:
            await move_execution(
                session, execution_id, ExecutionStatus.FAILED,
                event_type=EventType.EXECUTION_FAILED.value, data={"error": error},
                values={"error": error, "completed_at": datetime.now(UTC)},
            )  # fmt: skip

    async def execute(
        self, execution_id: uuid.UUID, carried: Fresh | None = None
    ) -> RunResult | None:
        """Run or resume one execution under its lease; None when there is nothing to do
        (it ended, it waits, or another worker holds it). `carried`: the new execution as
        its job brought it, used while the execution is still queued (a first delivery: no
        run before it) instead of reading back its row and history."""
        if execution_id in self.active:
            return None  # already running here; the job is a duplicate
        fresh = self.fresh.pop(execution_id, None) if self.fresh is not None else None
        lease = fresh.lease if fresh is not None else None
        if lease is None:
            lease = await self.leases.take(execution_id)
            if lease is None:
                log.info("another worker holds this execution")
                return None
        if fresh is None and carried is not None:
            # Read under the lease: a cancel while the job waited is seen here.
            try:
                still = await self._still_queued(execution_id)
            except BaseException:
                self.leases.release(lease, finished=False)
                raise
            fresh = carried if still else None
        task = asyncio.current_task()
        assert task is not None
        self.active[execution_id] = task
        self.leases.watch(lease, task.cancel)
        finished = False
        released = None
        try:
            result = await self._execute(execution_id, fresh, lease)
            finished = result is not None and _ended(result.state)
        except asyncio.CancelledError:
            if lease in self.leases.held:
                raise  # a shutdown: the job comes back
            raise HistoryConflict("the lease passed to another worker") from None
        finally:
            del self.active[execution_id]
            released = self.leases.release(lease, finished=finished)
        if result is not None and self.children is not None and released is not None:
            await self._wake(execution_id, result, released)
        return result

    async def _wake(
        self, execution_id: uuid.UUID, result: RunResult, released: LeaseWrite
    ) -> None:
        """A wait for children, or the end of a child its parent waits for: once that is
        durable (the lease's release is written after it), resume the parent whose
        children have all ended (see `services.children`)."""
        assert self.children is not None
        state = result.state
        if state.status is EngineStatus.WAITING and state.waiting and state.waiting.get("children"):
            parent: uuid.UUID | None = execution_id
        elif state.mode == "subworkflow" and state.parent and state.parent.get("node_id"):
            parent = uuid.UUID(state.parent["execution_id"]) if _ended(state) else None
        else:
            return
        if parent is None or not await released:
            return
        await self.children.wake(parent)

    async def _execute(
        self, execution_id: uuid.UUID, fresh: Fresh | None, lease: str
    ) -> RunResult | None:
        row: ExecutionRecord | None
        if fresh is not None:
            row, queued = fresh.row, fresh.queued.data
            known: list[Event] | None = [event_from_row(fresh.queued)]
        else:
            row, queued, known = await self._load(execution_id)
        if row is None or row.status in _FINISHED:
            return None
        if row.status is ExecutionStatus.WAITING and not _due(row):
            return None
        try:
            workflow = await self._workflow(row)
        except InvalidWorkflow as invalid:
            await self._project_invalid(row, invalid)
            return None
        if row.status is ExecutionStatus.QUEUED and fresh is None:
            # A resumed (or recovered) execution: its next events change no status.
            self.writer.update_execution_nowait(
                execution_id, lease=lease, status=ExecutionStatus.RUNNING
            )
        scope = self.credentials.bound(row.workspace_id) if self.credentials else nullcontext()
        with scope, bind_context(workspace_id=str(row.workspace_id)):
            result = await self._run(row, workflow, queued, known, lease)
            if _ended(result.state):
                _log_end(row, result.state)
        if not _ended(result.state):
            self._project(row, result.state, lease)  # an end projected itself (`_end`)
        if self.outgoing is not None:
            await self.outgoing.after_run(row, result.state)
        self.cancels.forget(execution_id)
        return result

    async def _run(
        self, row: ExecutionRecord, workflow: CompiledWorkflow, queued: dict[str, Any],
        known: list[Event] | None, lease: str,
    ) -> RunResult:  # fmt: skip
        execution_id = row.id
        history = WriterHistory(self.writer, execution_id, known=known, lease=lease)
        start_node = queued.get("start_node")
        info = await self._info(row, workflow, queued)

        def node_type(node_id: str) -> str:
            return workflow.nodes[node_id].spec.type

        publish = self._publisher(row)
        if self.watch is not None:
            publish = self.watch(row.trigger_type.value, known, node_type, publish)
        with tracing.node_spans(publish, node_type) as observer:
            return await self.engine.run(
                workflow, input=row.input, history=history, info=info,
                start_node=start_node if isinstance(start_node, str) else None,
                mode=row.trigger_type.value,
                cancellation=self.cancels.probe(execution_id),
                observer=observer,
                on_end=partial(self._end, row, lease),
            )  # fmt: skip

    def _end(self, row: ExecutionRecord, lease: str, state: ExecutionState) -> None:
        """The run ended: its rows and the lease's drop join the end's own write, so a
        reader who sees the end sees every node's row, and one write ends the run."""
        self._project(row, state, lease)
        self.leases.end(lease)

    async def _still_queued(self, execution_id: uuid.UUID) -> bool:
        """Whether a carried execution is still queued (not cancelled while its job waited):
        one small read instead of the row and the history."""
        async with self.database.reader() as session:
            status = await session.scalar(
                select(Execution.status).where(Execution.id == execution_id)
            )
        return status is ExecutionStatus.QUEUED

    async def _load(
        self, execution_id: uuid.UUID
    ) -> tuple[ExecutionRecord | None, dict[str, Any], list[Event]]:
        """The execution's row, the data of its `execution.queued` event and its whole
        history, in two statements (under the lease, nobody else appends to it)."""
        async with self.database.reader() as session:
            stored = await session.get(Execution, execution_id)
            going = stored is not None and stored.status not in _FINISHED
            rows = await EventRepository(session).read(execution_id) if going else []
        row = ExecutionRecord.of(stored) if stored is not None else None
        events = [event_from_row(event) for event in rows]
        queued = dict(events[0].data) if events and events[0].seq == 1 else {}
        return row, queued, events

    async def _workflow(self, row: ExecutionRecord) -> CompiledWorkflow:
        key = (row.workflow_id, row.workflow_version)
        compiled = self._compiled.get(key)
        if compiled is not None:
            self._compiled.move_to_end(key)
            return compiled
        async with self.database.reader() as session:
            found = (
                await session.execute(
                    select(WorkflowVersion, Workflow.name)
                    .join(Workflow, Workflow.id == WorkflowVersion.workflow_id)
                    .where(
                        WorkflowVersion.workflow_id == row.workflow_id,
                        WorkflowVersion.version == row.workflow_version,
                    )
                )
            ).one_or_none()
        if found is None:
            raise InvalidWorkflow([])
        version, name = found
        document = {"name": name, "nodes": version.nodes, "connections": version.connections,
                    "settings": version.settings}  # fmt: skip
        compiled = self.engine.compile(document)
        self._compiled[key] = compiled
        if len(self._compiled) > COMPILED_CACHE_SIZE:
            self._compiled.popitem(last=False)
        return compiled

    async def _info(
        self, row: ExecutionRecord, workflow: CompiledWorkflow, queued: dict[str, Any]
    ) -> ExecutionInfo:
        variables = await self.variables.mapping(row.workspace_id) if self.variables else {}
        # A child's queued event names its parent and how deep it runs.
        parent, depth = queued.get("parent"), queued.get("depth")
        link = None
        if isinstance(parent, dict) and isinstance(depth, int) and depth > 0:
            link = ParentLink(str(parent["execution_id"]), parent.get("workflow_id"),
                              parent.get("node_id"), depth - 1)  # fmt: skip
        return ExecutionInfo(
            execution_id=str(row.id), workflow_id=str(row.workflow_id),
            workflow_name=workflow.document.name, workflow_version=row.workflow_version,
            attempt=row.attempt, variables=variables,
            depth=link.depth + 1 if link is not None else 0, parent=link,
            # Only a workflow with a wait node can be resumed: spare the others the HMAC.
            resume_url=self.resume_url(row.id) if self.resume_url and _waits(workflow) else None,
        )  # fmt: skip

    def _publisher(self, row: ExecutionRecord) -> Any:
        execution_id = str(row.id)
        channels = (f"execution.{execution_id}", f"workspace.{row.workspace_id}")
        bus = self.bus

        def publish(event: Event) -> None:
            # The type itself (a str) for the check: its `.value` costs a descriptor call.
            targets = [channel for channel in channels if bus.wants(channel, event.type)]
            if not targets:
                return
            kind = event.type.value
            # One data object for every channel: subscribers only read messages.
            data = event_data(execution_id, event.seq, event.node_id, event.data)
            timestamp = stamp(event.timestamp)
            for channel in targets:
                bus.publish(channel, message(channel, kind, data, timestamp))

        return publish

    def _project(self, row: ExecutionRecord, state: ExecutionState, lease: str) -> None:
        """Mirror the run's node runs and its end onto the rows (a start, a wait and a
        resumption move the row's status in the writer, in the event's own batch)."""
        node_types = state.workflow.nodes
        nodes = [
            {"execution_id": row.id, "workspace_id": row.workspace_id,
             "node_id": summary["node_id"], "node_type": node_types[summary["node_id"]].spec.type,
             "run_index": summary["run"], "status": NodeExecutionStatus(summary["status"]),
             "attempts": summary["attempts"], "items_in": summary["items_in"],
             "items_out": summary["items_out"], "started_at": summary["started_at"],
             "completed_at": summary["completed_at"], "duration_ms": summary["duration_ms"],
             "error": summary["error"]}
            for summary in RunResult(state, ()).node_summaries()
        ]  # fmt: skip
        # Queued behind the run's events; nobody waits: if the process dies before they
        # are written, the row still says running, recovery runs the job again, and the
        # replay (the history is complete) projects the outcome then.
        self.writer.replace_node_executions_nowait(row.id, nodes, lease=lease)
        if state.status.value in _FINISHED_VALUES:
            self.writer.update_execution_nowait(
                row.id, lease=lease, status=ExecutionStatus(state.status.value),
                output=state.output, error=state.error, completed_at=state.completed_at,
            )  # fmt: skip

    async def _project_invalid(self, row: ExecutionRecord, invalid: InvalidWorkflow) -> None:
        message = str(invalid) or "the workflow version of this execution no longer exists"
        await self.writer.update_execution(
            row.id, status=ExecutionStatus.FAILED, completed_at=datetime.now(UTC),
            error={"message": message, "node_id": None},
        )  # fmt: skip


def _log_end(row: ExecutionRecord, state: ExecutionState) -> None:
    """The one line of an execution's end (its ids ride the log context). The error's
    message is left out: a remote's answer quoted in it is the user's to read in the
    execution, not the operator's log."""
    began, ended = state.started_at, state.completed_at
    duration = (ended - began).total_seconds() * 1000 if began and ended else None
    error = state.error or {}
    log.info("execution.finished", status=state.status.value, workflow_id=str(row.workflow_id),
             trigger=row.trigger_type.value, attempt=row.attempt,
             duration_ms=None if duration is None else round(duration, 2),
             error_node=error.get("node_id"))  # fmt: skip


def _ended(state: ExecutionState) -> bool:
    return state.status.value in _FINISHED_VALUES


def _waits(workflow: CompiledWorkflow) -> bool:
    return any(node.spec.type == "wait" for node in workflow.nodes.values())


def _due(row: ExecutionRecord) -> bool:
    return row.wait_until is not None and row.wait_until <= datetime.now(UTC)
