"""Hourly usage from the stored executions: counted per workspace and hour, counted again
without doubling, recent hours refreshed and older ones kept."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from linkflow.services.usage import aggregate_usage
from linkflow.store import Database, Execution, NodeExecution, Usage
from tests.integration._rows import new_execution, new_workspace

NOW = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)


async def _execution_at(database: Database, workspace: uuid.UUID, at: datetime, nodes: int) -> None:
    execution = await new_execution(database, workspace)
    async with database.transaction() as session:
        await session.execute(update(Execution).where(Execution.id == execution.id)
                              .values(created_at=at))  # fmt: skip
        for n in range(nodes):
            session.add(NodeExecution(execution_id=execution.id, workspace_id=workspace,
                                      node_id=f"n{n}", node_type="set"))  # fmt: skip


async def _usage(database: Database, workspace: uuid.UUID) -> dict[tuple[str, int], int]:
    async with database.session() as session:
        rows = (await session.scalars(select(Usage).where(Usage.workspace_id == workspace))).all()
    return {(row.metric, row.period_start.astimezone(UTC).hour): row.quantity for row in rows}


async def test_usage_is_counted_per_workspace_and_hour_and_never_doubled(
    database: Database,
) -> None:
    mine, theirs = await new_workspace(database), await new_workspace(database)
    await _execution_at(database, mine, NOW - timedelta(minutes=50), nodes=3)  # 09:40
    await _execution_at(database, mine, NOW - timedelta(minutes=5), nodes=2)  # 10:25
    await _execution_at(database, mine, NOW - timedelta(minutes=1), nodes=0)
    await _execution_at(database, theirs, NOW - timedelta(minutes=2), nodes=4)
    await aggregate_usage(database, NOW)
    await aggregate_usage(database, NOW)  # a second scheduler, or the next round
    assert await _usage(database, mine) == {
        ("executions", 9): 1,
        ("node_runs", 9): 3,
        ("executions", 10): 2,
        ("node_runs", 10): 2,
    }
    assert await _usage(database, theirs) == {("executions", 10): 1, ("node_runs", 10): 4}

    # Later in the hour: one more execution is counted; an hour ago is not counted again
    # (its executions may be gone by retention, its count stays).
    await _execution_at(database, mine, NOW + timedelta(minutes=10), nodes=1)
    await aggregate_usage(database, NOW + timedelta(hours=1, minutes=5))
    usage = await _usage(database, mine)
    assert usage[("executions", 10)] == 3
    assert usage[("node_runs", 10)] == 3
    assert usage[("executions", 9)] == 1
