"""Billing and administration: plan limits and features, applied provider events,
workspace limit overrides and payment customers, user suspension.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

- `plans.max_concurrent_executions` and `plans.features` (the four seeded plans get
  theirs here; NULL: unlimited, as for the other limits);
- `subscriptions.provider_event_at`: the `created` time of the newest provider event
  applied, so an event delivered late does not undo a newer one;
- `billing_events`: the ids of the provider events applied (each at most once);
- `workspaces.limit_overrides` (an instance admin's limits above the plan's, `{}` for
  every existing workspace) and `workspaces.billing_customer_id` (a Stripe customer);
- `users.suspended_at`: a suspended user's logins, sessions and keys stop working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from linkflow.store.types import JSONDocument, StringArray

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Concurrent executions each plan runs at most, and what it includes.
PLAN_EXTRAS: dict[str, tuple[int | None, list[str]]] = {
    "free": (2, ["webhooks", "schedules", "code"]),
    "pro": (10, ["webhooks", "schedules", "code", "outgoing_webhooks", "api_keys"]),
    "business": (
        50,
        [
            "webhooks",
            "schedules",
            "code",
            "outgoing_webhooks",
            "api_keys",
            "audit_log",
            "priority_support",
        ],
    ),
    "enterprise": (
        None,
        [
            "webhooks",
            "schedules",
            "code",
            "outgoing_webhooks",
            "api_keys",
            "audit_log",
            "priority_support",
            "sso",
            "sla",
        ],
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_concurrent_executions", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("features", StringArray(), nullable=True))
    plans = sa.table(
        "plans",
        sa.column("code", sa.String),
        sa.column("max_concurrent_executions", sa.Integer),
        sa.column("features", StringArray()),
    )
    op.execute(plans.update().values(features=[]))  # a plan added by hand: none listed
    for code, (concurrent, features) in PLAN_EXTRAS.items():
        op.execute(
            plans.update()
            .where(plans.c.code == code)
            .values(max_concurrent_executions=concurrent, features=features)
        )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.alter_column("features", existing_type=StringArray(), nullable=False)
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("provider_event_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "billing_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_events")),
    )
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("limit_overrides", JSONDocument(), nullable=False, server_default="{}")
        )
        batch_op.add_column(sa.Column("billing_customer_id", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(
            op.f("uq_workspaces_billing_customer_id"), ["billing_customer_id"]
        )
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.alter_column("limit_overrides", existing_type=JSONDocument(), server_default=None)
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("suspended_at")
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_workspaces_billing_customer_id"), type_="unique")
        batch_op.drop_column("billing_customer_id")
        batch_op.drop_column("limit_overrides")
    op.drop_table("billing_events")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("provider_event_at")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("features")
        batch_op.drop_column("max_concurrent_executions")
