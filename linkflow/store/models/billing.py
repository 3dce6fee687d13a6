"""Plans, subscriptions and metered usage.

Invariants:
- A plan limit of NULL means unlimited; 0 means none allowed.
- Plans are reference data: rows are added by migrations, never by the API.
- A workspace has at most one subscription in a live state (trialing, active,
  past due); ended ones stay as history.
- Usage is one counter per (workspace, metric, period start), incremented in
  place by the hourly aggregation, so a period's figure is one row.
- A payment provider's event is applied at most once: its id is a `billing_events`
  row written in the transaction that applies it.
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
    TextClause,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.enums import SubscriptionStatus
from linkflow.store.models._base import AUDIT_ORDER, Base, Timestamped, WorkspaceScoped, enum_check
from linkflow.store.types import StrEnumType, StringArray, new_id, utcnow

__all__ = ["BillingEvent", "Plan", "Subscription", "Usage"]


def _live_where() -> TextClause:
    values = ", ".join(f"'{status.value}'" for status in SubscriptionStatus.live())
    return text(f"status IN ({values})")


class Plan(Base):
    """A price list entry; seeded by the initial migration (free, pro, business, enterprise)."""

    __tablename__ = "plans"
    __table_args__ = (CheckConstraint("price_cents >= 0", name="price_non_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    # Per month; NULL means priced by agreement (enterprise).
    price_cents: Mapped[int | None] = mapped_column(default=None)
    executions_per_month: Mapped[int | None] = mapped_column(default=None)
    workflows: Mapped[int | None] = mapped_column(default=None)
    team_members: Mapped[int | None] = mapped_column(default=None)
    retention_days: Mapped[int | None] = mapped_column(default=None)
    max_concurrent_executions: Mapped[int | None] = mapped_column(default=None)
    # What the plan includes, by name (`webhooks`, `schedules`, `sso`...): listed, not metered.
    features: Mapped[list[str]] = mapped_column(StringArray, default=list)


class Subscription(Timestamped, WorkspaceScoped):
    """A workspace's plan for a billing period; `external_id` is the payment provider's id."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        enum_check("status", SubscriptionStatus),
        Index(
            "uq_subscriptions_live_workspace",
            "workspace_id",
            unique=True,
            postgresql_where=_live_where(),
            sqlite_where=_live_where(),
        ),
    )

    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id", ondelete="RESTRICT"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        StrEnumType(SubscriptionStatus), default=SubscriptionStatus.ACTIVE
    )
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime | None] = mapped_column(default=None)
    cancel_at: Mapped[datetime | None] = mapped_column(default=None)
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True, default=None)
    # `created` of the newest provider event applied: an older one arriving late is ignored.
    provider_event_at: Mapped[datetime | None] = mapped_column(default=None)


class Usage(Base):
    """How much of `metric` (e.g. ``executions``) a workspace used in one period."""

    __tablename__ = "usage"
    __table_args__ = (
        UniqueConstraint("workspace_id", "metric", "period_start"),
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    workspace_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    metric: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime]
    quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, sort_order=AUDIT_ORDER
    )


class BillingEvent(Base):
    """A payment provider's event (a Stripe `evt_...`) that was applied: never twice."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
