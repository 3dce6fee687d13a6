"""Executions: the summary row, per-node runs, the event history and the lease.

Invariants:
- `execution_events` is the truth of an execution; `executions` and
  `node_executions` are projections of it kept for queries and the API.
  Events are append-only and unique on ``(execution_id, seq)``: a worker that
  lost its lease and tries to write a `seq` already taken is refused.
- At most one lease row per execution; `fencing_token` only grows, so a write
  carrying an older token can be recognised as stale.
- The partial indexes match the scheduler's queries exactly (`status =
  'waiting'` for timers, `status IN ('queued', 'running')` for recovery),
  so they stay small: finished executions, the vast majority, are not in them.
- No GIN index on the JSON columns: every execution writes them, and a GIN
  index would tax the hot path (about ten events per execution, 1,000
  executions/s) for a search over payloads nothing offers yet.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.enums import ExecutionStatus, NodeExecutionStatus, Priority, TriggerType
from linkflow.store.models._base import AUDIT_ORDER, Base, WorkspaceScoped, enum_check
from linkflow.store.types import (
    BigIntPK,
    JSONDocument,
    JSONObject,
    JSONValue,
    StrEnumType,
    new_id,
    utcnow,
)

__all__ = ["Execution", "ExecutionEvent", "ExecutionLease", "NodeExecution"]

_WAITING = text("status = 'waiting'")
_UNFINISHED = text("status IN ('queued', 'running')")
_HAS_PARENT = text("parent_execution_id IS NOT NULL")


class Execution(WorkspaceScoped):
    """One run of one workflow version."""

    __tablename__ = "executions"
    __table_args__ = (
        enum_check("status", ExecutionStatus),
        enum_check("trigger_type", TriggerType),
        enum_check("priority", Priority),
        CheckConstraint("attempt >= 1", name="attempt_positive"),
        Index("ix_executions_workspace_status_queued", "workspace_id", "status", "queued_at"),
        Index("ix_executions_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_executions_workflow_queued", "workflow_id", "queued_at"),
        Index(
            "ix_executions_waiting",
            "wait_until",
            postgresql_where=_WAITING,
            sqlite_where=_WAITING,
        ),
        Index(
            "ix_executions_unfinished",
            "status",
            "queued_at",
            postgresql_where=_UNFINISHED,
            sqlite_where=_UNFINISHED,
        ),
        Index(
            "ix_executions_parent",
            "parent_execution_id",
            postgresql_where=_HAS_PARENT,
            sqlite_where=_HAS_PARENT,
        ),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE")
    )
    workflow_version: Mapped[int]
    status: Mapped[ExecutionStatus] = mapped_column(
        StrEnumType(ExecutionStatus), default=ExecutionStatus.QUEUED
    )
    trigger_type: Mapped[TriggerType] = mapped_column(
        StrEnumType(TriggerType), default=TriggerType.MANUAL
    )
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority), default=Priority.NORMAL)
    input: Mapped[JSONValue] = mapped_column(JSONDocument, default=dict)
    output: Mapped[JSONValue] = mapped_column(JSONDocument, nullable=True, default=None)
    # {"message": ..., "node_id": ...} as served by GET /executions/{id}.
    error: Mapped[JSONObject | None] = mapped_column(JSONDocument, default=None)
    parent_execution_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("executions.id", ondelete="SET NULL"), default=None
    )
    # The idempotency key a sub-workflow or error workflow was started under: unique, so
    # a parent's node that runs again finds its child instead of starting another.
    parent_key: Mapped[str | None] = mapped_column(String(300), unique=True, default=None)
    attempt: Mapped[int] = mapped_column(default=1)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    wait_until: Mapped[datetime | None] = mapped_column(default=None)
    # A cancel request accepted for a running execution; its worker reads it between nodes.
    cancel_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    # Hash of the token in a wait node's resume URL; the token itself is never stored.
    resume_token_hash: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class NodeExecution(Base):
    """One run (`run_index`) of one node in an execution; loops run a node many times."""

    __tablename__ = "node_executions"
    __table_args__ = (
        UniqueConstraint("execution_id", "node_id", "run_index"),
        enum_check("status", NodeExecutionStatus),
        Index("ix_node_executions_workspace_id", "workspace_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE")
    )
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    node_id: Mapped[str] = mapped_column(String(64))
    node_type: Mapped[str] = mapped_column(String(128))
    run_index: Mapped[int] = mapped_column(default=0)
    status: Mapped[NodeExecutionStatus] = mapped_column(
        StrEnumType(NodeExecutionStatus), default=NodeExecutionStatus.RUNNING
    )
    attempts: Mapped[int] = mapped_column(default=1)
    items_in: Mapped[int] = mapped_column(default=0)
    items_out: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[JSONObject | None] = mapped_column(JSONDocument, default=None)


class ExecutionEvent(Base):
    """One entry of an execution's history (`node.completed`, `execution.waiting`...)."""

    __tablename__ = "execution_events"
    __table_args__ = (
        UniqueConstraint("execution_id", "seq"),
        CheckConstraint("seq >= 0", name="seq_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    execution_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE")
    )
    seq: Mapped[int]
    type: Mapped[str] = mapped_column(String(64))
    node_id: Mapped[str | None] = mapped_column(String(64), default=None)
    data: Mapped[JSONObject] = mapped_column(JSONDocument, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class ExecutionLease(Base):
    """The right of one worker (`owner`) to run an execution until `expires_at`."""

    __tablename__ = "execution_leases"
    __table_args__ = (Index("ix_execution_leases_expires_at", "expires_at"),)

    execution_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=1)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    renewed_at: Mapped[datetime] = mapped_column(default=utcnow)
