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

from sqlalchemy import Connection, Engine, Executable, inspect, select

from linkflow.engine import Event, HistoryConflict
from linkflow.observability.logging import get_logger
from linkflow.services.history import read_events
from linkflow.store import (
    Base,
    Database,
    ExecutionEvent,
    NewEvent,
)
from linkflow.store.bulk import BulkStatements

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
    new_execution: dict[str, Any] | None = None
    """The columns of an `executions` row to insert."""
    replace_nodes_of: uuid.UUID | None = None
    """Make `node_rows` this execution's node_executions rows."""
    node_rows: Sequence[dict[str, Any]] = ()
    webhook_called: uuid.UUID | None = None
    statement: Executable | None = None


class GroupCommitWriter:
    """The process's single writer for execution events and execution rows."""

    def __init__(self, database: Database, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.database = database
        self.max_batch = max_batch
        self._pending: asyncio.Queue[_Op] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sqlite = database.sqlite_writer_engine()
        self._statements = BulkStatements(database.engine.dialect)
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
        self, execution_id: uuid.UUID, rows: Sequence[dict[str, Any]]
    ) -> None:
        """Make `rows` (the columns of each, see `BulkStatements.NODE_COLUMNS`) the
        execution's node_executions, queued in order; nobody waits for it."""
        future = self._enqueue(
            _Op(asyncio.get_running_loop().create_future(), node_rows=rows,
                replace_nodes_of=execution_id)
        )  # fmt: skip
        future.add_done_callback(_ignore_outcome)

    def count_webhook_call_nowait(self, webhook_id: uuid.UUID) -> None:
        """Add one to the webhook's `call_count` and stamp `last_called_at` (the calls of
        a batch are added up into one update); nobody waits for it."""
        future = self._enqueue(
            _Op(asyncio.get_running_loop().create_future(), webhook_called=webhook_id,
                values={"at": datetime.now(UTC)})
        )  # fmt: skip
        future.add_done_callback(_ignore_outcome)

    def execute_nowait(self, statement: Executable) -> None:
        """Queue a statement; nobody waits for it."""
        future = self._enqueue(_Op(asyncio.get_running_loop().create_future(), statement=statement))
        future.add_done_callback(_ignore_outcome)

    async def create_execution(self, values: dict[str, Any], *events: NewEvent) -> None:
        """Durably insert an execution row (`BulkStatements.EXECUTION_COLUMNS`) and its
        first events, in one batch."""
        loop = asyncio.get_running_loop()
        self._enqueue(_Op(loop.create_future(), new_execution=values))
        pending = [self._enqueue(_Op(loop.create_future(), event=event)) for event in events]
        await asyncio.gather(*pending)

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
        statements = self._statements
        if self._sqlite is not None:
            loop = asyncio.get_running_loop()
            refused = await loop.run_in_executor(
                self._thread, _write_sqlite, self._sqlite, statements, batch
            )
        else:
            async with self.database.engine.begin() as connection:
                refused = await connection.run_sync(_write_batch, statements, batch)
        self.batches += 1
        self.ops += len(batch)
        for op in batch:
            if op.done.done():
                continue
            if op.event is not None and (op.event.execution_id.hex, op.event.seq) in refused:
                op.done.set_exception(
                    HistoryConflict(f"event {op.event.seq} of {op.event.execution_id} is taken")
                )
            else:
                op.done.set_result(None)


def _write_sqlite(
    engine: Engine, statements: BulkStatements, batch: Sequence[_Op]
) -> set[tuple[str, int]]:
    with engine.begin() as connection:
        return _write_batch(connection, statements, batch)


def _write_batch(
    connection: Connection, statements: BulkStatements, batch: Sequence[_Op]
) -> set[tuple[str, int]]:
    """One batch in one transaction (synchronous: run in the writer thread, or on the
    async connection through `run_sync`); returns the refused (execution hex, seq) pairs.

    The batch's ops are folded first: the updates of one execution merge into one
    (later values win), node_executions replacements keep the last per execution,
    and webhook calls add up. Then each kind of write is one `executemany`, in an
    order that respects references: new executions, other new rows, events,
    node_executions, execution updates, webhook counts, other statements.
    """
    statements.insert_execution.run(
        connection, [op.new_execution for op in batch if op.new_execution is not None]
    )
    _insert_rows(connection, [row for op in batch for row in op.rows])
    events = [_event_values(op.event) for op in batch if op.event is not None]
    refused = statements.insert_events(connection, events) if events else set()
    if refused:
        refused = _taken_by_others(connection, [op.event for op in batch if op.event], refused)
    nodes: dict[uuid.UUID, Sequence[dict[str, Any]]] = {}
    updates: dict[uuid.UUID, dict[str, Any]] = {}
    calls: dict[uuid.UUID, dict[str, Any]] = {}
    for op in batch:
        if op.replace_nodes_of is not None:
            nodes[op.replace_nodes_of] = op.node_rows
        if op.execution_id is not None and op.values:
            updates.setdefault(op.execution_id, {}).update(op.values)
        if op.webhook_called is not None:
            hook = op.webhook_called
            call = calls.setdefault(hook, {"webhook_id": hook, "calls": 0})
            call["calls"] += 1
            call["at"] = op.values["at"]
    if nodes:
        statements.delete_nodes.run(connection, [{"execution_id": key} for key in nodes])
        statements.insert_node.run(connection, [row for rows in nodes.values() for row in rows])
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for execution_id, values in updates.items():
        by_columns.setdefault(tuple(sorted(values)), []).append(
            {**values, "execution_id": execution_id}
        )
    for columns, rows in by_columns.items():
        statements.update_execution(columns).run(connection, rows)
    statements.count_calls.run(connection, list(calls.values()))
    for op in batch:
        if op.statement is not None:
            connection.execute(op.statement)
    return refused


def _event_values(event: NewEvent) -> dict[str, Any]:
    return {"execution_id": event.execution_id, "seq": event.seq, "type": event.type,
            "node_id": event.node_id, "data": event.data,
            "created_at": event.created_at or datetime.now(UTC)}  # fmt: skip


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


def _taken_by_others(
    connection: Connection, events: Sequence[NewEvent], skipped: set[tuple[str, int]]
) -> set[tuple[str, int]]:
    """Which `skipped` events were refused: their (execution, seq) holds another event.
    One that holds this very event (the same type and time: a retried write that had
    gone through) is not refused."""
    refused = set()
    for event in events:
        key = (event.execution_id.hex, event.seq)
        if key not in skipped:
            continue
        stored = connection.execute(
            select(ExecutionEvent.type, ExecutionEvent.created_at).where(
                ExecutionEvent.execution_id == event.execution_id,
                ExecutionEvent.seq == event.seq,
            )
        ).one()
        if stored.type != event.type or stored.created_at != event.created_at:
            refused.add(key)
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
