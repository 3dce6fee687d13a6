"""Requests that move a stored execution: resume accepted, cancel, dead letter.

Each is one compare-and-set on the execution's status, from the statuses the
transitions table allows (`store.transitions.sources`), and the event that
records it, appended at the next `seq` in the same transaction. So two racing
requests cannot both win (the second finds the status moved), and a request
racing a worker that appends the same `seq` fails whole (`StoreConflict`),
never half-written. The row is locked before the event is inserted, as the
writer's batches lock it, so the two never deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.store.enums import ExecutionStatus
from linkflow.store.errors import StoreConflict
from linkflow.store.models import Execution, ExecutionEvent
from linkflow.store.repositories.events import EventRepository, NewEvent
from linkflow.store.transitions import sources
from linkflow.store.types import JSONObject, utcnow

__all__ = ["move_execution"]


async def move_execution(
    session: AsyncSession,
    execution_id: uuid.UUID,
    to: ExecutionStatus,
    *,
    event_type: str,
    data: JSONObject,
    only_from: frozenset[ExecutionStatus] | None = None,
    values: dict[str, Any] | None = None,
    check: Callable[[ExecutionEvent | None], None] | None = None,
) -> NewEvent | None:
    """Move the execution to `to` (from `only_from`, within what the table allows) and
    append `event_type` with `data`; None when its status did not allow it.

    `check` sees the execution's last event before anything is appended and may raise
    to refuse the request (the caller's transaction then rolls back).
    """
    allowed = sources(to) if only_from is None else sources(to) & only_from
    result = await session.execute(
        update(Execution)
        .where(Execution.id == execution_id, Execution.status.in_(sorted(allowed)))
        .values(status=to, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return None
    tail = (
        await session.scalars(
            select(ExecutionEvent)
            .where(ExecutionEvent.execution_id == execution_id)
            .order_by(ExecutionEvent.seq.desc())
            .limit(1)
        )
    ).one_or_none()
    if check is not None:
        check(tail)
    event = NewEvent(execution_id, (tail.seq if tail else 0) + 1, event_type, None, data, utcnow())
    if await EventRepository(session).append_many([event]):
        raise StoreConflict(f"event {event.seq} of execution {execution_id} is taken")
    return event
