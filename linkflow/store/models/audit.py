"""Records about requests: the audit trail and stored idempotent responses.

Invariants:
- Audit rows are insert-only and outlive what they describe: deleting a
  workspace, user or API key sets the reference to NULL instead of deleting
  the trail.
- Audit queries go by workspace and time, by resource or by actor (the three
  B-tree indexes); the JSON diffs are read, not searched, so they carry no
  GIN index.
- An idempotency key is unique within its scope (a user or API key id), and
  a replay with a different `request_hash` is a conflict, not a replay.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.models._base import AUDIT_ORDER, Base
from linkflow.store.types import JSONDocument, JSONObject, new_id, utcnow

__all__ = ["AuditLog", "IdempotencyKey"]


class AuditLog(Base):
    """Who changed what, from where: one row per change to users, workspaces, workflows..."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("ix_audit_logs_workspace_created", "workspace_id", "created_at"),
        Index("ix_audit_logs_resource", "resource_type", "resource_id"),
        Index("ix_audit_logs_actor_created", "actor_user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    # NULL for instance-level actions (admin, registration) and after a purge.
    workspace_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="SET NULL"), default=None
    )
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    actor_api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), default=None
    )
    action: Mapped[str] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(String(64), default=None)
    old_values: Mapped[JSONObject | None] = mapped_column(JSONDocument, default=None)
    new_values: Mapped[JSONObject | None] = mapped_column(JSONDocument, default=None)
    ip_address: Mapped[str | None] = mapped_column(String(45), default=None)
    user_agent: Mapped[str | None] = mapped_column(default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class IdempotencyKey(Base):
    """A stored response to a request sent with ``Idempotency-Key``, replayed on retry.

    `response_status` is NULL while the first request is still being handled.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("scope", "key"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(128))
    response_status: Mapped[int | None] = mapped_column(default=None)
    response_headers: Mapped[JSONObject | None] = mapped_column(JSONDocument, default=None)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)
    expires_at: Mapped[datetime]
