"""Usage alerts: an e-mail to a workspace's owners and admins when its executions reach
80 % and 100 % of its plan's monthly limit, once per billing period and threshold.

The scheduler calls `UsageAlerts.check` right after counting usage (every five
minutes, `services.usage`). Each threshold reached is claimed by inserting a marker
row into `usage` (metric `alert.executions.<percent>`, the billing period's start)
that a second scheduler, or the next round, cannot insert again; only then is a
`notification` job (kind `usage_alert`) queued, and the worker mails it like a failure
alert. When executions jump past both thresholds at once, only the 100 % e-mail goes.

At most once: a crash between the claim and the queueing loses that alert (the claim
is taken back when the queueing fails).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from linkflow.observability.logging import get_logger
from linkflow.queue import Job, JobType, Queue
from linkflow.services.mail import Email
from linkflow.services.plan_limits import Limit
from linkflow.services.plans import PlanLimits
from linkflow.store import Database, Usage, Workspace, utcnow

__all__ = ["THRESHOLDS", "UsageAlerts", "usage_email"]

log = get_logger(__name__)

THRESHOLDS: Final = (80, 100)
"""Percent of the monthly executions at which the owners hear of it."""
LOOKBACK: Final = timedelta(days=32)
"""Workspaces with executions counted this recently are looked at: a period is a month."""


def _marker(percent: int) -> str:
    return f"alert.executions.{percent}"


def usage_email(to: str, alert: dict[str, Any], public_url: str) -> Email:
    """The e-mail of one `usage_alert` notification."""
    percent, used, limit = alert.get("threshold"), alert.get("used"), alert.get("limit")
    name = str(alert.get("workspace_name") or alert.get("workspace_id"))
    reached = "reached its limit of" if percent == 100 else f"used {percent} % of"
    lines = [
        f"The LinkFlow workspace {name!r} has {reached} {limit} executions this billing "
        f"period: {used} so far.",
        "",
        f"The period ends at {alert.get('period_end')}; the count starts again then.",
        f"Usage: {public_url.rstrip('/')}/api/v1/billing/usage",
        f"Plans: {public_url.rstrip('/')}/api/v1/billing/plans",
        "",
        "You receive this as an owner or admin of the workspace.",
    ]
    subject = f"[LinkFlow] {name}: {percent} % of the monthly executions used"
    return Email(to=to, subject=subject[:200], text="\n".join(lines))


class UsageAlerts:
    def __init__(self, database: Database, plans: PlanLimits, queue: Queue) -> None:
        self.database = database
        self.plans = plans
        self.queue = queue

    async def check(self, now: datetime | None = None) -> int:
        """Queue the alerts newly due; returns how many."""
        now = now or datetime.now(UTC)
        async with self.database.session() as session:
            workspaces = (
                await session.scalars(
                    select(Usage.workspace_id)
                    .distinct()
                    .where(Usage.metric == "executions", Usage.period_start >= now - LOOKBACK)
                )
            ).all()
        queued = 0
        for workspace_id in workspaces:
            queued += await self._check_one(workspace_id, now)
        return queued

    async def _check_one(self, workspace_id: uuid.UUID, now: datetime) -> int:
        report = await self.plans.usage(workspace_id, now)
        limit = report.standing.limits.of(Limit.EXECUTIONS_PER_MONTH)
        used = report.metrics["executions"]
        if not limit:
            return 0
        reached = [p for p in THRESHOLDS if used * 100 >= p * limit]
        claimed = [
            p for p in reached if await self._claim(workspace_id, p, report.period_start, used)
        ]
        if not claimed:
            return 0
        percent = max(claimed)
        async with self.database.session() as session:
            name = await session.scalar(select(Workspace.name).where(Workspace.id == workspace_id))
        alert = {
            "kind": "usage_alert",
            "workspace_id": str(workspace_id),
            "workspace_name": name,
            "metric": "executions",
            "threshold": percent,
            "used": used,
            "limit": limit,
            "period_end": report.period_end.isoformat(),
        }
        try:
            await self.queue.enqueue(Job(type=JobType.NOTIFICATION, payload=alert))
        except Exception:
            for taken in claimed:  # let the next round try again
                await self._release(workspace_id, taken, report.period_start)
            raise
        log.info(
            "billing.usage_alert",
            workspace_id=str(workspace_id),
            threshold=percent,
            used=used,
            limit=limit,
        )
        return 1

    async def _claim(
        self, workspace_id: uuid.UUID, percent: int, period_start: datetime, used: int
    ) -> bool:
        insert = postgresql.insert if self.database.dialect == "postgresql" else sqlite.insert
        statement = (
            insert(Usage)
            .values(
                id=uuid.uuid4(),
                workspace_id=workspace_id,
                metric=_marker(percent),
                period_start=period_start,
                quantity=used,
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["workspace_id", "metric", "period_start"])
        )
        async with self.database.transaction() as session:
            result = await session.execute(statement.returning(Usage.id))
            return result.first() is not None

    async def _release(self, workspace_id: uuid.UUID, percent: int, start: datetime) -> None:
        async with self.database.transaction() as session:
            await session.execute(
                delete(Usage).where(
                    Usage.workspace_id == workspace_id,
                    Usage.metric == _marker(percent),
                    Usage.period_start == start,
                )
            )
