"""Tenancy: workspaces, their members and their variables.

Invariants:
- A workspace is the unit of isolation: every scoped row references it with
  ``ON DELETE CASCADE``; in normal operation workspaces are soft-deleted and a
  purge job removes them later.
- A member row exists before its user does (an invitation): `user_id` is NULL
  exactly while `status` is `invited` with an e-mail to invite.
- A user is a member of a workspace at most once.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.enums import MemberRole, MemberStatus
from linkflow.store.models._base import (
    AUDIT_ORDER,
    Base,
    SoftDeletable,
    Timestamped,
    WorkspaceScoped,
    enum_check,
)
from linkflow.store.types import JSONDocument, JSONObject, StrEnumType, new_id, utcnow

__all__ = ["Variable", "Workspace", "WorkspaceMember"]


class Workspace(Timestamped, SoftDeletable, Base):
    """A tenant. Every user gets a personal one at registration."""

    __tablename__ = "workspaces"
    __table_args__ = (Index("ix_workspaces_owner_id", "owner_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    # RESTRICT: removing a user who still owns workspaces is a decision for the
    # services layer (transfer or purge), not a silent cascade.
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    is_personal: Mapped[bool] = mapped_column(default=False)
    settings: Mapped[JSONObject] = mapped_column(JSONDocument, default=dict)
    # An instance admin's limits over the plan's: {"team_members": 50, "active_workflows": null}.
    limit_overrides: Mapped[JSONObject] = mapped_column(JSONDocument, default=dict)
    # The payment provider's customer (a Stripe `cus_...`), made on the first checkout.
    billing_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, sort_order=AUDIT_ORDER)


class WorkspaceMember(Timestamped, WorkspaceScoped):
    """A user's role in a workspace, or a pending invitation to it."""

    __tablename__ = "workspace_members"
    __table_args__ = (
        UniqueConstraint("workspace_id", "user_id"),
        enum_check("role", MemberRole),
        enum_check("status", MemberStatus),
        CheckConstraint(
            "(status = 'invited' AND invite_email IS NOT NULL) OR user_id IS NOT NULL",
            name="member_has_user_or_invite",
        ),
        Index("ix_workspace_members_user_id", "user_id"),
    )

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    role: Mapped[MemberRole] = mapped_column(StrEnumType(MemberRole), default=MemberRole.MEMBER)
    status: Mapped[MemberStatus] = mapped_column(
        StrEnumType(MemberStatus), default=MemberStatus.ACTIVE
    )
    invite_email: Mapped[str | None] = mapped_column(String(320), default=None)
    invite_token_hash: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    invited_at: Mapped[datetime | None] = mapped_column(default=None)
    joined_at: Mapped[datetime | None] = mapped_column(default=None)


class Variable(Timestamped, WorkspaceScoped):
    """A workspace variable, readable in expressions as ``vars.<key>``; not a secret."""

    __tablename__ = "variables"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    key: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(default="")
