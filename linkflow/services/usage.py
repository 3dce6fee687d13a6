"""Usage per workspace, counted in the transactions that create what it counts.

Metrics (rows of the `usage` table):
- `executions`: one row per workspace and billing period (`period_start` the period's
  start), one more for each execution created, in the transaction that inserts it;
- `node_runs`: one row per workspace and hour, one more for each `node.completed` or
  `node.failed` event a worker's write inserts.

Nothing is counted in memory, so a process that dies loses no count, and nothing is
counted twice: an execution is inserted once, and a worker that resumes an execution
after another died appends only the events that were not stored (a retried write of a
stored event counts nothing). Most executions and every node run are counted by the
group-commit writer in its batches (`store.batch`, which also refuses a new execution
over its plan's limits); `claim_start` does the same for the executions created in a
transaction of their own (a schedule's tick, a sub-workflow), under the same row lock.

Retention may delete executions afterwards: their counts stay.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.store import Execution, ExecutionStatus, Usage, utcnow
from linkflow.store.batch import CONCURRENT_LIMIT, EXECUTIONS, EXECUTIONS_LIMIT, NODE_RUNS, Quota

__all__ = ["EXECUTIONS", "NODE_RUNS", "UNFINISHED", "claim_start"]

UNFINISHED: Final = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)
"""What `max_concurrent_executions` counts: executions waiting for a worker or running
(a waiting one holds no worker)."""


async def claim_start(
    session: AsyncSession, workspace_id: uuid.UUID, quota: Quota, *, dialect: str,
    inserted: int = 0,
) -> tuple[str, int, int] | None:  # fmt: skip
    """Count one more execution of `workspace_id` in the caller's transaction, unless a
    limit of `quota` is reached: then (limit, value, usage) and nothing is counted (the
    caller rolls back or does not insert). `inserted`: the caller's transaction holds
    that many of the workspace's new executions already (not counted as unfinished).

    Locks the workspace's counter row to the end of the transaction, as the writer's
    batches do, so of concurrent starts at the limit exactly one passes."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    key = {"workspace_id": workspace_id, "metric": EXECUTIONS, "period_start": quota.period_start}
    counter = insert(Usage).values(id=uuid.uuid4(), quantity=literal_column("0"),
                                   updated_at=utcnow(), **key)  # fmt: skip
    used = int(await session.scalar(
        counter.on_conflict_do_update(
            index_elements=list(key), set_={"quantity": Usage.quantity}
        ).returning(Usage.quantity)
    ) or 0)  # fmt: skip
    if quota.executions is not None and used >= quota.executions:
        return EXECUTIONS_LIMIT, quota.executions, used
    if quota.concurrent is not None:
        unfinished = int(await session.scalar(
            select(func.count()).select_from(Execution).where(
                Execution.workspace_id == workspace_id, Execution.status.in_(UNFINISHED)
            )
        ) or 0) - inserted  # fmt: skip
        if unfinished >= quota.concurrent:
            return CONCURRENT_LIMIT, quota.concurrent, unfinished
    await session.execute(
        update(Usage)
        .where(Usage.workspace_id == workspace_id, Usage.metric == EXECUTIONS,
               Usage.period_start == quota.period_start)
        .values(quantity=Usage.quantity + 1, updated_at=utcnow())
    )  # fmt: skip
    return None
