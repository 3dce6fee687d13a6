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

Where a batch runs: on PostgreSQL, on a pooled async connection; on SQLite, in
a child process (`process=True`, what `serve` uses: `store.sqlite_writer`) or
else in the writer's own thread, on a sqlite3 connection of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from linkflow.engine import Event, HistoryConflict
from linkflow.observability.logging import get_logger
from linkflow.services.history import read_events
from linkflow.store import Database, NewEvent
from linkflow.store.batch import LeaseAction, Outcome, WriteOp, write_batch
from linkflow.store.bulk import BulkStatements, SQLAlchemySink
from linkflow.store.sqlite_writer import SQLiteBatches, WriterProcess

__all__ = [
    "DEFAULT_MAX_BATCH",
    "Appended",
    "GroupCommitWriter",
    "LeaseAction",
    "LeaseWrite",
    "WriterHistory",
    "flush",
]

DEFAULT_MAX_BATCH = 2000
"""Ops per transaction; bounds a transaction's size when thousands wait."""

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


class GroupCommitWriter:
    """The process's single writer for execution events and execution rows."""

    def __init__(
        self, database: Database, *, max_batch: int = DEFAULT_MAX_BATCH, process: bool = False
    ) -> None:
        """`process`: on SQLite, write in a child process (`store.sqlite_writer`), on a
        core of its own; otherwise in a thread of this process."""
        self.database = database
        self.max_batch = max_batch
        self._batches: deque[_Batch] = deque()
        """Batches to write, oldest first; ops join the newest until it is full."""
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        sqlite = database.dialect == "sqlite"
        self._process = WriterProcess(database.url) if process and sqlite else None
        self._in_thread = sqlite and self._process is None
        self._sqlite: SQLiteBatches | None = None
        """The writer thread's batches (SQLite, in-process), opened there on first use."""
        self._statements = None if sqlite else BulkStatements(database.engine.dialect)
        """PostgreSQL's statements (SQLite's are compiled where the batches run)."""
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="linkflow-writer")
        self.batches = 0
        self.ops = 0
        self.on_lease_lost: Callable[[str], None] | None = None
        """Told of each lease a write was refused under (once per batch)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._idle.wait()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._process is not None:
            await self._process.close()
        if self._sqlite is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._sqlite.close)
            self._sqlite = None
        self._thread.shutdown(wait=False)

    def _enqueue(self, op: WriteOp) -> _Batch:
        if self._task is None:
            raise RuntimeError("the writer is not started")
        batches = self._batches
        if not batches or len(batches[-1].ops) >= self.max_batch:
            batches.append(_Batch())
            self._idle.clear()
            self._wakeup.set()
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
        return Appended(self._enqueue(WriteOp(event=new, lease=lease)), new)

    def update_execution_nowait(
        self, execution_id: uuid.UUID, *, lease: str | None = None, **values: Any
    ) -> None:
        """Queue a row update in order with the events; nobody waits for it."""
        self._enqueue(WriteOp(execution_id=execution_id, values=values, lease=lease))

    def replace_node_executions_nowait(
        self, execution_id: uuid.UUID, rows: Sequence[dict[str, Any]], *, lease: str | None = None
    ) -> None:
        """Make `rows` (the columns of each, see `BulkStatements.NODE_COLUMNS`) the
        execution's node_executions, queued in order; nobody waits for it."""
        self._enqueue(WriteOp(node_rows=rows, replace_nodes_of=execution_id, lease=lease))

    def lease_nowait(
        self, action: str, execution_id: uuid.UUID, lease: str,
        expires_at: datetime | None = None,
    ) -> LeaseWrite:  # fmt: skip
        """Queue a lease action (`LeaseAction`) in order with the other writes."""
        values = {"expires_at": expires_at} if expires_at is not None else {}
        op = WriteOp(execution_id=execution_id, values=values, lease=lease, lease_action=action)
        return LeaseWrite(self._enqueue(op))

    def count_webhook_call_nowait(self, webhook_id: uuid.UUID) -> None:
        """Add one to the webhook's `call_count` and stamp `last_called_at` (the calls of
        a batch are added up into one update); nobody waits for it."""
        self._enqueue(WriteOp(webhook_called=webhook_id, values={"at": datetime.now(UTC)}))

    async def create_execution(
        self, values: dict[str, Any], *events: NewEvent,
        lease: tuple[str, datetime] | None = None,
    ) -> None:  # fmt: skip
        """Durably insert an execution row (`BulkStatements.EXECUTION_COLUMNS`) and its
        first events, in one batch; with `lease` (id, expiry), its lease too."""
        batch = self._enqueue(WriteOp(new_execution=values))
        appended = [Appended(self._enqueue(WriteOp(event=event)), event) for event in events]
        if lease is not None:
            self.lease_nowait(LeaseAction.TAKE, values["id"], lease[0], lease[1])
        await flush(appended)
        await batch.wait()

    async def update_execution(self, execution_id: uuid.UUID, **values: Any) -> None:
        """Durably set columns of an `executions` row."""
        await self._enqueue(WriteOp(execution_id=execution_id, values=values)).wait()

    async def _run(self) -> None:
        # A writer process takes a second batch while it commits the first (in order,
        # on one pipe), which hides the round trip; a thread or a connection takes one.
        slots = asyncio.Semaphore(4 if self._process is not None else 1)
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            if not self._batches:
                if not in_flight:
                    self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await slots.acquire()
            batch = self._batches.popleft()
            task = asyncio.create_task(self._settle(batch, slots))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            task.add_done_callback(lambda _: self._wakeup.set())

    async def _settle(self, batch: _Batch, slots: asyncio.Semaphore) -> None:
        try:
            outcome = await self._write(batch.ops)
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

    async def _write(self, batch: Sequence[WriteOp]) -> Outcome:
        if self._process is not None:
            outcome = await self._process.write(batch)
        elif self._in_thread:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(self._thread, self._write_sqlite, batch)
        else:
            assert self._statements is not None
            async with self.database.engine.begin() as connection:
                outcome = await connection.run_sync(_write_postgres, self._statements, batch)
        self.batches += 1
        self.ops += len(batch)
        return outcome

    def _write_sqlite(self, batch: Sequence[WriteOp]) -> Outcome:
        """A batch on the writer thread's own connection (made there on first use)."""
        if self._sqlite is None:
            self._sqlite = SQLiteBatches(self.database.url)
        return self._sqlite.write(batch)


def _write_postgres(
    connection: Connection, statements: BulkStatements, batch: Sequence[WriteOp]
) -> Outcome:
    return write_batch(SQLAlchemySink(connection), statements, batch)


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
