"""Plans, the limits in force for a workspace, its usage, and the limits checked on the
control plane (active workflows, team members).

A workspace's plan is that of its live subscription (trialing, active, past due), else
the instance's default plan (`LINKFLOW_DEFAULT_PLAN`: `free` when Stripe is configured,
`enterprise`, i.e. unlimited, on a self-hosted instance). An instance admin's
`limit_overrides` of the workspace replace single limits of the plan.

Invariants:
- A limit is checked in the transaction that adds what it counts, after a row lock on
  the workspace (`FOR UPDATE` on PostgreSQL; SQLite's write transactions are serial
  already), so of concurrent requests for the last slot exactly one passes.
- Usage is what the writes counted as they happened (`store.batch`, `services.usage`):
  the `executions` row of the billing period (the live subscription's, else the
  calendar month) and the hourly `node_runs` rows within it.
- The limits of the execution hot path (executions per month, concurrent executions)
  are checked by the writer's counter, in the transaction that creates the execution;
  what it needs of a workspace (`Allowance`: limits and period) is read here and kept
  in memory for `ALLOWANCE_TTL_S`, so the check costs no read of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.services._ttl_cache import TTLCache
from linkflow.services.errors import NotFound
from linkflow.services.plan_limits import (
    Limit,
    Limits,
    decide,
    month_of,
    next_month,
    refusal,
)
from linkflow.store import (
    Database,
    Plan,
    Subscription,
    SubscriptionStatus,
    Usage,
    Workflow,
    WorkflowStatus,
    Workspace,
    WorkspaceMember,
)
from linkflow.store.batch import Quota

__all__ = ["ALLOWANCE_TTL_S", "Allowance", "PlanLimits", "Standing", "UsageReport",
           "plan_limits_of"]  # fmt: skip

METRICS = ("executions", "node_runs")
"""The metrics counted (see `store.batch`)."""
ALLOWANCE_TTL_S = 5.0
"""How long a workspace's limits and period are used before they are read again: a plan
changed, or a limit an admin raised, applies to new executions within this time."""


def plan_limits_of(plan: Plan) -> dict[Limit, int | None]:
    return {
        Limit.EXECUTIONS_PER_MONTH: plan.executions_per_month,
        Limit.ACTIVE_WORKFLOWS: plan.workflows,
        Limit.TEAM_MEMBERS: plan.team_members,
        Limit.MAX_CONCURRENT_EXECUTIONS: plan.max_concurrent_executions,
        Limit.RETENTION_DAYS: plan.retention_days,
    }


@dataclass(frozen=True, slots=True)
class Standing:
    """A workspace's plan, its live subscription (if any) and the limits in force."""

    plan: Plan
    subscription: Subscription | None
    limits: Limits
    overrides: Mapping[str, object]

    def period(self, now: datetime) -> tuple[datetime, datetime]:
        """The billing period holding `now`: the subscription's, else the calendar month."""
        sub = self.subscription
        if (
            sub is not None
            and sub.current_period_end is not None
            and sub.current_period_start <= now < sub.current_period_end
        ):
            return sub.current_period_start, sub.current_period_end
        return month_of(now), next_month(now)


@dataclass(frozen=True, slots=True)
class Allowance:
    """What a new execution of a workspace counts against (`Quota`), and when its
    period ends (a refusal's `Retry-After`)."""

    quota: Quota
    period_end: datetime


@dataclass(frozen=True, slots=True)
class UsageReport:
    standing: Standing
    period_start: datetime
    period_end: datetime
    metrics: dict[str, int]
    active_workflows: int
    team_members: int


class PlanLimits:
    """Reads plans and standings; checks the control plane's limits inside a transaction."""

    def __init__(self, database: Database, default_plan: str) -> None:
        self.database = database
        self.default_plan = default_plan
        self._allowances: TTLCache[uuid.UUID, Allowance] = TTLCache(ALLOWANCE_TTL_S)

    async def allowance(self, workspace_id: uuid.UUID) -> Allowance:
        """The workspace's limits on starting executions and its billing period, from
        memory (read at most every `ALLOWANCE_TTL_S`, and again once the period ended)."""
        allowance = await self._allowances.get(
            workspace_id, partial(self._load_allowance, workspace_id)
        )
        if datetime.now(UTC) >= allowance.period_end:
            self._allowances.forget(workspace_id)
            allowance = await self._allowances.get(
                workspace_id, partial(self._load_allowance, workspace_id)
            )
        return allowance

    def forget(self, workspace_id: uuid.UUID) -> None:
        """Read the workspace's allowance again next time (its plan or limits changed)."""
        self._allowances.forget(workspace_id)

    async def _load_allowance(self, workspace_id: uuid.UUID) -> Allowance:
        standing = await self.standing_of(workspace_id)
        start, end = standing.period(datetime.now(UTC))
        limits = standing.limits
        quota = Quota(start, limits.of(Limit.EXECUTIONS_PER_MONTH),
                      limits.of(Limit.MAX_CONCURRENT_EXECUTIONS))  # fmt: skip
        return Allowance(quota, end)

    async def plans(self) -> list[Plan]:
        """Every plan, cheapest first (enterprise, priced by agreement, last)."""
        async with self.database.session() as session:
            rows = (await session.scalars(select(Plan))).all()
        return sorted(rows, key=lambda p: (p.price_cents is None, p.price_cents or 0, p.id))

    async def plan(self, session: AsyncSession, code: str) -> Plan:
        plan = await session.scalar(select(Plan).where(Plan.code == code))
        if plan is None:
            raise NotFound(f"there is no plan {code!r}", code="plan_not_found")
        return plan

    async def standing(self, session: AsyncSession, workspace_id: uuid.UUID) -> Standing:
        subscription = await session.scalar(
            select(Subscription).where(
                Subscription.workspace_id == workspace_id,
                Subscription.status.in_(SubscriptionStatus.live()),
            )
        )
        if subscription is not None:
            plan = await session.get(Plan, subscription.plan_id)
            assert plan is not None  # a foreign key with RESTRICT
        else:
            plan = await self.plan(session, self.default_plan)
        overrides = (
            await session.scalar(
                select(Workspace.limit_overrides).where(Workspace.id == workspace_id)
            )
            or {}
        )
        return Standing(
            plan, subscription, Limits.effective(plan_limits_of(plan), overrides), overrides
        )

    async def standing_of(self, workspace_id: uuid.UUID) -> Standing:
        async with self.database.session() as session:
            return await self.standing(session, workspace_id)

    async def check(
        self, session: AsyncSession, workspace_id: uuid.UUID, limit: Limit, *, adding: int = 1
    ) -> None:
        """Refuse (403 `plan_limit`) unless `adding` more of `limit` fit; call it in the
        transaction that adds them. Locks the workspace row until that transaction ends."""
        if adding <= 0:
            return
        await session.execute(
            select(Workspace.id).where(Workspace.id == workspace_id).with_for_update()
        )
        standing = await self.standing(session, workspace_id)
        if standing.limits.of(limit) is None:
            return
        verdict = decide(
            standing.limits, limit, await _count(session, workspace_id, limit), adding=adding
        )
        if not verdict.allowed:
            raise refusal(verdict)

    async def usage(self, workspace_id: uuid.UUID, now: datetime | None = None) -> UsageReport:
        """The workspace's usage in its current billing period, beside its limits."""
        now = now or datetime.now(UTC)
        async with self.database.session() as session:
            standing = await self.standing(session, workspace_id)
            start, end = standing.period(now)
            rows = (
                await session.execute(
                    select(Usage.metric, func.sum(Usage.quantity))
                    .where(
                        Usage.workspace_id == workspace_id,
                        Usage.period_start >= start,
                        Usage.period_start < end,
                    )
                    .group_by(Usage.metric)
                )
            ).all()
            metrics = dict.fromkeys(METRICS, 0) | {metric: int(total) for metric, total in rows}
            workflows = await _count(session, workspace_id, Limit.ACTIVE_WORKFLOWS)
            members = await _count(session, workspace_id, Limit.TEAM_MEMBERS)
        return UsageReport(standing, start, end, metrics, workflows, members)


async def _count(session: AsyncSession, workspace_id: uuid.UUID, limit: Limit) -> int:
    """What `limit` counts now: active workflows, or members and pending invitations."""
    if limit is Limit.ACTIVE_WORKFLOWS:
        statement = (
            select(func.count())
            .select_from(Workflow)
            .where(
                Workflow.workspace_id == workspace_id,
                Workflow.status == WorkflowStatus.ACTIVE,
                Workflow.deleted_at.is_(None),
            )
        )
    elif limit is Limit.TEAM_MEMBERS:
        statement = (
            select(func.count())
            .select_from(WorkspaceMember)
            .where(WorkspaceMember.workspace_id == workspace_id)
        )
    else:
        raise ValueError(f"{limit.value} is not counted on the control plane")
    return int(await session.scalar(statement) or 0)
