"""Hourly usage per workspace, counted from what the database holds (the `usage` table).

The scheduler (`serve`'s, or the leading `linkflow scheduler`) calls `aggregate_usage`
every few minutes. Each call counts again, per workspace, the executions created in
the current hour and in the one before, and the node runs of those executions, and
stores the counts as they are (an upsert of the total, never an increment): a
scheduler that dies mid-way, two that both believe they lead, or an execution resumed
by another worker count nothing twice, and an execution counts in the hour it was
created even if it ends later. Older hours are final: retention may delete their
executions afterwards, and their counts must stay.

Metrics: `executions`, `node_runs`. Billing (plans, limits, alerts) reads these rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from linkflow.store import Database, Execution, NodeExecution, Usage, utcnow

__all__ = ["RECOUNTED_HOURS", "aggregate_usage", "hour_of"]

RECOUNTED_HOURS: Final = 2
"""The current hour and the one before are counted again at each call: the node runs of
an execution created at 10:59 go on after 11:00."""


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def aggregate_usage(database: Database, now: datetime | None = None) -> int:
    """Count the recent hours again (see the module's doc); returns the rows written."""
    current = hour_of(now or datetime.now(UTC))
    written = 0
    for back in reversed(range(RECOUNTED_HOURS)):
        start = current - timedelta(hours=back)
        written += await _count_hour(database, start, start + timedelta(hours=1))
    return written


async def _count_hour(database: Database, start: datetime, end: datetime) -> int:
    in_hour = (Execution.created_at >= start) & (Execution.created_at < end)
    async with database.reader() as session:
        executions = (await session.execute(
            select(Execution.workspace_id, func.count()).where(in_hour)
            .group_by(Execution.workspace_id)
        )).all()  # fmt: skip
        node_runs = (await session.execute(
            select(Execution.workspace_id, func.count(NodeExecution.id))
            .join(NodeExecution, NodeExecution.execution_id == Execution.id)
            .where(in_hour).group_by(Execution.workspace_id)
        )).all()  # fmt: skip
    rows = [
        {"id": uuid.uuid4(), "workspace_id": workspace_id, "metric": metric,
         "period_start": start, "quantity": int(count), "updated_at": utcnow()}
        for metric, counts in (("executions", executions), ("node_runs", node_runs))
        for workspace_id, count in counts
    ]  # fmt: skip
    if not rows:
        return 0
    insert = postgresql.insert if database.dialect == "postgresql" else sqlite.insert
    statement = insert(Usage).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["workspace_id", "metric", "period_start"],
        set_={"quantity": statement.excluded.quantity, "updated_at": statement.excluded.updated_at},
    )
    async with database.transaction() as session:
        await session.execute(statement)
    return len(rows)
