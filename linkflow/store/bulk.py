"""Pre-compiled statements for the group-commit writer's hot path.

Building and compiling a SQLAlchemy statement per write costs more than the
database's own work on that write (cache keys, coercions, parameter
processing per call). The writer's statements are few and fixed, so they are
compiled once per dialect here, and each batch only turns its rows into
parameter tuples (through the same type processors SQLAlchemy would apply,
so what is stored is identical) and runs them as one `executemany` per
statement on a `Sink`: the SQLite writer thread's own sqlite3 connection, or
a psycopg connection in pipeline mode (PostgreSQL, `store.pg_batches`).
"""

from __future__ import annotations

import enum
import re
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Protocol, cast

import orjson
from sqlalchemy import (
    Table,
    Uuid,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from linkflow.store.enums import ExecutionStatus
from linkflow.store.fencing import FencingStatements, InQuery
from linkflow.store.models import Execution, ExecutionEvent, NodeExecution, Usage, Webhook
from linkflow.store.types import JSONDocument, StrEnumType, UTCDateTime

__all__ = [
    "BulkStatements",
    "Prepared",
    "Rows",
    "SQLiteSink",
    "Sink",
    "hex_id",
    "processor_for",
]

_EXECUTIONS: Final = cast(Table, Execution.__table__)
_EVENTS: Final = cast(Table, ExecutionEvent.__table__)
_NODES: Final = cast(Table, NodeExecution.__table__)
_WEBHOOKS: Final = cast(Table, Webhook.__table__)
_USAGE: Final = cast(Table, Usage.__table__)
EVENTS_PER_STATEMENT: Final = 512
"""Most rows of one multi-row event insert (6 parameters each: far below both limits).
A batch is cut into power-of-two chunks, so at most ten statements are ever compiled."""

Processor = Callable[[Any], Any] | None


Rows = Callable[[], list[tuple[Any, ...]]]
"""A read's rows, once they have come (`Sink.query`)."""


class Sink(Protocol):
    """Where compiled statements run: a driver connection inside a transaction."""

    pipelined: bool
    """Statements are sent without waiting for each other's results (PostgreSQL's
    pipeline mode): a `query`'s rows come when asked for, and an event whose place is
    taken fails the whole batch (written again, unpipelined, by the caller) instead of
    being reported, since the report would be one more wait."""

    def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None: ...

    def fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]: ...

    def query(self, sql: str, params: tuple[Any, ...]) -> Rows:
        """Send a read now, its rows later: reads sent together cost one wait."""
        ...


class SQLiteSink:
    """A sqlite3 connection used directly: SQLAlchemy's per-statement work (cursor and
    result set-up, events) costs more than SQLite's on these small statements."""

    pipelined = False

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self.connection.executemany(sql, rows)

    def fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, params).fetchall()

    def query(self, sql: str, params: tuple[Any, ...]) -> Rows:
        rows = self.fetch(sql, params)
        return lambda: rows


@dataclass(frozen=True, slots=True)
class Prepared:
    """One compiled statement: its SQL and, per positional parameter, its name and
    the processor of its type."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor, ...]

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            value if process is None or value is None else process(value)
            for value, process in zip(
                (values[name] for name in self.names), self.processors, strict=True
            )
        )

    def run(self, sink: Sink, rows: Iterable[Mapping[str, Any]]) -> None:
        params = [self.row(values) for values in rows]
        if params:
            sink.executemany(self.sql, params)


def _prepare(statement: Any, dialect: Dialect, names: Sequence[str] | None = None) -> Prepared:
    compiled = statement.compile(dialect=dialect, column_keys=names)
    assert isinstance(compiled, SQLCompiler)
    order = tuple(compiled.positiontup or ())
    processors = tuple(processor_for(compiled.binds[name].type, dialect) for name in order)
    return Prepared(str(compiled), order, processors)


def processor_for(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """The bind processor of `type_`: SQLAlchemy's own, or for the types of the hot path
    (on SQLite; JSON on PostgreSQL, which SQLAlchemy's psycopg dialect would wrap in an
    adapter object per value), a direct function giving the same result (SQLAlchemy's go
    through layers of wrappers and %-formatting: a sixth of a busy process's time).
    Applied to non-None values only. Ids and times may also come as the text orjson
    makes of them (the SQLite writer process receives them so)."""
    if dialect.name == "postgresql":
        if isinstance(type_, JSONDocument):
            return _json_text  # text, which the statement casts to JSONB
        if isinstance(type_, UTCDateTime):
            return _aware_datetime
    if dialect.name == "sqlite":
        if isinstance(type_, UTCDateTime):
            return _sqlite_datetime
        if isinstance(type_, JSONDocument):
            return _json_text
        if isinstance(type_, StrEnumType):
            return partial(_enum_value, type_.enum_cls)
        if isinstance(type_, Uuid) and type_.as_uuid:
            return _uuid_hex
    processor: Processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def _aware_datetime(value: datetime | str) -> datetime:
    """An aware time (as `UTCDateTime` binds on PostgreSQL), from ISO 8601 text too. An
    id as text needs nothing: the statements cast each parameter (``%s::UUID``)."""
    if isinstance(value, str):  # ISO 8601, from the writer process's channel
        value = datetime.fromisoformat(value)
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"naive datetime {value.isoformat()} refused: pass a timezone-aware datetime"
        raise ValueError(msg)
    return value


def _sqlite_datetime(value: datetime | str) -> str:
    if isinstance(value, str):  # ISO 8601, from the writer process's channel
        value = datetime.fromisoformat(value)
    if value.tzinfo is UTC:  # nearly always: the first 26 characters drop "+00:00"
        return value.isoformat(" ", "microseconds")[:26]
    aware = _aware_datetime(value)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _enum_value(enum_cls: type[enum.StrEnum], value: Any) -> str:
    return enum_cls(value).value


def _uuid_hex(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, str) and _CANONICAL_UUID.fullmatch(value):
        return value.replace("-", "")  # as orjson writes ids: the writer process's channel
    return uuid.UUID(str(value)).hex


_CANONICAL_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _column_defaults(table: Table) -> dict[str, Callable[[], Any]]:
    """Python-side defaults of `table`'s columns, as zero-argument callables."""
    defaults: dict[str, Callable[[], Any]] = {}
    for column in table.columns:
        default = column.default
        arg = getattr(default, "arg", None)
        if default is None or arg is None:
            continue
        if default.is_callable:
            defaults[column.key] = partial(arg, None)
        elif default.is_scalar:
            defaults[column.key] = partial(_constant, arg)
    return defaults


def _constant(value: Any) -> Any:
    return value


class _Insert:
    """An insert of a fixed set of columns; the other columns get their defaults."""

    def __init__(self, table: Table, dialect: Dialect, names: Sequence[str]) -> None:
        self.names = tuple(names)
        defaults = _column_defaults(table)
        self.fill = {
            column.key: defaults[column.key]
            for column in table.columns
            if column.key not in self.names and column.key in defaults
        }
        self.prepared = _prepare(insert(table), dialect, [*self.names, *self.fill])

    def run(self, sink: Sink, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if self.fill:
            rows = [{**values, **{k: make() for k, make in self.fill.items()}} for values in rows]
        self.prepared.run(sink, rows)


class BulkStatements:
    """The writer's statements, compiled for one dialect (SQLite or PostgreSQL)."""

    EXECUTION_COLUMNS: Final = (
        "id", "workspace_id", "workflow_id", "workflow_version", "status", "trigger_type",
        "priority", "input", "parent_execution_id", "created_by_id", "queued_at", "attempt",
    )  # fmt: skip
    NODE_COLUMNS: Final = (
        "execution_id", "workspace_id", "node_id", "node_type", "run_index", "status",
        "attempts", "items_in", "items_out", "started_at", "completed_at", "duration_ms", "error",
    )  # fmt: skip

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.insert_execution = _Insert(_EXECUTIONS, dialect, self.EXECUTION_COLUMNS)
        self.insert_node = _Insert(_NODES, dialect, self.NODE_COLUMNS)
        self.delete_nodes = _prepare(
            _NODES.delete().where(_NODES.c.execution_id == bindparam("execution_id")), dialect
        )
        self.count_calls = _prepare(
            update(_WEBHOOKS)
            .where(_WEBHOOKS.c.id == bindparam("webhook_id"))
            .values(
                call_count=_WEBHOOKS.c.call_count
                + bindparam("calls", type_=_WEBHOOKS.c.call_count.type),
                last_called_at=bindparam("at", type_=_WEBHOOKS.c.last_called_at.type),
                # Set to itself: a call is not a change of the webhook (no onupdate stamp).
                updated_at=_WEBHOOKS.c.updated_at,
            ),
            dialect,
        )  # fmt: skip
        self._updates: dict[tuple[str, ...], Prepared] = {}
        self._event_row = _prepare(insert(_EVENTS), dialect, _EVENT_COLUMNS)
        self._event_sql: dict[int, str] = {}
        self.delete_event = _prepare(
            _EVENTS.delete().where(
                _EVENTS.c.execution_id == bindparam("execution_id"),
                _EVENTS.c.seq == bindparam("seq"),
            ),
            dialect,
        )
        self.fencing = FencingStatements(
            dialect, _prepare, processor_for(_EVENTS.c.execution_id.type, dialect)
        )
        self._usage_statements(dialect)
        self._stored_event = _prepare(
            select(_EVENTS.c.type, _EVENTS.c.created_at).where(
                _EVENTS.c.execution_id == bindparam("execution_id"),
                _EVENTS.c.seq == bindparam("seq"),
            ),
            dialect,
        )

    def _usage_statements(self, dialect: Dialect) -> None:
        """The statements that count usage and claim plan limits (`store.batch`)."""
        dialect_insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        key = ["workspace_id", "metric", "period_start"]
        row = {
            "id": bindparam("id", type_=_USAGE.c.id.type),
            "workspace_id": bindparam("workspace_id", type_=_USAGE.c.workspace_id.type),
            "metric": bindparam("metric", type_=_USAGE.c.metric.type),
            "period_start": bindparam("period_start", type_=_USAGE.c.period_start.type),
            "updated_at": bindparam("at", type_=_USAGE.c.updated_at.type),
        }
        counter = dialect_insert(_USAGE).values(**row, quantity=literal_column("0"))
        self.claim_usage = _prepare(
            # Set to itself: what matters is the row lock, held to the commit, and the count
            # as the last transaction to hold it left it.
            counter.on_conflict_do_update(
                index_elements=key, set_={"quantity": _USAGE.c.quantity}
            ).returning(_USAGE.c.quantity),
            dialect,
        )
        """Make sure a counter row exists, lock it, read it (`Sink.query`)."""
        adding = dialect_insert(_USAGE).values(
            **row, quantity=bindparam("quantity", type_=_USAGE.c.quantity.type)
        )
        self.add_usage = _prepare(
            adding.on_conflict_do_update(
                index_elements=key,
                set_={"quantity": _USAGE.c.quantity + adding.excluded.quantity,
                      "updated_at": adding.excluded.updated_at},
            ),
            dialect,
        )  # fmt: skip
        """Add `quantity` to a counter row, made if missing."""
        self.count_unfinished = _prepare(
            select(func.count()).select_from(_EXECUTIONS).where(
                _EXECUTIONS.c.workspace_id == bindparam("workspace_id"),
                or_(_EXECUTIONS.c.status == bindparam("queued", type_=_EXECUTIONS.c.status.type),
                    _EXECUTIONS.c.status == bindparam("running", type_=_EXECUTIONS.c.status.type)),
            ),
            dialect,
        )  # fmt: skip
        """A workspace's executions that are queued or running (`ix_executions_workspace_
        status_queued` serves it)."""
        self.unfinished = {"queued": ExecutionStatus.QUEUED, "running": ExecutionStatus.RUNNING}
        self.delete_execution = _prepare(
            delete(_EXECUTIONS).where(_EXECUTIONS.c.id == bindparam("execution_id")), dialect
        )
        self.workspaces = InQuery(
            lambda ids: select(_EXECUTIONS.c.id, _EXECUTIONS.c.workspace_id).where(
                _EXECUTIONS.c.id.in_(ids)
            ),
            dialect,
            processor_for(_EVENTS.c.execution_id.type, dialect),
        )
        """(id, workspace_id) of the given executions (not locked: it never changes)."""

    def holds(self, sink: Sink, event: Mapping[str, Any]) -> bool:
        """Whether the stored event at `event`'s (execution_id, seq) is `event` itself
        (same type and time: a write that went through before being retried)."""
        found = sink.fetch(self._stored_event.sql, self._stored_event.row(event))
        if not found:
            return False
        stored_type, stored_at = found[0]
        created_at = self._event_row.row(event)[_EVENT_COLUMNS.index("created_at")]
        return bool(stored_type == event["type"] and stored_at == created_at)

    def update_execution(self, columns: Sequence[str]) -> Prepared:
        """`UPDATE executions SET <columns> WHERE id = :execution_id` (compiled once per
        set of columns)."""
        key = tuple(sorted(columns))
        prepared = self._updates.get(key)
        if prepared is None:
            statement = (
                update(_EXECUTIONS)
                .where(_EXECUTIONS.c.id == bindparam("execution_id"))
                .values({name: bindparam(name, type_=_EXECUTIONS.c[name].type) for name in key})
            )
            prepared = self._updates[key] = _prepare(statement, self.dialect)
        return prepared

    def insert_events(
        self, sink: Sink, events: Sequence[Mapping[str, Any]]
    ) -> set[tuple[str, int]]:
        """Insert `events`, skipping any whose (execution_id, seq) is taken; returns the
        places, (execution id in hex, seq), where an event may have been skipped: those
        not inserted, and those claimed twice in `events` (one of the two went in). On a
        pipelined sink a taken place fails the batch instead (see `Sink.pipelined`)."""
        refused: set[tuple[str, int]] = set()
        start = 0
        while start < len(events):
            size = min(EVENTS_PER_STATEMENT, 1 << ((len(events) - start).bit_length() - 1))
            chunk = events[start : start + size]
            start += size
            params: list[Any] = []
            for values in chunk:
                params.extend(self._event_row.row(values))
            if sink.pipelined:  # a taken place fails the statement, and so the batch
                sink.executemany(self._events_sql(len(chunk), strict=True), [tuple(params)])
                continue
            result = sink.fetch(self._events_sql(len(chunk)), tuple(params))
            if len(result) == len(chunk):
                continue  # all went in: nearly always
            inserted = {(hex_id(execution_id), seq) for execution_id, seq in result}
            keys = [(hex_id(e["execution_id"]), e["seq"]) for e in chunk]
            claimed = Counter(keys)
            refused.update(key for key in keys if key not in inserted or claimed[key] > 1)
        return refused

    def _events_sql(self, count: int, *, strict: bool = False) -> str:
        """A multi-row insert of `count` events that skips taken (execution_id, seq) pairs
        and returns the pairs it inserted (an executemany cannot say which it skipped);
        `strict`: a plain insert, which fails on a taken pair. Compiled once per row
        count; parameters are the rows' values, row after row."""
        key = -count if strict else count
        sql = self._event_sql.get(key)
        if sql is None:
            postgres = self.dialect.name == "postgresql"
            dialect_insert = postgresql.insert if postgres else sqlite.insert
            rows = [
                {name: bindparam(f"{name}_{i}", type_=_EVENTS.c[name].type)
                 for name in _EVENT_COLUMNS}
                for i in range(count)
            ]  # fmt: skip
            statement: Any = dialect_insert(_EVENTS).values(rows)
            if not strict:
                statement = statement.on_conflict_do_nothing(
                    index_elements=["execution_id", "seq"]
                ).returning(_EVENTS.c.execution_id, _EVENTS.c.seq)
            compiled = statement.compile(dialect=self.dialect)
            expected = tuple(f"{name}_{i}" for i in range(count) for name in _EVENT_COLUMNS)
            assert tuple(compiled.positiontup or ()) == expected
            sql = self._event_sql[key] = str(compiled)
        return sql


_EVENT_COLUMNS: Final = ("execution_id", "seq", "type", "node_id", "data", "created_at")


def hex_id(value: Any) -> str:
    """An id as 32 lower-case hex digits, whatever form the driver gives or takes."""
    if isinstance(value, uuid.UUID):
        return value.hex
    return str(value).replace("-", "").lower()


