"""Execution data retention: finished executions older than their workspace plan's
`retention_days` are deleted, with their events and node runs (foreign keys cascade).

A workspace's plan is the one of its live subscription (trialing, active or past
due); a workspace without one is on the `free` plan. A plan with no
`retention_days` keeps everything. Deletes go in batches so a large backlog
never holds a long write lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from linkflow.store import (
    Database,
    Execution,
    ExecutionStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
    Workspace,
)

__all__ = ["DEFAULT_PLAN", "purge_expired_executions"]

DEFAULT_PLAN = "free"
BATCH = 500
"""Executions deleted per transaction."""
_LIVE = (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
_FINISHED = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
             ExecutionStatus.TIMEOUT)  # fmt: skip


async def _retention_by_workspace(database: Database) -> dict[object, int]:
    async with database.session() as session:
        plans = {code: days for code, days in await session.execute(
            select(Plan.code, Plan.retention_days))}  # fmt: skip
        subscribed = dict(
            (
                await session.execute(
                    select(Subscription.workspace_id, Plan.retention_days)
                    .join(Plan, Plan.id == Subscription.plan_id)
                    .where(Subscription.status.in_(_LIVE))
                )
            ).all()
        )
        workspaces = (await session.scalars(select(Workspace.id))).all()
    default = plans.get(DEFAULT_PLAN)
    retention: dict[object, int] = {}
    for workspace_id in workspaces:
        days = subscribed.get(workspace_id, default) if workspace_id in subscribed else default
        if days is not None:
            retention[workspace_id] = int(days)
    return retention


async def purge_expired_executions(database: Database, now: datetime) -> int:
    """Delete every finished execution past its workspace's retention; returns how many."""
    deleted = 0
    for workspace_id, days in (await _retention_by_workspace(database)).items():
        cutoff = now - timedelta(days=days)
        while True:
            async with database.transaction() as session:
                ids = (
                    await session.scalars(
                        select(Execution.id)
                        .where(Execution.workspace_id == workspace_id,
                               Execution.status.in_(_FINISHED),
                               Execution.completed_at < cutoff)
                        .limit(BATCH)
                    )
                ).all()  # fmt: skip
                if ids:
                    await session.execute(delete(Execution).where(Execution.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < BATCH:
                break
    return deleted
