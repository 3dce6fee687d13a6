"""Outgoing webhooks: a workspace's subscriptions to execution events, and their deliveries.

Invariants:
- A subscription belongs to one workspace and dies with it (and with its workflow,
  when it filters on one). Its signing secret is sealed by the secret box with the
  subscription's id as associated data; it is shown once, at creation.
- One delivery per subscription and execution event: `event_key` names the event
  (`execution.completed`, or `execution.waiting:<seq>` for each of an execution's
  waits), unique with the subscription and the execution, so a fan-out repeated by
  recovery or by a replayed end adds nothing.
- A delivery row is the truth about its attempts; the queue's job only carries its id.
  `next_attempt_at` is when the next attempt may start: a job that arrives earlier
  (a duplicate) finds nothing to do.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from linkflow.store.enums import DeliveryStatus
from linkflow.store.models._base import Timestamped, WorkspaceScoped, enum_check
from linkflow.store.types import JSONDocument, JSONObject, StrEnumType, StringArray

__all__ = ["WebhookDelivery", "WebhookSubscription"]


class WebhookSubscription(Timestamped, WorkspaceScoped):
    """A URL that receives a workspace's execution events, signed with its own secret."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        Index("ix_webhook_subscriptions_workspace_created", "workspace_id", "created_at", "id"),
    )

    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(StringArray)
    # Only this workflow's executions; NULL: every workflow of the workspace.
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), default=None
    )
    description: Mapped[str] = mapped_column(String(255), default="")
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(default=True)


class WebhookDelivery(Timestamped, WorkspaceScoped):
    """One event sent (or to be sent) to one subscription, with its attempts' outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "execution_id", "event_key"),
        enum_check("status", DeliveryStatus),
        Index("ix_webhook_deliveries_subscription_created", "subscription_id", "created_at", "id"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE")
    )
    execution_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("executions.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(64))
    event_key: Mapped[str] = mapped_column(String(128))
    status: Mapped[DeliveryStatus] = mapped_column(
        StrEnumType(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # The JSON body sent, the same at every attempt (and at a redelivery).
    payload: Mapped[JSONObject] = mapped_column(JSONDocument)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
