"""Workflows, their immutable versions, and what they use and expose.

Invariants:
- `workflows.version` is the number of the latest `workflow_versions` row;
  a version row is never updated, so an execution can always be replayed
  against the exact document it ran (`executions.workflow_version`).
- A credential's secret fields live only in `data_encrypted` (AES-256-GCM);
  `key_id` names the key that sealed it, so a rotation can find stale rows.
  Names are unique per workspace among credentials that are not deleted.
- A trigger node has at most one schedule, and at most one production and
  one test webhook.
- A webhook row lives as long as its node is in the workflow's document,
  whatever the workflow's status: it holds the endpoint's random id (its URL),
  the node's sealed signing secret (the document only says `{"sealed": true}`)
  and its counts. It answers only while the workflow is active and the node
  enabled.
- `webhook_signatures` remembers each accepted timestamped signature until
  it could no longer pass the time check, so a signed call is accepted once,
  by whichever process sees it first (the primary key decides).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.enums import ScheduleStatus, WebhookResponseMode, WorkflowStatus
from linkflow.store.models._base import (
    Base,
    SoftDeletable,
    Timestamped,
    WorkspaceScoped,
    enum_check,
    postgresql_only,
)
from linkflow.store.types import JSONDocument, JSONObject, JSONValue, StrEnumType, StringArray

__all__ = [
    "Credential",
    "Schedule",
    "Webhook",
    "WebhookSignature",
    "Workflow",
    "WorkflowVersion",
]

_ACTIVE_SCHEDULE = text("status = 'active'")
_NOT_DELETED = text("deleted_at IS NULL")


class Workflow(Timestamped, SoftDeletable, WorkspaceScoped):
    """The current document of a workflow (nodes, connections, settings)."""

    __tablename__ = "workflows"
    __table_args__ = (
        enum_check("status", WorkflowStatus),
        CheckConstraint("version >= 1", name="version_positive"),
        Index("ix_workflows_workspace_created", "workspace_id", "created_at", "id"),
        # Tag filters (`tags @> ARRAY[...]`); SQLite scans, which is fine at its scale.
        postgresql_only(Index("ix_workflows_tags", "tags", postgresql_using="gin")),
    )

    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(default="")
    status: Mapped[WorkflowStatus] = mapped_column(
        StrEnumType(WorkflowStatus), default=WorkflowStatus.DRAFT
    )
    version: Mapped[int] = mapped_column(default=1)
    nodes: Mapped[list[JSONObject]] = mapped_column(JSONDocument, default=list)
    connections: Mapped[list[JSONObject]] = mapped_column(JSONDocument, default=list)
    settings: Mapped[JSONObject] = mapped_column(JSONDocument, default=dict)
    tags: Mapped[list[str]] = mapped_column(StringArray, default=list)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    activated_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkflowVersion(WorkspaceScoped):
    """An immutable snapshot of a workflow document, numbered from 1."""

    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE")
    )
    version: Mapped[int]
    nodes: Mapped[list[JSONObject]] = mapped_column(JSONDocument, default=list)
    connections: Mapped[list[JSONObject]] = mapped_column(JSONDocument, default=list)
    settings: Mapped[JSONObject] = mapped_column(JSONDocument, default=dict)
    message: Mapped[str] = mapped_column(default="")
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class Credential(Timestamped, SoftDeletable, WorkspaceScoped):
    """Secrets a node uses (API token, basic auth...), sealed by the secret box."""

    __tablename__ = "credentials"
    __table_args__ = (
        Index(
            "uq_credentials_workspace_name_live",
            "workspace_id",
            "name",
            unique=True,
            postgresql_where=_NOT_DELETED,
            sqlite_where=_NOT_DELETED,
        ),
        Index("ix_credentials_key_id", "key_id"),
    )

    name: Mapped[str] = mapped_column(String(255))
    # The credential type's name, e.g. "http_bearer"; the nodes' registry owns the list.
    type: Mapped[str] = mapped_column(String(64))
    data_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Schedule(Timestamped, WorkspaceScoped):
    """A schedule trigger of an active workflow; the scheduler fires it at `next_run_at`.

    Firing is a compare-and-set on `next_run_at`, so two schedulers that both
    believe they lead cannot fire one tick twice. A polling trigger's row has
    `polling` set and keeps the JSON text of its last poll's cursor in
    `poll_cursor`, moved with `next_run_at` (`linkflow.scheduler.polling`).
    """

    __tablename__ = "schedules"
    __table_args__ = (
        UniqueConstraint("workflow_id", "node_id"),
        enum_check("status", ScheduleStatus),
        CheckConstraint("cron IS NOT NULL OR interval_s IS NOT NULL", name="cron_or_interval"),
        CheckConstraint("interval_s IS NULL OR interval_s > 0", name="interval_positive"),
        Index(
            "ix_schedules_due",
            "next_run_at",
            postgresql_where=_ACTIVE_SCHEDULE,
            sqlite_where=_ACTIVE_SCHEDULE,
        ),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE")
    )
    node_id: Mapped[str] = mapped_column(String(64))
    cron: Mapped[str | None] = mapped_column(String(255), default=None)
    interval_s: Mapped[int | None] = mapped_column(default=None)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    input: Mapped[JSONValue] = mapped_column(JSONDocument, default=dict)
    status: Mapped[ScheduleStatus] = mapped_column(
        StrEnumType(ScheduleStatus), default=ScheduleStatus.ACTIVE
    )
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
    last_execution_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("executions.id", ondelete="SET NULL"), default=None
    )
    polling: Mapped[bool] = mapped_column(default=False)
    poll_cursor: Mapped[str | None] = mapped_column(Text, default=None)


class Webhook(Timestamped, WorkspaceScoped):
    """A public endpoint ``/webhooks/{id}[/{path}]`` bound to a webhook trigger node.

    The id is random (`uuid4`, not derived from anything a caller could know) and is
    changed only by a rotation; test rows get a fresh one each time they are armed.
    """

    __tablename__ = "webhooks"
    __table_args__ = (
        UniqueConstraint("workflow_id", "node_id", "is_test"),
        enum_check("response_mode", WebhookResponseMode),
        CheckConstraint(
            "max_body_bytes IS NULL OR max_body_bytes > 0", name="max_body_bytes_positive"
        ),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE")
    )
    node_id: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255), default="")
    method: Mapped[str] = mapped_column(String(8), default="POST")
    response_mode: Mapped[WebhookResponseMode] = mapped_column(
        StrEnumType(WebhookResponseMode), default=WebhookResponseMode.IMMEDIATELY
    )
    # HMAC key for X-LinkFlow-Signature, sealed by the secret box; NULL = unsigned.
    secret_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    # The node's opt-in to the old body-only signature (no timestamp, replayable).
    legacy_signature: Mapped[bool] = mapped_column(default=False)
    # False while the node is disabled: the row keeps its id and secret but does not answer.
    enabled: Mapped[bool] = mapped_column(default=True)
    ip_allowlist: Mapped[list[str]] = mapped_column(StringArray, default=list)
    # NULL means the server-wide default limit applies.
    max_body_bytes: Mapped[int | None] = mapped_column(default=None)
    # The node's `rate_limit` (`100/second`, `unlimited`); NULL: the server-wide default.
    rate_limit: Mapped[str | None] = mapped_column(String(64), default=None)
    is_test: Mapped[bool] = mapped_column(default=False)
    call_count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_called_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookSignature(Base):
    """A timestamped signature a webhook accepted, kept until `expires_at` (when its
    timestamp is too old to pass anyway) so that it is never accepted twice.

    Keyed by the workflow and node, not the endpoint id: a rotation does not make a
    captured call valid again at the new URL.
    """

    __tablename__ = "webhook_signatures"
    __table_args__ = (Index("ix_webhook_signatures_expires_at", "expires_at"),)

    workflow_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The hex HMAC-SHA256 (64 characters).
    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]
