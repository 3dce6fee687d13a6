"""The group-commit writer's batches on SQLite: one sqlite3 connection of its own.

Where they run: in the writer process of `linkflow serve` (`store.writer_process`),
or in the writer's own thread (tests, tools). Either way one connection writes, in
``BEGIN IMMEDIATE`` transactions: SQLite has one writer at a time, and taking its
lock up front spares the busy-retry of a deferred transaction that upgrades.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from linkflow.store.batch import Outcome, WriteOp, write_batch
from linkflow.store.bulk import BulkStatements, SQLiteSink

__all__ = ["SQLiteBatches"]


class SQLiteBatches:
    """Writes batches on one sqlite3 connection of its own, each in one ``BEGIN
    IMMEDIATE`` transaction: the writer thread's (in-process mode) or the child's.
    Use it from one thread only: the one that made it."""

    def __init__(self, url: str) -> None:
        from linkflow.store.database import sqlite_writer_engine

        self._engine = sqlite_writer_engine(url)
        # Opened through the engine for its pragmas (WAL, busy timeout, foreign keys);
        # the pool's handle is held, or the pool would take the connection back.
        self._checkout = self._engine.raw_connection()
        connection = self._checkout.driver_connection
        assert isinstance(connection, sqlite3.Connection)
        self._connection = connection
        self._sink = SQLiteSink(connection)
        self._statements = BulkStatements(self._engine.dialect)

    def write(self, batch: Sequence[WriteOp]) -> Outcome:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            outcome = write_batch(self._sink, self._statements, batch)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return outcome

    def close(self) -> None:
        self._checkout.close()
        self._engine.dispose()
