"""Execution histories: append-only, ordered by `seq`, unique on ``(execution_id, seq)``.

Reached by execution id, not by workspace: callers authorise the execution
through `ExecutionRepository` first. Appends use ``INSERT ... ON CONFLICT DO
NOTHING``, so a refused append leaves the transaction usable.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.store.errors import StoreConflict
from linkflow.store.models import ExecutionEvent
from linkflow.store.types import JSONObject, utcnow

__all__ = ["EventRepository", "NewEvent"]


@dataclass(slots=True)
class NewEvent:
    """An event to append: the `seq`-th entry of `execution_id`'s history. (Not frozen:
    nine are made per execution on the hot path, and a frozen dataclass's `__init__`
    sets each field through `object.__setattr__`.)"""

    execution_id: uuid.UUID
    seq: int
    type: str
    node_id: str | None = None
    data: JSONObject = field(default_factory=dict)
    created_at: datetime | None = None
    """The time the writer recorded (the engine replays with it); default: now."""


class EventRepository:
    """Appends to and reads execution histories (append-only, ordered by `seq`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session: Final = session

    def _insert(self) -> postgresql.Insert | sqlite.Insert:
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        return insert(ExecutionEvent)

    async def append(
        self,
        execution_id: uuid.UUID,
        seq: int,
        type: str,
        *,
        node_id: str | None = None,
        data: JSONObject | None = None,
        created_at: datetime | None = None,
    ) -> ExecutionEvent:
        """Append one event; `StoreConflict` if `seq` is already taken for the execution."""
        values = {
            "execution_id": execution_id,
            "seq": seq,
            "type": type,
            "node_id": node_id,
            "data": {} if data is None else data,
            "created_at": created_at or utcnow(),
        }
        statement = (
            self._insert()
            .values(values)
            .on_conflict_do_nothing(index_elements=["execution_id", "seq"])
            .returning(ExecutionEvent)
        )
        event = (await self.session.scalars(statement)).one_or_none()
        if event is None:
            msg = f"event {seq} of execution {execution_id} already exists"
            raise StoreConflict(msg)
        return event

    async def append_many(self, events: Sequence[NewEvent]) -> list[tuple[uuid.UUID, int]]:
        """Append `events` in one statement; returns the ``(execution_id, seq)`` refused.

        Events whose seq is free are inserted even when others are refused: a
        batch mixes many executions, and one stale writer must not fail the rest.
        """
        if not events:
            return []
        now = utcnow()
        rows = [
            {
                "execution_id": event.execution_id,
                "seq": event.seq,
                "type": event.type,
                "node_id": event.node_id,
                "data": event.data,
                "created_at": event.created_at or now,
            }
            for event in events
        ]
        statement = (
            self._insert()
            .values(rows)
            .on_conflict_do_nothing(index_elements=["execution_id", "seq"])
            .returning(ExecutionEvent.execution_id, ExecutionEvent.seq)
        )
        inserted = {(row[0], row[1]) for row in await self.session.execute(statement)}
        return [(e.execution_id, e.seq) for e in events if (e.execution_id, e.seq) not in inserted]

    async def read(
        self, execution_id: uuid.UUID, *, after_seq: int | None = None
    ) -> Sequence[ExecutionEvent]:
        """The execution's events in `seq` order, optionally only those after `after_seq`."""
        statement = select(ExecutionEvent).where(ExecutionEvent.execution_id == execution_id)
        if after_seq is not None:
            statement = statement.where(ExecutionEvent.seq > after_seq)
        return (await self.session.scalars(statement.order_by(ExecutionEvent.seq))).all()

    async def last_seq(self, execution_id: uuid.UUID) -> int | None:
        """The highest `seq` appended for the execution, None if it has no events."""
        statement = select(func.max(ExecutionEvent.seq)).where(
            ExecutionEvent.execution_id == execution_id
        )
        return (await self.session.execute(statement)).scalar_one()
