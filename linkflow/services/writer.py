"""Group commit: one writer batches every execution's appends into few transactions.

Executions in a process append about ten events each; committing each alone
would cap throughput at what the database can commit per second. Instead,
callers hand their writes to this writer and wait only for the batch holding
theirs: the writer takes everything queued (up to `max_batch`) and writes it in
one transaction, then wakes the callers. A caller therefore still returns only
once its write is durable, which is what lets a webhook answer after the
events it reports are stored.

A batch is fenced and folded before it is written (see `store.batch`): a write
made under a lease its worker no longer holds is refused, and so is everything
after a refused event of the same execution; the row updates of one execution
merge, in the order they were queued; status changes pass the transitions table.
A refused event's caller gets `HistoryConflict`, and `on_lease_lost` hears of
every lease a write was refused under (its worker stops that execution); a
failing transaction fails every caller in it.

Where a batch runs: with `process=True` (what `serve`, `api` and `worker` use), in
a child process of its own (`store.writer_process`), on another core; otherwise in
the writer's own thread. Either way on a connection of its own: on PostgreSQL a
psycopg connection in pipeline mode (`store.pg_batches`: a batch waits for two round
trips, not one per statement), on SQLite a sqlite3 connection (`store.sqlite_batches`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from linkflow.engine import Event, EventType, HistoryConflict
from linkflow.observability.logging import get_logger
from linkflow.services.errors import Invalid
from linkflow.services.history import read_events
from linkflow.store import Database, ExecutionStatus, NewEvent
from linkflow.store.batch import LeaseAction, Limited, Outcome, Quota, WriteOp
from linkflow.store.pg_batches import PostgresBatches
from linkflow.store.sqlite_batches import SQLiteBatches
from linkflow.store.writer_process import WriterProcess, batches_for

__all__ = [
    "DEFAULT_MAX_BATCH",
    "Appended",
    "GroupCommitWriter",
    "LeaseAction",
    "LeaseWrite",
    "OverLimit",
    "Quota",
    "WriterHistory",
    "flush",
]

DEFAULT_MAX_BATCH = 2000
"""Ops per transaction; bounds a transaction's size when thousands wait."""
DEFAULT_CONNECTIONS = 2
"""PostgreSQL connections the writer writes on at once (`LINKFLOW_WRITER_CONNECTIONS`):
one batch waits for its commit's flush while others are built and sent."""

log = get_logger(__name__)


class _Batch:
    """Ops written in one transaction, and one future for all of them: it resolves to
    the outcome (what was refused) once the transaction commits, or fails with it."""

    __slots__ = ("done", "ops")

    def __init__(self) -> None:
        self.ops: list[WriteOp] = []
        self.done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    def wait(self) -> asyncio.Future[Outcome]:
        """The outcome, for one waiter: shielded, so a waiter cancelled does not cancel
        the batch for the others."""
        return asyncio.shield(self.done)


class Appended:
    """An event queued for the next batch; awaiting it waits until it is durable, and
    raises `HistoryConflict` if another event holds its place."""

    __slots__ = ("batch", "event", "position")

    def __init__(self, batch: _Batch, event: NewEvent) -> None:
        self.batch = batch
        self.event = event
        self.position = len(batch.ops) - 1
        """Where in the batch: made right after the event joined it."""

    def __await__(self) -> Generator[Any, None, None]:
        outcome = yield from self.batch.wait().__await__()
        self.check(outcome)

    def check(self, outcome: Outcome) -> None:
        if self.position in outcome.refused:
            event = self.event
            raise HistoryConflict(
                f"event {event.seq} of {event.execution_id} was refused: its place is taken, "
                "or its worker no longer holds the execution's lease"
            )


class LeaseWrite:
    """A lease action queued for the next batch; awaiting it gives whether it held
    (taken, renewed, released by the lease's owner)."""

    __slots__ = ("batch", "position")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch
        self.position = len(batch.ops) - 1

    def __await__(self) -> Generator[Any, None, bool]:
        outcome = yield from self.batch.wait().__await__()
        return self.position not in outcome.refused


class _Lane:
    """One connection's share of the writes: its batches, oldest first (ops join the
    newest until it is full), the loop that writes them, and where they are written:
    its child `process`, or else its thread."""

    def __init__(self, index: int, process: WriterProcess | None) -> None:
        self.index = index
        self.process = process
        self.batches: deque[_Batch] = deque()
        self.wakeup = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task[None] | None = None
        self.thread = ThreadPoolExecutor(1, thread_name_prefix=f"linkflow-writer-{index}")
        self.in_thread: SQLiteBatches | PostgresBatches | None = None
        """The lane's batches in its thread (PostgreSQL, or SQLite in-process), opened
        there on first use."""


class GroupCommitWriter:
    """The process's writer for execution events and execution rows: one queue of
    batches per connection it writes on (`connections`)."""

    def __init__(
        self, database: Database, *, max_batch: int = DEFAULT_MAX_BATCH, process: bool = False,
        connections: int = DEFAULT_CONNECTIONS,
    ) -> None:  # fmt: skip
        """`process`: write in child processes (`store.writer_process`), on cores of
        their own; otherwise in threads of this process. `connections`: on PostgreSQL,
        how many batches may be written at once, each on a connection (and child or
        thread) of its own; an execution's writes always take the same one, so they stay
        in order (SQLite has one writer: one)."""
        self.database = database
        self.max_batch = max_batch
        lanes = 1 if database.dialect == "sqlite" else max(connections, 1)
        self._lanes = tuple(
            _Lane(index, WriterProcess(database.url, index) if process else None)
            for index in range(lanes)
        )
        self.batches = 0
        self.ops = 0
        self.on_lease_lost: Callable[[str], None] | None = None
        """Told of each lease a write was refused under (once per batch)."""
        self.on_batch: Callable[[int, float], None] | None = None
        """Told of each batch written: its ops and the seconds it took (metrics)."""

    @property
    def processes(self) -> tuple[WriterProcess, ...]:
        """The child processes written in (none unless `process`), one per connection."""
        return tuple(lane.process for lane in self._lanes if lane.process is not None)

    def process_of(self, execution_id: uuid.UUID) -> WriterProcess | None:
        """The child process that writes `execution_id`'s ops (None unless `process`)."""
        return self._lane(execution_id).process

    def start(self) -> None:
        for lane in self._lanes:
            if lane.task is None:
                lane.task = asyncio.create_task(self._run(lane), name="group-commit-writer")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._lanes[0].task is None:
            return
        for lane in self._lanes:
            await lane.idle.wait()
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
                await asyncio.gather(lane.task, return_exceptions=True)
                lane.task = None
        loop = asyncio.get_running_loop()
        for lane in self._lanes:
            if lane.process is not None:
                await lane.process.close()
            if lane.in_thread is not None:
                await loop.run_in_executor(lane.thread, lane.in_thread.close)
                lane.in_thread = None
            lane.thread.shutdown(wait=False)

    def _lane(self, key: uuid.UUID) -> _Lane:
        """The lane of an execution (or of a webhook's call counts, so that one hot
        webhook row is updated by one connection, never by two waiting on its lock)."""
        lanes = self._lanes
        return lanes[key.int % len(lanes)] if len(lanes) > 1 else lanes[0]

    def _enqueue(self, op: WriteOp, key: uuid.UUID) -> _Batch:
        lane = self._lane(key)
        if lane.task is None:
            raise RuntimeError("the writer is not started")
        batches = lane.batches
        if not batches or len(batches[-1].ops) >= self.max_batch:
            batches.append(_Batch())
            lane.idle.clear()
            lane.wakeup.set()
        batch = batches[-1]
        batch.ops.append(op)
        return batch

    def append_nowait(
        self, execution_id: uuid.UUID, event: Event, *, lease: str | None = None
    ) -> Appended:
        """Queue `event` for the next batch; await the result to know it durable. Under a
        `lease`, the event also moves the execution's status (`store.transitions`)."""
        # The type as it is: a str (StrEnum) that stores as its value, without the
        # descriptor call `.value` costs.
        new = NewEvent(execution_id, event.seq, event.type, event.node_id, event.data,
                       event.timestamp)  # fmt: skip
        return Appended(self._enqueue(WriteOp(event=new, lease=lease), execution_id), new)

    def update_execution_nowait(
        self, execution_id: uuid.UUID, *, lease: str | None = None, **values: Any
    ) -> None:
        """Queue a row update in order with the events; nobody waits for it."""
        self._enqueue(WriteOp(execution_id=execution_id, values=values, lease=lease),
                      execution_id)  # fmt: skip

    def replace_node_executions_nowait(
        self, execution_id: uuid.UUID, rows: Sequence[dict[str, Any]], *, lease: str | None = None
    ) -> None:
        """Make `rows` (the columns of each, see `BulkStatements.NODE_COLUMNS`) the
        execution's node_executions, queued in order; nobody waits for it."""
        self._enqueue(WriteOp(node_rows=rows, replace_nodes_of=execution_id, lease=lease),
                      execution_id)  # fmt: skip

    def lease_nowait(
        self, action: str, execution_id: uuid.UUID, lease: str,
        expires_at: datetime | None = None,
    ) -> LeaseWrite:  # fmt: skip
        """Queue a lease action (`LeaseAction`) in order with the other writes."""
        values = {"expires_at": expires_at} if expires_at is not None else {}
        op = WriteOp(execution_id=execution_id, values=values, lease=lease, lease_action=action)
        return LeaseWrite(self._enqueue(op, execution_id))

    def count_webhook_call_nowait(self, webhook_id: uuid.UUID) -> None:
        """Add one to the webhook's `call_count` and stamp `last_called_at` (the calls of
        a batch are added up into one update); nobody waits for it."""
        self._enqueue(WriteOp(webhook_called=webhook_id, values={"at": datetime.now(UTC)}),
                      webhook_id)  # fmt: skip

    async def create_execution(
        self, values: dict[str, Any], *events: NewEvent,
        lease: tuple[str, datetime] | None = None, quota: Quota | None = None,
    ) -> None:  # fmt: skip
        """Durably insert an execution row (`BulkStatements.EXECUTION_COLUMNS`) and its
        first events, in one batch; with `lease` (id, expiry), its lease too. With a
        `quota`, the execution counts in its workspace's usage, and `OverLimit` says it
        was refused (nothing of it stored) when a limit of the quota is reached.

        Counted, it is written through the lane of its workspace (its later writes go by
        its own id, once this is durable), so that one connection writes a workspace's
        counter row, never two waiting on its lock."""
        execution_id: uuid.UUID = values["id"]
        lane_key: uuid.UUID = values["workspace_id"] if quota is not None else execution_id
        batch = self._enqueue(WriteOp(new_execution=values, quota=quota), lane_key)
        position = len(batch.ops) - 1
        appended = [Appended(self._enqueue(WriteOp(event=event), lane_key), event)
                    for event in events]  # fmt: skip
        if lease is not None:
            take = WriteOp(execution_id=execution_id, values={"expires_at": lease[1]},
                           lease=lease[0], lease_action=LeaseAction.TAKE)  # fmt: skip
            self._enqueue(take, lane_key)
        outcome = await batch.wait()
        for at, reason in outcome.unstorable:
            if at == position:
                raise Invalid(f"the execution cannot be stored: {reason}",
                              code="unstorable_input")  # fmt: skip
        for at, limit, value, usage in outcome.limited:
            if at == position:
                raise OverLimit(limit, value, usage)
        await flush(appended)

    async def update_execution(self, execution_id: uuid.UUID, **values: Any) -> None:
        """Durably set columns of an `executions` row."""
        await self._enqueue(WriteOp(execution_id=execution_id, values=values),
                            execution_id).wait()  # fmt: skip

    async def _run(self, lane: _Lane) -> None:
        # A writer process takes a second batch while it commits the first (in order,
        # on one pipe), which hides the round trip; a thread or a connection takes one.
        slots = asyncio.Semaphore(4 if lane.process is not None else 1)
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            if not lane.batches:
                if not in_flight:
                    lane.idle.set()
                lane.wakeup.clear()
                await lane.wakeup.wait()
                continue
            await slots.acquire()
            batch = lane.batches.popleft()
            task = asyncio.create_task(self._settle(lane, batch, slots))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            task.add_done_callback(lambda _: lane.wakeup.set())

    async def _settle(self, lane: _Lane, batch: _Batch, slots: asyncio.Semaphore) -> None:
        try:
            try:
                outcome = await self._write(lane, batch.ops)
            except Exception as error:  # noqa: BLE001 - the data, or the database? see _isolate
                outcome = await self._isolate(lane, batch.ops, error)
        except Exception as error:  # noqa: BLE001 - every caller learns of the failure
            log.warning("group commit failed", error=str(error), ops=len(batch.ops))
            batch.done.set_exception(error)
            batch.done.exception()  # retrieved: nobody may be waiting on this batch
        else:
            for note in outcome.notes:
                log.warning("status transition refused", detail=note)
            if outcome.lost and self.on_lease_lost is not None:
                for lease in outcome.lost:
                    self.on_lease_lost(lease)
            batch.done.set_result(outcome)
        finally:
            slots.release()

    async def _write(self, lane: _Lane, batch: Sequence[WriteOp]) -> Outcome:
        began = time.perf_counter()
        if lane.process is not None:
            outcome = await lane.process.write(batch)
        else:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(lane.thread, self._write_in_thread, lane, batch)
        self.batches += 1
        self.ops += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - began)
        return outcome

    async def _isolate(
        self, lane: _Lane, ops: Sequence[WriteOp], error: Exception
    ) -> Outcome:
        """A batch failed: write each execution's ops alone, so that one execution's value
        the database cannot take (a tenant's) fails only that execution. The parts that
        fail alone are refused, and their execution is failed with the reason; when
        nothing can be written, the database is the cause and `error` is raised."""
        parts: dict[str, list[int]] = {}
        for index, op in enumerate(ops):
            target = op.target()
            parts.setdefault("" if target is None else target.hex, []).append(index)
        if len(parts) == 1:
            try:
                await self._write(lane, [])  # does the database take writes at all?
            except Exception:  # noqa: BLE001 - it does not: the batch's own data is not to blame
                raise error from None
        refused: set[int] = set()
        lost: set[str] = set()
        notes: list[str] = []
        unstorable: list[tuple[int, str]] = []
        limited: list[Limited] = []
        failed: list[tuple[list[int], str]] = []
        for positions in parts.values():
            try:
                outcome = await self._write(lane, [ops[index] for index in positions])
            except Exception as failure:  # noqa: BLE001 - this part's own data
                failed.append((positions, _reason(failure)))
                continue
            refused.update(positions[at] for at in outcome.refused)
            lost.update(outcome.lost)
            notes.extend(outcome.notes)
            limited.extend((positions[at], limit, value, usage)
                           for at, limit, value, usage in outcome.limited)  # fmt: skip
        if len(failed) == len(parts) > 1:
            raise error  # no part goes in alone: the database, not the data
        for positions, reason in failed:
            part = [ops[index] for index in positions]
            refused.update(positions)
            lost.update(op.lease for op in part if op.lease is not None)
            unstorable.extend((index, reason) for index in positions)
            await self._fail_unstorable(lane, part, reason)
        return Outcome(frozenset(refused), frozenset(lost), tuple(notes), tuple(unstorable),
                       tuple(limited))  # fmt: skip

    async def _fail_unstorable(
        self, lane: _Lane, part: Sequence[WriteOp], reason: str
    ) -> None:
        """End the execution whose ops `part` could not be written: `execution.failed` at
        the place of its first lost event, its row failed, its lease gone (its worker's
        next write is refused and the worker stops). An execution not created yet (the
        creation itself failed) has nothing to end: its creator is told instead."""
        target = part[0].target()
        if target is None or any(op.new_execution is not None for op in part):
            log.warning("a write could not be stored", reason=reason, ops=len(part))
            return
        log.error("an execution's data could not be stored: it fails", execution_id=str(target),
                  reason=reason)  # fmt: skip
        seqs = [op.event.seq for op in part if op.event is not None]
        seq = min(seqs) if seqs else await self._next_seq(target)
        now = datetime.now(UTC)
        error: dict[str, Any] = {
            "message": f"the execution's data could not be stored: {reason}", "node_id": None,
        }  # fmt: skip
        ending = [
            WriteOp(event=NewEvent(target, seq, EventType.EXECUTION_FAILED.value, None,
                                   {"error": error}, now)),
            WriteOp(execution_id=target,
                    values={"status": ExecutionStatus.FAILED, "error": error,
                            "completed_at": now}),
            *(WriteOp(execution_id=target, lease=lease, lease_action=LeaseAction.DROP)
              for lease in {op.lease for op in part if op.lease is not None}),
        ]  # fmt: skip
        try:
            await self._write(lane, ending)
        except Exception:  # recovery meets it again, and it ends then
            log.warning("failing an execution whose data could not be stored failed",
                        execution_id=str(target), exc_info=True)  # fmt: skip

    async def _next_seq(self, execution_id: uuid.UUID) -> int:
        events = await read_events(self.database, execution_id)
        return (events[-1].seq if events else 0) + 1

    def _write_in_thread(self, lane: _Lane, batch: Sequence[WriteOp]) -> Outcome:
        """A batch on the lane thread's own connection (made there on first use)."""
        if lane.in_thread is None:
            lane.in_thread = batches_for(self.database.url, lane.index)
        return lane.in_thread.write(batch)


class OverLimit(Exception):
    """A new execution was refused by a plan limit of its quota; nothing of it is stored."""

    def __init__(self, limit: str, value: int, usage: int) -> None:
        super().__init__(f"{limit}: {usage} of {value} used")
        self.limit = limit
        self.value = value
        self.usage = usage


def _reason(failure: Exception) -> str:
    """A failed write's cause in one short line (no SQL, no parameters)."""
    text = str(failure).split("\n", 1)[0].split("[SQL:", 1)[0].strip()
    return f"{type(failure).__name__}: {text}"[:300]


async def flush(appended: Sequence[Appended]) -> None:
    """Wait until every one of `appended` is durable (one wait per batch, not per event);
    `HistoryConflict` for the first refused."""
    waited: dict[int, Outcome] = {}
    for item in appended:
        key = id(item.batch)
        if key not in waited:
            waited[key] = await item.batch.wait()
        item.check(waited[key])


class WriterHistory:
    """The engine's `History` for one execution: reads from the database, appends
    through the group-commit writer without waiting (they are written in order),
    and waits for durability at `flush`."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        execution_id: uuid.UUID,
        *,
        known: Sequence[Event] | None = None,
        lease: str | None = None,
    ) -> None:
        self.writer = writer
        self.execution_id = execution_id
        self.lease = lease
        """The worker's lease: every append is fenced by it."""
        self._known = known
        """The whole history when the caller has it already (a brand-new execution)."""
        self._pending: list[Appended] = []

    async def read(self) -> Sequence[Event]:
        if self._known is not None:
            known, self._known = self._known, None
            return known
        return await read_events(self.writer.database, self.execution_id)

    async def append(self, event: Event) -> None:
        self._pending.append(
            self.writer.append_nowait(self.execution_id, event, lease=self.lease)
        )

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await flush(pending)
