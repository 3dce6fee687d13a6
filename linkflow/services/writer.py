"""Group commit: one writer batches every execution's appends into few transactions.

Executions in a process append about ten events each; committing each alone
would cap throughput at what the database can commit per second. Instead,
callers hand their writes to this writer and wait only for the batch holding
theirs: the writer takes everything queued (up to `max_batch`) and writes it in
one transaction, then wakes the callers. A caller therefore still returns only
once its write is durable, which is what lets a webhook answer after the
events it reports are stored.

Ops in a batch are applied in the order they were queued. An event whose
`(execution_id, seq)` is taken is refused alone (its caller gets
`HistoryConflict`); a failing transaction fails every caller in it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Executable, delete, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

from linkflow.engine import Event, HistoryConflict
from linkflow.observability.logging import get_logger
from linkflow.services.history import read_events
from linkflow.store import (
    Base,
    Database,
    Execution,
    ExecutionEvent,
    NewEvent,
    NodeExecution,
)

__all__ = ["DEFAULT_MAX_BATCH", "GroupCommitWriter", "WriterHistory"]

DEFAULT_MAX_BATCH = 2000
"""Ops per transaction; bounds a transaction's size when thousands wait."""

log = get_logger(__name__)


@dataclass(slots=True)
class _Op:
    done: asyncio.Future[None]
    event: NewEvent | None = None
    execution_id: uuid.UUID | None = None
    values: dict[str, Any] = field(default_factory=dict)
    rows: Sequence[Base] = ()
    replace_nodes_of: uuid.UUID | None = None
    """Delete this execution's node_executions rows before inserting `rows`."""
    statement: Executable | None = None


class GroupCommitWriter:
    """The process's single writer for execution events and execution rows."""

    def __init__(self, database: Database, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.database = database
        self.max_batch = max_batch
        self._pending: asyncio.Queue[_Op] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sqlite = database.sqlite_writer_engine()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="linkflow-writer")
        self.batches = 0
        self.ops = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="group-commit-writer")

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._pending.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._sqlite is not None:
            self._sqlite.dispose()
        self._thread.shutdown(wait=False)

    async def _submit(self, op: _Op) -> None:
        await self._enqueue(op)

    def _enqueue(self, op: _Op) -> asyncio.Future[None]:
        if self._task is None:
            raise RuntimeError("the writer is not started")
        self._pending.put_nowait(op)
        return op.done

    def append_nowait(self, execution_id: uuid.UUID, event: Event) -> asyncio.Future[None]:
        """Queue `event` for the next batch; the future resolves once it is durable."""
        new = NewEvent(execution_id, event.seq, event.type.value, event.node_id, event.data,
                       event.timestamp)  # fmt: skip
        return self._enqueue(_Op(asyncio.get_running_loop().create_future(), event=new))

    def update_execution_nowait(self, execution_id: uuid.UUID, **values: Any) -> None:
        """Queue a row update in order with the events; nobody waits for it."""
        future = self._enqueue(
            _Op(asyncio.get_running_loop().create_future(), execution_id=execution_id,
                values=values)
        )  # fmt: skip
        future.add_done_callback(_ignore_outcome)

    def replace_node_executions_nowait(
        self, execution_id: uuid.UUID, rows: Sequence[NodeExecution]
    ) -> None:
        """`replace_node_executions`, queued in order; nobody waits for it."""
        future = self._enqueue(
            _Op(asyncio.get_running_loop().create_future(), rows=rows,
                replace_nodes_of=execution_id)
        )  # fmt: skip
        future.add_done_callback(_ignore_outcome)

    def execute_nowait(self, statement: Executable) -> None:
        """Queue a statement (a counter increment); nobody waits for it."""
        future = self._enqueue(_Op(asyncio.get_running_loop().create_future(), statement=statement))
        future.add_done_callback(_ignore_outcome)

    async def append(self, execution_id: uuid.UUID, event: Event) -> None:
        """Durably append `event`; `HistoryConflict` if its seq is taken."""
        new = NewEvent(execution_id, event.seq, event.type.value, event.node_id, event.data,
                       event.timestamp)  # fmt: skip
        await self._submit(_Op(asyncio.get_running_loop().create_future(), event=new))

    async def update_execution(self, execution_id: uuid.UUID, **values: Any) -> None:
        """Durably set columns of an `executions` row."""
        future = asyncio.get_running_loop().create_future()
        await self._submit(_Op(future, execution_id=execution_id, values=values))

    async def insert(self, *rows: Base) -> None:
        """Durably insert new rows (e.g. an execution and its first event)."""
        await self._submit(_Op(asyncio.get_running_loop().create_future(), rows=rows))

    async def replace_node_executions(
        self, execution_id: uuid.UUID, rows: Sequence[NodeExecution]
    ) -> None:
        """Durably make `rows` the execution's node_executions (a projection of its history)."""
        future = asyncio.get_running_loop().create_future()
        await self._submit(_Op(future, rows=rows, replace_nodes_of=execution_id))

    async def execute(self, statement: Executable) -> None:
        """Durably run one write statement (e.g. a counter increment) in a batch."""
        future = asyncio.get_running_loop().create_future()
        await self._submit(_Op(future, statement=statement))

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < self.max_batch and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            try:
                await self._write(batch)
            except Exception as error:  # noqa: BLE001 - every caller learns of the failure
                log.warning("group commit failed", error=str(error), ops=len(batch))
                for op in batch:
                    if not op.done.done():
                        op.done.set_exception(error)
            finally:
                for _ in batch:
                    self._pending.task_done()

    async def _write(self, batch: Sequence[_Op]) -> None:
        if self._sqlite is not None:
            loop = asyncio.get_running_loop()
            refused = await loop.run_in_executor(self._thread, _write_sqlite, self._sqlite, batch)
        else:
            async with self.database.engine.begin() as connection:
                refused = await connection.run_sync(_write_batch, batch)
        self.batches += 1
        self.ops += len(batch)
        for op in batch:
            if op.done.done():
                continue
            if op.event is not None and (op.event.execution_id, op.event.seq) in refused:
                op.done.set_exception(
                    HistoryConflict(f"event {op.event.seq} of {op.event.execution_id} is taken")
                )
            else:
                op.done.set_result(None)


def _write_sqlite(engine: Engine, batch: Sequence[_Op]) -> set[tuple[uuid.UUID, int]]:
    with engine.begin() as connection:
        return _write_batch(connection, batch)


def _write_batch(connection: Connection, batch: Sequence[_Op]) -> set[tuple[uuid.UUID, int]]:
    """One batch in one transaction (synchronous: run in the writer thread, or on the
    async connection through `run_sync`); returns the refused (execution, seq) pairs."""
    for op in batch:
        if op.replace_nodes_of is not None:
            connection.execute(
                delete(NodeExecution).where(NodeExecution.execution_id == op.replace_nodes_of)
            )
    _insert_rows(connection, [row for op in batch for row in op.rows])
    events = [op.event for op in batch if op.event is not None]
    refused = _append_events(connection, events) if events else set()
    for op in batch:
        if op.execution_id is not None and op.values:
            connection.execute(
                update(Execution).where(Execution.id == op.execution_id).values(**op.values)
            )
        if op.statement is not None:
            connection.execute(op.statement)
    return refused


def _insert_rows(connection: Connection, rows: Sequence[Base]) -> None:
    """Insert new ORM objects with Core `executemany`, grouped by table and columns set:
    the ORM's unit of work costs more than the inserts themselves on this path."""
    groups: dict[tuple[Any, frozenset[str]], list[dict[str, Any]]] = {}
    for row in rows:
        state = inspect(row)
        values = {attr.key: state.dict[attr.key] for attr in state.mapper.column_attrs
                  if attr.key in state.dict}  # fmt: skip
        table = state.mapper.local_table
        groups.setdefault((table, frozenset(values)), []).append(values)
    for (table, _), values_list in groups.items():
        connection.execute(table.insert(), values_list)


def _append_events(
    connection: Connection, events: Sequence[NewEvent]
) -> set[tuple[uuid.UUID, int]]:
    """Insert events, skipping taken (execution, seq) pairs; returns the pairs skipped.

    One compiled statement run as `executemany` (no RETURNING): when the row count
    says every event went in, which is nearly always, nothing more is asked.
    """
    now = datetime.now(UTC)
    rows = [
        {"execution_id": e.execution_id, "seq": e.seq, "type": e.type, "node_id": e.node_id,
         "data": e.data, "created_at": e.created_at or now}
        for e in events
    ]  # fmt: skip
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(ExecutionEvent).on_conflict_do_nothing(
        index_elements=["execution_id", "seq"]
    )
    result = connection.execute(statement, rows)
    if result.rowcount == len(rows):
        return set()
    return _taken_by_others(connection, events, now)


def _taken_by_others(
    connection: Connection, events: Sequence[NewEvent], written_at: datetime
) -> set[tuple[uuid.UUID, int]]:
    """Which of `events` were refused: their (execution, seq) holds another event."""
    refused = set()
    for event in events:
        stored = connection.execute(
            select(ExecutionEvent.type, ExecutionEvent.created_at).where(
                ExecutionEvent.execution_id == event.execution_id,
                ExecutionEvent.seq == event.seq,
            )
        ).one()
        if stored.type != event.type or stored.created_at != (event.created_at or written_at):
            refused.add((event.execution_id, event.seq))
    return refused


def _ignore_outcome(future: asyncio.Future[None]) -> None:
    # Read the exception so asyncio does not report it as never retrieved; the
    # writer has logged the failed batch already.
    if not future.cancelled():
        future.exception()


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
    ) -> None:
        self.writer = writer
        self.execution_id = execution_id
        self._known = known
        """The whole history when the caller has it already (a brand-new execution)."""
        self._pending: list[asyncio.Future[None]] = []

    async def read(self) -> Sequence[Event]:
        if self._known is not None:
            known, self._known = self._known, None
            return known
        return await read_events(self.writer.database, self.execution_id)

    async def append(self, event: Event) -> None:
        self._pending.append(self.writer.append_nowait(self.execution_id, event))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        results = await asyncio.gather(*pending, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
