"""The `postgres_trigger` node: new rows of a PostgreSQL query, polled (credential
`postgres`, as the `postgres` node's).

Every `interval_s` the scheduler runs `query` wrapped as
``SELECT * FROM (<query>) AS polled WHERE "<cursor_column>" > $1 ORDER BY
"<cursor_column>" LIMIT <max_rows + 1>`` with the cursor kept from the previous poll,
and starts one execution with the rows found, one item each (none found: no
execution). The cursor is the `cursor_column` value of the last row fired, stored
with the execution it fired (`linkflow.scheduler.polling`), so across a crash or
a restart every row fires once.

Decisions:
- The first poll after activation only records where the query's rows end (the
  largest `cursor_column` value): rows that existed before fire only with
  `emit_existing`. Editing the node's parameters starts over the same way.
- The cursor column must only grow: an `id` from a sequence, an `updated_at` set
  on every write. A row that becomes visible with a value at or below the cursor
  is never fired: with concurrent writers, a transaction that took id 11 and
  commits after the one that took id 12 was polled is missed, so poll a column
  the writers set in commit order (or a view that lags behind the newest rows).
  Rows whose cursor value is NULL never fire.
- At most `max_rows` rows fire per poll, the rest at the following polls. Rows
  sharing one cursor value are never split between two polls (the next poll asks
  for values above the last one); when more than `max_rows` rows share one, the
  poll fails asking for a larger `max_rows`.
- A run by hand (the editor's test) emits the newest `max_rows` rows and moves no
  cursor.
- Values come out as the `postgres` node gives them (timestamps in ISO 8601,
  numerics as strings); the cursor is kept in that form and bound back as the
  column's type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Final

from linkflow.nodes.integrations.postgres import (
    DEFAULT_TIMEOUT_S,
    _connect,
    _ident,
    _run,
)
from linkflow.nodes.polling import INTERVAL_SCHEMA, Poll, PollContext, PollingTrigger
from linkflow.nodes.sdk import JsonObject, Node, NodeContext, NodeError

__all__ = ["NODES", "PostgresTrigger"]

DEFAULT_MAX_ROWS: Final = 100
"""Rows per execution unless `max_rows` says otherwise: a backlog fires in batches
rather than as one execution with a whole table in its input."""
MAX_MAX_ROWS: Final = 10_000


class PostgresTrigger(PollingTrigger):
    type = "postgres_trigger"
    display_name = "PostgreSQL Trigger"
    description = (
        "Starts the workflow with the new rows of a PostgreSQL query (credential slot "
        "`postgres`), polled every `interval_s` seconds: the rows of `query` whose "
        "`cursor_column` is above the largest value already fired, oldest first, at most "
        "`max_rows` per execution. The cursor column must only grow (an id from a sequence, "
        "an updated_at set on every write). Rows that existed at activation fire only with "
        "`emit_existing`. Nothing new: no execution."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"postgres": ("postgres",)}
    literal_parameters: ClassVar[frozenset[str]] = frozenset(
        {"query", "cursor_column", "interval_s", "max_rows", "emit_existing", "timeout_s"}
    )
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1,
                      "description": "A SELECT whose rows are watched, e.g. "
                      "`SELECT * FROM orders WHERE status = 'paid'` (no placeholders)."},
            "cursor_column": {"type": "string", "minLength": 1,
                              "description": "A column of the query's rows that only grows "
                              "(e.g. `id`, `updated_at`)."},
            "interval_s": INTERVAL_SCHEMA,
            "max_rows": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_ROWS,
                         "default": DEFAULT_MAX_ROWS,
                         "description": "At most this many rows per execution."},
            "emit_existing": {"type": "boolean", "default": False,
                              "description": "Fire the rows that exist at activation too."},
            "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600,
                          "default": DEFAULT_TIMEOUT_S,
                          "description": "Connecting, and the query."},
        },
        "required": ["query", "cursor_column"],
        "additionalProperties": False,
    }  # fmt: skip
    emits = (
        "One item per new row, the row's columns as the `postgres` node gives them, oldest "
        "(smallest `cursor_column`) first."
    )

    async def poll(self, ctx: PollContext, parameters: Mapping[str, Any], cursor: Any) -> Poll:
        query, column = _query(parameters), _column(parameters)
        limit = int(parameters.get("max_rows") or DEFAULT_MAX_ROWS)
        if cursor is None and not parameters.get("emit_existing"):
            sql = f"SELECT max(polled.{column}) AS last FROM ({query}) AS polled"  # noqa: S608 - the user's own query; the column quoted by _ident
            rows = await _fetch(ctx, parameters, sql, [])
            return Poll((), {"after": rows[0]["last"] if rows else None})
        after = cursor.get("after") if isinstance(cursor, dict) else None
        arguments: list[Any] = [] if after is None else [after]
        where = f"polled.{column} IS NOT NULL" if after is None else f"polled.{column} > $1"
        sql = (f"SELECT * FROM ({query}) AS polled WHERE {where} "  # noqa: S608 - as above
               f"ORDER BY polled.{column} LIMIT {limit + 1}")  # fmt: skip
        rows = _batch(await _fetch(ctx, parameters, sql, arguments), parameters, limit)
        if not rows:
            return Poll((), {"after": after})
        return Poll(rows, {"after": rows[-1][str(parameters["cursor_column"])]})

    async def sample(self, ctx: NodeContext) -> Sequence[JsonObject]:
        parameters = ctx.raw_parameters
        query, column = _query(parameters), _column(parameters)
        limit = int(parameters.get("max_rows") or DEFAULT_MAX_ROWS)
        sql = (f"SELECT * FROM ({query}) AS polled WHERE polled.{column} IS NOT NULL "  # noqa: S608 - as above
               f"ORDER BY polled.{column} DESC LIMIT {limit}")  # fmt: skip
        return list(reversed(await _fetch(ctx, parameters, sql, [])))


def _query(parameters: Mapping[str, Any]) -> str:
    query = str(parameters.get("query") or "").strip().rstrip(";").strip()
    if not query:
        raise NodeError("postgres_trigger: parameter 'query' must be a SELECT")
    return query


def _column(parameters: Mapping[str, Any]) -> str:
    return _ident(parameters.get("cursor_column") or "", "cursor column")


async def _fetch(
    ctx: PollContext, parameters: Mapping[str, Any], sql: str, arguments: list[Any]
) -> list[JsonObject]:
    timeout_s = float(parameters.get("timeout_s") or DEFAULT_TIMEOUT_S)
    data = await ctx.credential("postgres")
    connection = await _connect(ctx.resolve_host, data, timeout_s, "poll")
    try:
        return await _run(connection, "poll", sql, arguments)
    finally:
        await connection.close()


def _batch(rows: list[JsonObject], parameters: Mapping[str, Any], limit: int) -> list[JsonObject]:
    """The rows to fire: at most `limit`, never splitting rows of one cursor value."""
    column = str(parameters["cursor_column"])
    if rows and column not in rows[0]:
        raise NodeError(f"postgres_trigger poll: the query's rows have no column {column!r}")
    if len(rows) <= limit:
        return rows
    batch, boundary = rows[:limit], rows[limit][column]
    while batch and batch[-1][column] == boundary:
        batch.pop()
    if not batch:
        raise NodeError(f"postgres_trigger poll: more than {limit} rows have {column} = "
                        f"{boundary!r}; raise max_rows")  # fmt: skip
    return batch


NODES: tuple[type[Node], ...] = (PostgresTrigger,)
