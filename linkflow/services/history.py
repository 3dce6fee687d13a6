"""An execution's history stored in `execution_events`: the engine's `History` protocol.

Each append is its own transaction, and the `(execution_id, seq)` unique key
turns a second writer's append into `HistoryConflict`: a worker that lost its
lease cannot record a step. Event timestamps are stored as the engine recorded
them, because the engine replays with them (a node's `now`, the workflow's
deadline).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from linkflow.engine import Event, EventType, HistoryConflict
from linkflow.store import Database, EventRepository, ExecutionEvent, NewEvent, StoreConflict

__all__ = ["DatabaseHistory", "event_from_row", "read_events"]


def event_from_row(row: ExecutionEvent | NewEvent) -> Event:
    """An `execution_events` row (stored, or about to be) as the engine's event."""
    assert row.created_at is not None
    return Event(row.seq, EventType(row.type), row.node_id, dict(row.data), row.created_at)


async def read_events(database: Database, execution_id: uuid.UUID) -> list[Event]:
    """An execution's whole history, in `seq` order."""
    async with database.session() as session:
        rows = await EventRepository(session).read(execution_id)
        return [event_from_row(row) for row in rows]


class DatabaseHistory:
    """`History` for one execution, backed by the database."""

    def __init__(self, database: Database, execution_id: uuid.UUID) -> None:
        self.database = database
        self.execution_id = execution_id

    async def read(self) -> Sequence[Event]:
        return await read_events(self.database, self.execution_id)

    async def flush(self) -> None:
        """Each append is its own committed transaction: nothing is pending."""

    async def append(self, event: Event) -> None:
        try:
            async with self.database.transaction() as session:
                await EventRepository(session).append(
                    self.execution_id, event.seq, event.type.value,
                    node_id=event.node_id, data=event.data, created_at=event.timestamp,
                )  # fmt: skip
        except StoreConflict as conflict:
            raise HistoryConflict(str(conflict)) from None
