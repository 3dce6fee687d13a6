"""Executions: a durable cancel request for a running execution.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

`executions.cancel_reason` holds a cancel request that the API accepted for a
running execution: the worker that holds the execution's lease, in whatever
process, reads it between nodes and ends the execution cancelled. Stored
before the answer, so the request survives a crash of the process that took it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("cancel_reason")
