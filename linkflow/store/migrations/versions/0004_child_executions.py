"""Executions: the key a child execution was started under.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

`executions.parent_key` is the idempotency key of a sub-workflow or error
workflow start (`<parent execution>:<node>:<run>:<n>`, `<execution>:error_workflow`).
Unique: a parent node that runs again after a crash, or two processes racing,
find the child that was started instead of starting a second one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_key", sa.String(length=300), nullable=True))
        batch_op.create_unique_constraint(op.f("uq_executions_parent_key"), ["parent_key"])


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_executions_parent_key"), type_="unique")
        batch_op.drop_column("parent_key")
