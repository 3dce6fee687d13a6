"""Webhooks: the node's own rate limit.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

`webhooks.rate_limit` is the webhook node's `rate_limit` parameter (`100/second`,
`unlimited`), copied like its other settings so a call reads it with the endpoint.
NULL: `LINKFLOW_WEBHOOK_RATE_LIMIT` applies (unset by default: no limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_column("rate_limit")
