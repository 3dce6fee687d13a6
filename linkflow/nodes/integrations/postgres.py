"""The PostgreSQL integration: the `postgres` node (execute a query with bound
parameters, select, insert, update, upsert, delete) and the `postgres` credential,
on asyncpg.

Decisions:
- Values are always bound parameters (`$1`, `$2`...), never spliced into SQL;
  table and column names are quoted identifiers. A JSON value is converted to
  the type PostgreSQL infers for its parameter (an ISO string for a
  timestamp, a string of digits for an integer, an object for jsonb), so that
  items coming from webhooks insert without a cast in every query.
- Rows come out as items (paired with the input item that asked for them),
  with values as JSON: timestamps in ISO 8601, numerics as strings (no float
  rounding), bytea as base64, uuids as strings.
- One connection per activation; every statement commits on its own.
- Every connection parameter is passed explicitly: asyncpg would otherwise
  fill a missing password from the worker's own PGPASSWORD or ~/.pgpass and
  send it to whatever host the credential names.
- The host passes the SSRF guard (`ctx.resolve_host`) and the driver connects
  to the vetted address, except with `verify-full`, where the certificate is
  checked against the name (a rebinding answer then fails verification).
- Errors name the operation and PostgreSQL's SQLSTATE; connection failures,
  serialization failures and deadlocks may pass on a retry, others will not.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final

import asyncpg  # type: ignore[import-untyped]

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.sdk import (
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Lineage,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "POSTGRES_CREDENTIAL", "Postgres"]

OPERATIONS: Final = ("execute_query", "select", "insert", "update", "upsert", "delete")
DEFAULT_TIMEOUT_S: Final = 30.0
"""Connecting and each statement; a longer report query sets `timeout_s`."""
DEFAULT_LIMIT: Final = 1000
"""select: rows per item unless `limit` says otherwise, so a forgotten filter cannot
put a whole table in the history."""
MAX_IDENTIFIER_CHARS: Final = 63  # PostgreSQL's NAMEDATALEN - 1
SSL_MODES: Final = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# SQLSTATE classes and codes worth a retry: connection exceptions, serialization failure,
# deadlock, insufficient resources, operator intervention (a restart), lock timeouts.
_RETRYABLE_CLASSES: Final = ("08", "53", "57")
_RETRYABLE_CODES: Final = frozenset({"40001", "40P01", "55P03"})

_REQUIRED: Final = {
    "execute_query": ("query",), "select": ("table",), "insert": ("table",),
    "update": ("table", "where"), "upsert": ("table", "conflict_columns"),
    "delete": ("table", "where"),
}  # fmt: skip


async def _select_1(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """Connects and runs `SELECT 1`."""
    host, port = str(data["host"]), int(data.get("port") or 5432)
    connection = await _connect(ctx.resolve_host, data, ctx.timeout_s, "test")
    try:
        await _sql("test", connection.fetchval("SELECT 1"))
    finally:
        await connection.close(timeout=ctx.timeout_s)
    return f"connected to {data['database']} at {host}:{port} (SELECT 1)"


POSTGRES_CREDENTIAL: Final = CredentialType(
    "postgres",
    "PostgreSQL",
    "A PostgreSQL database.",
    (
        CredentialField("host", required=True),
        CredentialField("port", "integer", default=5432, minimum=1, maximum=65535),
        CredentialField("database", required=True),
        CredentialField("user", required=True),
        CredentialField("password", secret=True),
        CredentialField("sslmode", default="prefer", choices=SSL_MODES),
    ),
    check=_select_1,
)

_VALUES: Final = {
    "type": "object",
    "description": "insert, update, upsert: column → value (default for insert and upsert: "
    "the item's fields).",
}
_WHERE: Final = {
    "type": "object",
    "description": "select, update, delete: column → value, all equal (AND); null matches IS NULL.",
}


class Postgres(Node):
    type = "postgres"
    display_name = "PostgreSQL"
    group = NodeGroup.ACTION
    description = (
        "Per item, one statement on a PostgreSQL database (credential slot `postgres`). "
        "`execute_query` runs `query` with `query_parameters` bound to `$1`, `$2`...; the "
        "other operations build the statement from `table` (and `schema`): `select` rows "
        "matching `where` (equality, AND), ordered by `order_by`, at most `limit`; `insert` "
        "`values`; `update` the rows matching `where` with `values`; `upsert` on "
        "`conflict_columns`; `delete` what matches `where`. Returned rows (`returning`, "
        "default all columns) become items; a statement without rows gives one item with "
        "`command` (e.g. `UPDATE 3`) and `row_count`. Values are always bound, never "
        "spliced into the SQL."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"postgres": ("postgres",)}
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "execute_query",
                          "description": "What to do."},
            "query": {"type": "string", "minLength": 1,
                      "description": "execute_query: the SQL, with `$1`, `$2`... placeholders."},
            "query_parameters": {"type": "array", "default": [],
                                 "description": "execute_query: the values of `$1`, `$2`..."},
            "schema": {"type": "string", "default": "public", "description": "The table's schema."},
            "table": {"type": "string", "minLength": 1, "description": "The table."},
            "values": _VALUES,
            "where": _WHERE,
            "conflict_columns": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                 "description": "upsert: the unique columns that identify a row."},
            "columns": {"type": "array", "items": {"type": "string"},
                        "description": "select: the columns to read (default: all)."},
            "order_by": {"type": "array", "items": {"type": "string"}, "default": [],
                         "description": "select: columns, each optionally followed by ` desc`."},
            "limit": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_LIMIT,
                      "description": "select: at most this many rows per item (null: all)."},
            "returning": {"type": "array", "items": {"type": "string"}, "default": ["*"],
                          "description": "insert, update, upsert, delete: the columns of the "
                          "changed rows to output (`[]`: none, only the row count)."},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                          "default": DEFAULT_TIMEOUT_S,
                          "description": "Connecting, and each statement."},
        },
        "required": ["operation"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "execute_query")
        return [
            f"{name} is required when operation is {operation}"
            for name in _REQUIRED.get(operation, ())
            if parameters.get(name) in (None, {}, [])
        ]

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        connection: asyncpg.Connection | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal connection
            operation = params.text("operation", index)
            sql, arguments = _STATEMENTS[operation](params, item, index)
            if connection is None:
                data = await ctx.credential("postgres")
                timeout_s = params.number("timeout_s", index)
                connection = await _connect(ctx.resolve_host, data, timeout_s, operation)
            rows = await _run(connection, operation, sql, arguments)
            return [item.derive(row, index) for row in rows]

        try:
            return await amap_items(ctx, apply)
        finally:
            if connection is not None:
                await connection.close()


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def _connect(
    resolve: Resolve, data: Mapping[str, Any], timeout_s: float, operation: str
) -> asyncpg.Connection:
    host, port = str(data["host"]), int(data.get("port") or 5432)
    addresses = await resolve(host, port)
    sslmode = str(data.get("sslmode") or "prefer")
    connect = asyncpg.connect(
        host=host if sslmode == "verify-full" else addresses[0], port=port,
        user=str(data["user"]), password=str(data.get("password") or ""),
        database=str(data["database"]), ssl=sslmode, timeout=timeout_s,
        command_timeout=timeout_s, statement_cache_size=0,
        server_settings={"application_name": "linkflow"},
    )  # fmt: skip
    try:
        connection = await connect
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise _node_error(operation, error, where=f"{host}:{port}") from None
    except TimeoutError:
        raise NodeError(f"postgres {operation}: connecting to {host}:{port} timed out",
                        retryable=True) from None  # fmt: skip
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise NodeError(f"postgres {operation}: cannot connect to {host}:{port}: {reason}",
                        retryable=True) from None  # fmt: skip
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=_dump, decoder=json.loads,
                                        schema="pg_catalog")  # fmt: skip
    return connection


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _sql(operation: str, pending: Awaitable[Any]) -> Any:
    try:
        return await pending
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise _node_error(operation, error) from None
    except TimeoutError:
        raise NodeError(f"postgres {operation}: the statement timed out", retryable=True) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise NodeError(f"postgres {operation}: the connection failed: {reason}",
                        retryable=True) from None  # fmt: skip


def _node_error(operation: str, error: Exception, *, where: str = "") -> NodeError:
    state = str(getattr(error, "sqlstate", "") or "")
    message = str(getattr(error, "message", "") or error)[:300]
    detail = getattr(error, "detail", None)
    text = f"postgres {operation}: " + (f"{where}: " if where else "") + message
    if detail:
        text += f" ({str(detail)[:200]})"
    if state:
        text += f" [SQLSTATE {state}]"
    retryable = state[:2] in _RETRYABLE_CLASSES or state in _RETRYABLE_CODES
    if isinstance(error, asyncpg.InterfaceError) and not state:
        retryable = isinstance(error, asyncpg.ConnectionDoesNotExistError)
    return NodeError(text, retryable=retryable)


async def _run(
    connection: asyncpg.Connection, operation: str, sql: str, arguments: list[Any]
) -> list[JsonObject]:
    statement = await _sql(operation, connection.prepare(sql))
    types = statement.get_parameters()
    if len(types) != len(arguments):
        raise NodeError(f"postgres {operation}: the query has {len(types)} placeholder(s) but "
                        f"{len(arguments)} parameter(s) were given")  # fmt: skip
    bound = [
        _bind(operation, n + 1, t, v) for n, (t, v) in enumerate(zip(types, arguments, strict=True))
    ]
    rows = await _sql(operation, statement.fetch(*bound))
    if statement.get_attributes():
        return [{key: _json(value) for key, value in row.items()} for row in rows]
    status = statement.get_statusmsg() or ""
    count = status.rsplit(" ", 1)[-1]
    return [{"command": status, "row_count": int(count) if count.isdigit() else None}]


# --- values in and out ---------------------------------------------------------------

_INTEGERS: Final = frozenset({"int2", "int4", "int8", "oid"})
_FLOATS: Final = frozenset({"float4", "float8"})
_TEXTS: Final = frozenset({"text", "varchar", "bpchar", "name", "citext", "unknown"})


def _bind(operation: str, position: int, kind: Any, value: Any) -> Any:
    """`value` (JSON) as the Python value asyncpg encodes for the parameter's type."""
    if value is None:
        return None
    name = str(kind.name)
    try:
        return _converted(name, value)
    except (ValueError, TypeError, InvalidOperation):
        shown = type(value).__name__
        raise NodeError(f"postgres {operation}: parameter ${position} must be a {name}, "
                        f"not this {shown}") from None  # fmt: skip


def _integer(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError("bool")
    return int(value) if isinstance(value, str | float) else value


def _boolean(value: Any) -> Any:
    if isinstance(value, str):
        return {"true": True, "false": False, "t": True, "f": False}[value.lower()]
    return value


def _timestamptz(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


_CONVERTERS: Final[Mapping[str, Callable[[Any], Any]]] = {
    **dict.fromkeys(_INTEGERS, _integer),
    **dict.fromkeys(_FLOATS, float),
    **dict.fromkeys(_TEXTS, lambda value: value if isinstance(value, str) else _dump(value)),
    "numeric": lambda value: Decimal(str(value)),
    "bool": _boolean,
    "uuid": lambda value: uuid.UUID(str(value)),
    "timestamptz": _timestamptz,
    "timestamp": lambda value: dt.datetime.fromisoformat(str(value)).replace(tzinfo=None),
    "date": lambda value: dt.date.fromisoformat(str(value)[:10]),
    "time": lambda value: dt.time.fromisoformat(str(value)),
    "bytea": lambda value: base64.b64decode(str(value), validate=True),
}
"""JSON value → what asyncpg encodes for a parameter of that type; other types (json,
jsonb, arrays...) take the JSON value as it is."""


def _converted(name: str, value: Any) -> Any:
    convert = _CONVERTERS.get(name)
    return value if convert is None else convert(value)


def _json(value: Any) -> Any:
    """A value read from PostgreSQL as JSON."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_json(part) for part in value]
    if isinstance(value, dict):
        return {str(key): _json(part) for key, part in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


# --- statements ------------------------------------------------------------------------

_ORDER: Final = re.compile(r"^\s*(?P<column>.+?)(?:\s+(?P<direction>asc|desc))?\s*$", re.I)


def _ident(name: object, what: str) -> str:
    text = str(name)
    if not 1 <= len(text) <= MAX_IDENTIFIER_CHARS or "\x00" in text:
        raise NodeError(f"postgres: {what} {text[:80]!r} is not a valid name "
                        f"(1 to {MAX_IDENTIFIER_CHARS} characters)")  # fmt: skip
    return '"' + text.replace('"', '""') + '"'


def _table(params: Params, index: int) -> str:
    schema = params.optional_text("schema", index) or "public"
    return f"{_ident(schema, 'schema')}.{_ident(params.text('table', index), 'table')}"


def _object(params: Params, name: str, index: int, fallback: JsonObject | None) -> JsonObject:
    value = params.get(name, index)
    if value is None and fallback is not None:
        value = fallback
    if not isinstance(value, dict) or not value:
        raise NodeError(f"postgres: parameter {name!r} must be an object of column → value",
                        item_index=index)  # fmt: skip
    return value


def _where(where: Mapping[str, Any], arguments: list[Any]) -> str:
    parts = []
    for column, value in where.items():
        if value is None:
            parts.append(f"{_ident(column, 'column')} IS NULL")
        else:
            arguments.append(value)
            parts.append(f"{_ident(column, 'column')} = ${len(arguments)}")
    return " AND ".join(parts)


def _returning(params: Params, index: int) -> str:
    columns = params.array("returning", index)
    if not columns:
        return ""
    if columns == ["*"]:
        return " RETURNING *"
    return " RETURNING " + ", ".join(_ident(column, "column") for column in columns)


def _execute_query(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    return params.text("query", index), list(params.array("query_parameters", index))


def _select(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    arguments: list[Any] = []
    columns = params.get("columns", index) or ["*"]
    shown = "*" if columns == ["*"] else ", ".join(_ident(c, "column") for c in columns)
    sql = f"SELECT {shown} FROM {_table(params, index)}"  # noqa: S608 - names quoted by _ident, values bound
    where = params.get("where", index)
    if where:
        sql += " WHERE " + _where(_object(params, "where", index, None), arguments)
    order = []
    for entry in params.array("order_by", index):
        match = _ORDER.match(str(entry))
        assert match is not None  # the pattern matches any string
        direction = (match["direction"] or "asc").upper()
        order.append(f"{_ident(match['column'], 'column')} {direction}")
    if order:
        sql += " ORDER BY " + ", ".join(order)
    limit = params.get("limit", index)
    if limit is not None:
        arguments.append(int(limit))
        sql += f" LIMIT ${len(arguments)}"
    return sql, arguments


def _insert(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    sql, arguments = _insert_without_returning(params, item, index)
    return sql + _returning(params, index), arguments


def _update(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    values = _object(params, "values", index, None)
    arguments = list(values.values())
    sets = ", ".join(f"{_ident(column, 'column')} = ${n}" for n, column in enumerate(values, 1))
    where = _where(_object(params, "where", index, None), arguments)
    sql = f"UPDATE {_table(params, index)} SET {sets} WHERE {where}"  # noqa: S608 - names quoted by _ident, values bound
    return sql + _returning(params, index), arguments


def _upsert(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    sql, arguments = _insert_without_returning(params, item, index)
    keys = [str(column) for column in params.array("conflict_columns", index)]
    if not keys:
        raise NodeError("postgres upsert: conflict_columns must name at least one column",
                        item_index=index)  # fmt: skip
    values = _object(params, "values", index, item.json)
    missing = [key for key in keys if key not in values]
    if missing:
        raise NodeError(f"postgres upsert: values has no {missing[0]!r}, a conflict column",
                        item_index=index)  # fmt: skip
    updates = [c for c in values if c not in keys]
    target = ", ".join(_ident(key, "column") for key in keys)
    if updates:
        sets = ", ".join(f"{_ident(c, 'column')} = EXCLUDED.{_ident(c, 'column')}" for c in updates)
        sql += f" ON CONFLICT ({target}) DO UPDATE SET {sets}"
    else:
        sql += f" ON CONFLICT ({target}) DO NOTHING"
    return sql + _returning(params, index), arguments


def _insert_without_returning(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    values = _object(params, "values", index, item.json)
    columns = ", ".join(_ident(column, "column") for column in values)
    marks = ", ".join(f"${n}" for n in range(1, len(values) + 1))
    sql = f"INSERT INTO {_table(params, index)} ({columns}) VALUES ({marks})"  # noqa: S608 - names quoted by _ident, values bound
    return sql, list(values.values())


def _delete(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    arguments: list[Any] = []
    where = _where(_object(params, "where", index, None), arguments)
    sql = f"DELETE FROM {_table(params, index)} WHERE {where}"  # noqa: S608 - names quoted by _ident, values bound
    return sql + _returning(params, index), arguments


_STATEMENTS: Final[Mapping[str, Callable[[Params, Item, int], tuple[str, list[Any]]]]] = {
    "execute_query": _execute_query, "select": _select, "insert": _insert,
    "update": _update, "upsert": _upsert, "delete": _delete,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (Postgres,)
CREDENTIALS: tuple[CredentialType, ...] = (POSTGRES_CREDENTIAL,)
