"""The statements that make one worker the owner of an execution: leases and fencing.

A lease row (`execution_leases`) says which worker may write an execution's
history and rows, and until when. Its `owner` is the lease's id: unique per
acquisition (a process id and a counter), so it doubles as the fencing token
of every write made under it. `fencing_token` counts the acquisitions (it only
grows while the row lives) and is what operators see.

Inside the group-commit writer's transaction (`store.batch.write_batch`):
- `take` inserts the row, or takes it over when it has expired (or is already
  this lease's: a retried batch); a lease that is held is left alone;
- `held` reads the owners of the batch's executions, locking them against a
  takeover until the batch commits (``FOR SHARE`` on PostgreSQL; SQLite's
  ``BEGIN IMMEDIATE`` already serialises writers), so a write checked against
  the owner is never committed after another worker took the lease over;
- `revoke` ends a lease whose write was refused (a taken `seq`), so that
  nothing written under it afterwards is accepted, in this batch or a later one.
An owner never comes back once replaced: a write refused once stays refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from sqlalchemy import Table, and_, bindparam, case, delete, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from linkflow.store.models import Execution, ExecutionLease

__all__ = ["FencingStatements", "InQuery"]

_LEASES: Final = cast(Table, ExecutionLease.__table__)
_EXECUTIONS: Final = cast(Table, Execution.__table__)
IN_CHUNK: Final = 256
"""Most ids in one `IN (...)` read; a batch's ids are read in power-of-two chunks, so at
most nine statements per query are ever compiled."""
REVOKED: Final = "revoked:"
"""Prefix of the owner of a revoked lease: no worker's lease id starts with it."""


class InQuery:
    """A read of rows whose id is among a batch's ids (``WHERE <column> IN (...)``),
    compiled once per chunk size; `convert` turns an id into the driver's value."""

    def __init__(self, make: Any, dialect: Dialect, convert: Any) -> None:
        self._make = make
        self._dialect = dialect
        self._convert = convert
        self._compiled: dict[int, str] = {}

    def _sql(self, count: int) -> str:
        sql = self._compiled.get(count)
        if sql is None:
            names = [bindparam(f"id_{i}", type_=_LEASES.c.execution_id.type) for i in range(count)]
            sql = self._compiled[count] = str(self._make(names).compile(dialect=self._dialect))
        return sql

    def fetch(self, sink: Any, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        return self.query(sink, ids)()

    def query(self, sink: Any, ids: Sequence[Any]) -> Callable[[], list[tuple[Any, ...]]]:
        """Send the read now (`Sink.query`), its rows when called."""
        pending = []
        convert = self._convert
        start = 0
        while start < len(ids):
            size = min(IN_CHUNK, 1 << ((len(ids) - start).bit_length() - 1))
            chunk = ids[start : start + size]
            start += size
            params = tuple(convert(value) if convert else value for value in chunk)
            pending.append(sink.query(self._sql(size), params))
        return lambda: [row for rows in pending for row in rows()]


class FencingStatements:
    """Lease and status statements of the writer's batches, for one dialect."""

    def __init__(self, dialect: Dialect, prepare: Any, convert_id: Any) -> None:
        postgres = dialect.name == "postgresql"
        dialect_insert = postgresql.insert if postgres else sqlite.insert
        fresh = dialect_insert(_LEASES).values(
            execution_id=bindparam("execution_id"), owner=bindparam("owner"),
            expires_at=bindparam("expires_at"), fencing_token=literal_column("1"),
            acquired_at=bindparam("at"), renewed_at=bindparam("at"),
        )  # fmt: skip
        mine = _LEASES.c.owner == fresh.excluded.owner
        self.take = prepare(
            fresh.on_conflict_do_update(
                index_elements=["execution_id"],
                set_={
                    "owner": fresh.excluded.owner,
                    "expires_at": fresh.excluded.expires_at,
                    "fencing_token": case(
                        (mine, _LEASES.c.fencing_token),
                        else_=_LEASES.c.fencing_token + literal_column("1"),
                    ),
                    "acquired_at": fresh.excluded.acquired_at,
                    "renewed_at": fresh.excluded.renewed_at,
                },
                where=or_(_LEASES.c.expires_at < fresh.excluded.acquired_at, mine),
            ),
            dialect,
        )
        held_by = and_(
            _LEASES.c.execution_id == bindparam("execution_id"),
            _LEASES.c.owner == bindparam("owner"),
        )
        self.renew = prepare(
            update(_LEASES).where(held_by).values(
                expires_at=bindparam("expires_at", type_=_LEASES.c.expires_at.type),
                renewed_at=bindparam("at", type_=_LEASES.c.renewed_at.type),
            ),
            dialect,
        )  # fmt: skip
        self.release = prepare(
            update(_LEASES).where(held_by).values(
                expires_at=bindparam("at", type_=_LEASES.c.expires_at.type),
            ),
            dialect,
        )  # fmt: skip
        self.drop = prepare(delete(_LEASES).where(held_by), dialect)
        self.revoke = prepare(
            update(_LEASES).where(held_by).values(
                owner=bindparam("revoked", type_=_LEASES.c.owner.type),
                expires_at=bindparam("at", type_=_LEASES.c.expires_at.type),
            ),
            dialect,
        )  # fmt: skip

        def owners(ids: list[Any]) -> Any:
            statement = select(_LEASES.c.execution_id, _LEASES.c.owner).where(
                _LEASES.c.execution_id.in_(ids)
            )
            # Ordered locks: two batches locking the same leases cannot deadlock.
            return statement.order_by(_LEASES.c.execution_id).with_for_update(read=True)

        def statuses(ids: list[Any]) -> Any:
            statement = select(_EXECUTIONS.c.id, _EXECUTIONS.c.status).where(
                _EXECUTIONS.c.id.in_(ids)
            )
            return statement.order_by(_EXECUTIONS.c.id).with_for_update()

        def both(ids: list[Any]) -> Any:
            joined = _EXECUTIONS.outerjoin(_LEASES, _LEASES.c.execution_id == _EXECUTIONS.c.id)
            return select(_EXECUTIONS.c.id, _EXECUTIONS.c.status, _LEASES.c.owner).select_from(
                joined
            ).where(_EXECUTIONS.c.id.in_(ids))

        self.held = InQuery(owners, dialect, convert_id)
        """(execution_id, owner) of the leases of the given executions, locked."""
        self.statuses = InQuery(statuses, dialect, convert_id)
        """(id, status) of the given executions, locked for the batch's status changes."""
        self.both = None if postgres else InQuery(both, dialect, convert_id)
        """SQLite: (id, status, owner) in one read, taken after the batch's takes; its
        ``BEGIN IMMEDIATE`` already holds every row still (PostgreSQL needs the two
        locked reads: a lock cannot reach the outer side of a join)."""
