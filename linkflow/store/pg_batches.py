"""The group-commit writer's batches on PostgreSQL: one psycopg connection in pipeline mode.

Why psycopg and not the pool's asyncpg: a batch is about ten statements (the new
executions, the fence's two locked reads and the takes, the events, the row
projections, node rows, lease actions), and asyncpg waits for each statement's
answer before it sends the next. On loopback that wait, with SQLAlchemy's adapter
around it, was about 150 µs a statement: a batch cost 1.5-2 ms of waiting, and a
webhook execution (two batches) spent more time waiting on its writes than doing
anything else (issue 16). libpq's pipeline mode sends statements without waiting;
psycopg exposes it. A batch now waits twice: once for the fence's reads (sent with
everything before them), once for the writes and the commit.

The pipeline is optimistic about one thing: events go in with a plain insert, so an
event whose place is taken (a retried write, or two claims of one place: rare) fails
the transaction instead of being reported. The batch is then rolled back and written
again unpipelined, statement by statement, by the same `write_batch` that reports
taken places one by one (see `store.batch`). Any other error is raised: the writer
decides what it means (`services.writer`).

Use a `PostgresBatches` from one thread only: the writer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg import errors
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.engine import make_url

from linkflow.store.batch import Outcome, WriteOp, write_batch
from linkflow.store.bulk import BulkStatements, Rows

__all__ = ["APPLICATION_NAME", "PostgresBatches", "conninfo"]

CONNECT_TIMEOUT_S: Final = 10
"""As the pool's (`store.database.POSTGRES_CONNECT_TIMEOUT_S`)."""
APPLICATION_NAME: Final = "linkflow writer"
"""How the writer's connections show in ``pg_stat_activity`` (unless the URL names one)."""


def conninfo(url: str) -> dict[str, Any]:
    """libpq connection parameters of a LinkFlow database URL (``postgresql+asyncpg://``,
    see `store.database.normalize_url`). asyncpg's ``ssl`` query parameter becomes
    libpq's ``sslmode`` (same values); other parameters are passed as they are."""
    parsed = make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host, "port": parsed.port, "user": parsed.username,
        "password": parsed.password, "dbname": parsed.database,
        "connect_timeout": CONNECT_TIMEOUT_S, "application_name": APPLICATION_NAME,
    }  # fmt: skip
    for key, value in parsed.query.items():
        text = value if isinstance(value, str) else value[-1]
        params["sslmode" if key == "ssl" else key] = text
    return {key: value for key, value in params.items() if value is not None}


class _PipelineSink:
    """A `Sink` on a connection in pipeline mode: nothing waits until a read's rows are
    asked for (or the transaction commits)."""

    pipelined = True

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def executemany(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self.connection.cursor().executemany(sql, rows)

    def fetch(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self.query(sql, params)()

    def query(self, sql: str, params: tuple[Any, ...]) -> Rows:
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return cursor.fetchall


class _PlainSink(_PipelineSink):
    """Statement after statement: what a batch needs when a taken place is to be told."""

    pipelined = False

    def query(self, sql: str, params: tuple[Any, ...]) -> Rows:
        rows = self.connection.execute(sql, params).fetchall()
        return lambda: rows


class PostgresBatches:
    """Writes batches on a connection of its own, each in one transaction.

    The connection is in autocommit mode and each batch says ``BEGIN`` and ``COMMIT``
    itself, inside the pipeline: psycopg's own transaction handling syncs the pipeline
    at the implicit ``BEGIN`` and again at `commit()`, two more waits per batch."""

    def __init__(self, url: str, shard: int = 0) -> None:
        """`shard`: which of the writer's connections this is (`store.batch`)."""
        self._params = conninfo(url)
        self._shard = shard
        self._connection: psycopg.Connection[Any] | None = None
        # psycopg's dialect, positional: the statements bind tuples, as on SQLite.
        dialect = psycopg_dialect.dialect(paramstyle="format")  # type: ignore[no-untyped-call]
        self._statements = BulkStatements(dialect)

    def _connected(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                connection.close()
            # A new connection for each one lost (a restarted server, a failover): the
            # batch that met the loss failed, and its callers were told.
            connection = self._connection = psycopg.connect(**self._params, autocommit=True)
        return connection

    def write(self, batch: Sequence[WriteOp]) -> Outcome:
        connection = self._connected()
        try:
            with connection.pipeline():
                connection.execute("BEGIN")
                outcome = write_batch(_PipelineSink(connection), self._statements, batch,
                                      shard=self._shard)  # fmt: skip
                connection.execute("COMMIT")
            return outcome
        except errors.UniqueViolation:
            self._roll_back(connection)
        except BaseException:
            self._roll_back(connection)
            raise
        try:  # a taken place: again, each taken place reported (the batch's rules apply)
            connection.execute("BEGIN")
            outcome = write_batch(_PlainSink(connection), self._statements, batch,
                                  shard=self._shard)  # fmt: skip
            connection.execute("COMMIT")
        except BaseException:
            self._roll_back(connection)
            raise
        return outcome

    @staticmethod
    def _roll_back(connection: psycopg.Connection[Any]) -> None:
        if connection.closed or connection.broken:
            return  # the next batch connects again
        try:
            connection.execute("ROLLBACK")
        except psycopg.Error:
            connection.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
