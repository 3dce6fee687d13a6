"""`notification` jobs: e-mail to a workspace's owners and admins.

Two kinds: `execution_failed`, enqueued by `services.outgoing_events` when an
execution fails in a workspace whose `settings.notifications.execution_failed` is true;
`usage_alert`, enqueued by `services.usage_alerts` when the workspace's executions reach
80 % or 100 % of its plan's monthly limit.
The recipients are read when the job runs (the owners and admins who are active
members then), and each gets one e-mail through the process's `Mailer` (SMTP with
`LINKFLOW_SMTP_*`, the log without). A mail server that refuses fails the job, which
is retried with backoff and dead-lettered after its last attempt; a retry sends to
every recipient again (at-least-once: a recipient may get an alert twice).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from linkflow.queue import Delivery
from linkflow.services.mail import Email, Mailer
from linkflow.services.usage_alerts import usage_email
from linkflow.store import Database, MemberRole, MemberStatus, User, WorkspaceMember
from linkflow.worker.handlers import UndecodableJob

__all__ = ["Notifications", "failure_email"]


def failure_email(to: str, execution: dict[str, Any], public_url: str) -> Email:
    """The alert for a failed execution (its summary as `outgoing_events.summary` made it)."""
    error = execution.get("error") or {}
    message = str(error.get("message") or "no message") if isinstance(error, dict) else str(error)
    node = error.get("node_id") if isinstance(error, dict) else None
    name = str(execution.get("workflow_name") or execution.get("workflow_id"))
    lines = [
        f"The workflow {name!r} failed.",
        "",
        f"Execution: {execution.get('id')}",
        f"Workflow:  {execution.get('workflow_id')} (version {execution.get('workflow_version')})",
        f"Trigger:   {execution.get('trigger_type')}",
        f"Failed at: {execution.get('completed_at')}",
        *([f"Node:      {node}"] if node else []),
        f"Error:     {message[:2000]}",
        "",
        f"Details: {public_url.rstrip('/')}/api/v1/executions/{execution.get('id')}",
        "",
        "You receive this as an owner or admin of the workspace; turn these alerts off with "
        'the workspace setting {"notifications": {"execution_failed": false}}.',
    ]
    return Email(to=to, subject=f"[LinkFlow] Execution failed: {name}"[:200], text="\n".join(lines))


class Notifications:
    """The `JobHandler` of `notification` jobs."""

    def __init__(self, database: Database, mailer: Mailer, *, public_url: str) -> None:
        self.database = database
        self.mailer = mailer
        self.public_url = public_url

    async def handle(self, delivery: Delivery) -> None:
        payload = delivery.job.payload
        kind = payload.get("kind")
        if kind not in ("execution_failed", "usage_alert"):
            raise UndecodableJob(f"unknown notification kind {kind!r}")
        try:
            workspace_id = uuid.UUID(str(payload["workspace_id"]))
        except (KeyError, ValueError) as error:
            raise UndecodableJob(f"no workspace_id: {error}") from None
        if kind == "usage_alert":
            for address in await self._admins(workspace_id):
                await self.mailer.send(usage_email(address, payload, self.public_url))
            return
        execution = payload.get("execution")
        if not isinstance(execution, dict):
            raise UndecodableJob("no execution summary")
        for address in await self._admins(workspace_id):
            await self.mailer.send(failure_email(address, execution, self.public_url))

    async def _admins(self, workspace_id: uuid.UUID) -> list[str]:
        async with self.database.session() as session:
            found = await session.scalars(
                select(User.email)
                .join(WorkspaceMember, WorkspaceMember.user_id == User.id)
                .where(WorkspaceMember.workspace_id == workspace_id,
                       WorkspaceMember.status == MemberStatus.ACTIVE,
                       WorkspaceMember.role.in_([MemberRole.OWNER, MemberRole.ADMIN]),
                       User.deleted_at.is_(None))
                .order_by(User.email)
            )  # fmt: skip
            return list(found.all())
