"""The MySQL / MariaDB integration: the `mysql` node (execute a query with bound
parameters, select, insert, update, upsert, delete) and the `mysql` credential, on
aiomysql (aio-libs' asyncio driver on PyMySQL's protocol implementation).

Decisions:
- Values are always parameters (`%s` placeholders, escaped by the driver), never
  spliced into SQL by this node; table and column names are backtick-quoted
  identifiers. An object or a list is written as JSON text (MariaDB's JSON is
  text). MySQL converts text to a column's type itself, so no per-type mapping
  is needed here (dates as `YYYY-MM-DD HH:MM:SS`).
- Rows come out as items (paired with the input item that asked for them),
  values as JSON: datetimes in ISO 8601, decimals as strings, binary as base64.
  A statement without rows gives `{row_count}` (and `inserted_id` for an insert):
  MySQL has no RETURNING.
- `upsert` is `INSERT ... ON DUPLICATE KEY UPDATE` (the table's primary or a unique
  key decides what a duplicate is; `conflict_columns`, when given, are left as they
  are).
- One connection per activation, autocommit; `LOCAL INFILE` is off, so a query
  cannot make the server read the worker's files.
- The host passes the SSRF guard (`ctx.resolve_host`) and the driver connects to
  the vetted address, except with `verify-full`, where the certificate is checked
  against the name.
- The server's warnings on a statement without rows (a value truncated to fit)
  come out with its `row_count`, as `warnings`.
- Errors name the operation and MySQL's error number; lost connections,
  deadlocks and lock wait timeouts may pass on a retry, others will not.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final

import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]

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

__all__ = ["CREDENTIALS", "MYSQL_CREDENTIAL", "NODES", "MySql"]

OPERATIONS: Final = ("execute_query", "select", "insert", "update", "upsert", "delete")
DEFAULT_TIMEOUT_S: Final = 30.0
"""Connecting and each statement; a longer report query sets `timeout_s`."""
DEFAULT_LIMIT: Final = 1000
"""select: rows per item unless `limit` says otherwise (a forgotten filter must not put
a whole table in the history)."""
MAX_IDENTIFIER_CHARS: Final = 64
SSL_MODES: Final = ("disable", "require", "verify-full")
# Client errors 2006/2013 (server gone, connection lost), 1205 lock wait timeout,
# 1213 deadlock, 1040 too many connections, 1053 server shutdown in progress.
_RETRYABLE: Final = frozenset({1040, 1053, 1205, 1213, 2003, 2006, 2013})

_REQUIRED: Final = {
    "execute_query": ("query",), "select": ("table",), "insert": ("table",),
    "update": ("table", "values", "where"), "upsert": ("table",), "delete": ("table", "where"),
}  # fmt: skip


async def _select_1(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """Connects and runs `SELECT 1`."""
    host, port = str(data["host"]), int(data.get("port") or 3306)
    connection = await _connect(ctx.resolve_host, data, ctx.timeout_s, "test")
    try:
        await _run(connection, "test", "SELECT 1", [], ctx.timeout_s)
    finally:
        connection.close()
    return f"connected to {data['database']} at {host}:{port} (SELECT 1)"


MYSQL_CREDENTIAL: Final = CredentialType(
    "mysql",
    "MySQL / MariaDB",
    "A MySQL or MariaDB database.",
    (
        CredentialField("host", required=True),
        CredentialField("port", "integer", default=3306, minimum=1, maximum=65535),
        CredentialField("database", required=True),
        CredentialField("user", required=True),
        CredentialField("password", secret=True),
        CredentialField(
            "ssl",
            default="disable",
            choices=SSL_MODES,
            description="require: TLS without checking the certificate; "
            "verify-full: TLS with the certificate checked against host.",
        ),
    ),
    check=_select_1,
)


class MySql(Node):
    type = "mysql"
    display_name = "MySQL / MariaDB"
    group = NodeGroup.ACTION
    description = (
        "Per item, one statement on a MySQL or MariaDB database (credential slot `mysql`). "
        "`execute_query` runs `query` with `query_parameters` bound to its `%s` "
        "placeholders; the other operations build the statement from `table`: `select` rows "
        "matching `where` (equality, AND), ordered by `order_by`, at most `limit`; `insert` "
        "`values` (default: the item's fields); `update` the rows matching `where`; "
        "`upsert` (insert, or update on a duplicate key); `delete` what matches `where`. "
        "Rows become items; a statement without rows gives one item with `row_count` (and "
        "`inserted_id` for an insert). Values are always bound, never spliced into the SQL."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"mysql": ("mysql",)}
    lineage = Lineage.EXPLICIT
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "execute_query",
                          "description": "What to do."},
            "query": {"type": "string", "minLength": 1,
                      "description": "execute_query: the SQL, with `%s` placeholders."},
            "query_parameters": {"type": "array", "default": [],
                                 "description": "execute_query: the placeholders' values."},
            "table": {"type": "string", "minLength": 1, "description": "The table."},
            "values": {"type": "object", "description": "insert, update, upsert: column → "
                       "value (default for insert and upsert: the item's fields)."},
            "where": {"type": "object", "description": "select, update, delete: column → "
                      "value, all equal (AND); null matches IS NULL."},
            "conflict_columns": {"type": "array", "items": {"type": "string"}, "default": [],
                                 "description": "upsert: columns a duplicate leaves unchanged "
                                 "(its key, typically)."},
            "columns": {"type": "array", "items": {"type": "string"},
                        "description": "select: the columns to read (default: all)."},
            "order_by": {"type": "array", "items": {"type": "string"}, "default": [],
                         "description": "select: columns, each optionally followed by ` desc`."},
            "limit": {"type": ["integer", "null"], "minimum": 1, "default": DEFAULT_LIMIT,
                      "description": "select: at most this many rows per item (null: all)."},
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
        connection: Any = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal connection
            operation = params.text("operation", index)
            sql, arguments = _STATEMENTS[operation](params, item, index)
            timeout_s = params.number("timeout_s", index)
            if connection is None:
                data = await ctx.credential("mysql")
                connection = await _connect(ctx.resolve_host, data, timeout_s, operation)
            rows = await _run(connection, operation, sql, arguments, timeout_s)
            return [item.derive(row, index) for row in rows]

        try:
            return await amap_items(ctx, apply)
        finally:
            if connection is not None:
                connection.close()


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


class _Cursor(aiomysql.DictCursor):  # type: ignore[misc]
    """aiomysql's dict cursor, keeping the server's warnings instead of raising them as
    Python warnings (which a process may turn into errors, or print without context)."""

    server_warnings: list[str]

    async def _show_warnings(self, conn: Any) -> None:
        found = await conn.show_warnings()
        self.server_warnings = [str(row[-1])[:200] for row in found or ()]


def _tls(mode: str) -> ssl.SSLContext | None:
    if mode == "disable":
        return None
    context = ssl.create_default_context()
    if mode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _connect(
    resolve: Resolve, data: Mapping[str, Any], timeout_s: float, operation: str
) -> Any:
    host, port = str(data["host"]), int(data.get("port") or 3306)
    addresses = await resolve(host, port)
    mode = str(data.get("ssl") or "disable")
    try:
        async with asyncio.timeout(timeout_s):
            return await aiomysql.connect(
                host=host if mode == "verify-full" else addresses[0], port=port,
                user=str(data["user"]), password=str(data.get("password") or ""),
                db=str(data["database"]), ssl=_tls(mode), connect_timeout=timeout_s,
                autocommit=True, charset="utf8mb4", local_infile=False,
                read_default_file=None, program_name="linkflow",
            )  # fmt: skip
    except pymysql.err.MySQLError as error:
        raise _node_error(operation, error) from None
    except TimeoutError:
        raise NodeError(f"mysql {operation}: connecting to {host}:{port} timed out",
                        retryable=True) from None  # fmt: skip
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise NodeError(f"mysql {operation}: cannot connect to {host}:{port}: {reason}",
                        retryable=True) from None  # fmt: skip


def _node_error(operation: str, error: Exception) -> NodeError:
    code, message = (*error.args, None, None)[:2]
    if not isinstance(code, int):
        code, message = None, str(error)
    text = f"mysql {operation}: {str(message)[:300]}" + (f" [error {code}]" if code else "")
    return NodeError(text, retryable=code in _RETRYABLE)


async def _run(
    connection: Any, operation: str, sql: str, arguments: list[Any], timeout_s: float
) -> list[JsonObject]:
    try:
        async with asyncio.timeout(timeout_s), connection.cursor(_Cursor) as cursor:
            cursor.server_warnings = []
            await cursor.execute(sql, [_bound(value) for value in arguments] or None)
            if cursor.description is None:
                out: JsonObject = {"row_count": cursor.rowcount}
                if operation == "insert":
                    out["inserted_id"] = cursor.lastrowid
                if cursor.server_warnings:
                    # MySQL's own notes (a value truncated, a row skipped): kept with the result.
                    out["warnings"] = cursor.server_warnings
                return [out]
            rows = await cursor.fetchall()
    except pymysql.err.MySQLError as error:
        raise _node_error(operation, error) from None
    except TimeoutError:
        # The connection is mid-statement: it cannot serve the next item.
        connection.close()
        raise NodeError(f"mysql {operation}: the statement timed out after {timeout_s:g} s",
                        retryable=True) from None  # fmt: skip
    except (TypeError, ValueError) as error:
        # PyMySQL formats the parameters into the query: a count that does not match fails here.
        raise NodeError(
            f"mysql {operation}: the parameters do not fit the query: {error}"
        ) from None
    return [{str(key): _json(value) for key, value in row.items()} for row in rows]


def _bound(value: Any) -> Any:
    """A JSON value as the driver escapes it: objects and lists as JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set):
        return sorted(value)
    return value


# --- statements ------------------------------------------------------------------------


def _ident(name: object, what: str) -> str:
    text = str(name)
    if not 1 <= len(text) <= MAX_IDENTIFIER_CHARS or "\x00" in text:
        raise NodeError(f"mysql: {what} {text[:80]!r} is not a valid name "
                        f"(1 to {MAX_IDENTIFIER_CHARS} characters)")  # fmt: skip
    return "`" + text.replace("`", "``") + "`"


def _table(params: Params, index: int) -> str:
    # `db.table` names another database of the same server.
    return ".".join(_ident(part, "table") for part in params.text("table", index).split(".", 1))


def _object(params: Params, name: str, index: int, fallback: JsonObject | None) -> JsonObject:
    value = params.get(name, index)
    if value is None and fallback is not None:
        value = fallback
    if not isinstance(value, dict) or not value:
        raise NodeError(f"mysql: parameter {name!r} must be an object of column → value",
                        item_index=index)  # fmt: skip
    return value


def _where(where: Mapping[str, Any], arguments: list[Any]) -> str:
    parts = []
    for column, value in where.items():
        if value is None:
            parts.append(f"{_ident(column, 'column')} IS NULL")
        else:
            arguments.append(value)
            parts.append(f"{_ident(column, 'column')} = %s")
    return " AND ".join(parts)


def _execute_query(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    return params.text("query", index), list(params.array("query_parameters", index))


def _select(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    arguments: list[Any] = []
    columns = params.get("columns", index) or ["*"]
    shown = "*" if columns == ["*"] else ", ".join(_ident(c, "column") for c in columns)
    sql = f"SELECT {shown} FROM {_table(params, index)}"  # noqa: S608 - names quoted, values bound
    if params.get("where", index):
        sql += " WHERE " + _where(_object(params, "where", index, None), arguments)
    order = []
    for entry in params.array("order_by", index):
        column, _, direction = str(entry).strip().rpartition(" ")
        if direction.lower() not in {"asc", "desc"} or not column:
            column, direction = str(entry).strip(), "asc"
        order.append(f"{_ident(column.strip(), 'column')} {direction.upper()}")
    if order:
        sql += " ORDER BY " + ", ".join(order)
    limit = params.get("limit", index)
    if limit is not None:
        arguments.append(int(limit))
        sql += " LIMIT %s"
    return sql, arguments


def _insert(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    values = _object(params, "values", index, item.json)
    columns = ", ".join(_ident(column, "column") for column in values)
    marks = ", ".join("%s" for _ in values)
    sql = f"INSERT INTO {_table(params, index)} ({columns}) VALUES ({marks})"  # noqa: S608 - names quoted, values bound
    return sql, list(values.values())


def _update(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    values = _object(params, "values", index, None)
    arguments = list(values.values())
    sets = ", ".join(f"{_ident(column, 'column')} = %s" for column in values)
    where = _where(_object(params, "where", index, None), arguments)
    return f"UPDATE {_table(params, index)} SET {sets} WHERE {where}", arguments  # noqa: S608 - names quoted, values bound


def _upsert(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    sql, arguments = _insert(params, item, index)
    values = _object(params, "values", index, item.json)
    keep = {str(column) for column in params.array("conflict_columns", index)}
    updates = [column for column in values if column not in keep] or list(values)[:1]
    sets = ", ".join(f"{_ident(c, 'column')} = VALUES({_ident(c, 'column')})" for c in updates)
    return f"{sql} ON DUPLICATE KEY UPDATE {sets}", arguments


def _delete(params: Params, item: Item, index: int) -> tuple[str, list[Any]]:
    arguments: list[Any] = []
    where = _where(_object(params, "where", index, None), arguments)
    return f"DELETE FROM {_table(params, index)} WHERE {where}", arguments  # noqa: S608 - names quoted, values bound


_STATEMENTS: Final[Mapping[str, Callable[[Params, Item, int], tuple[str, list[Any]]]]] = {
    "execute_query": _execute_query, "select": _select, "insert": _insert,
    "update": _update, "upsert": _upsert, "delete": _delete,
}  # fmt: skip

NODES: tuple[type[Node], ...] = (MySql,)
CREDENTIALS: tuple[CredentialType, ...] = (MYSQL_CREDENTIAL,)
