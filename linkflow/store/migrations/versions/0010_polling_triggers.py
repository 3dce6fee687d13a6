"""Polling triggers: a schedule that polls, and the cursor it keeps.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

A polling trigger node (`postgres_trigger`...) is registered as a schedule row with
`polling` true and the node's `interval_s`. `poll_cursor` is the JSON text of the
cursor its last poll returned (NULL: not polled yet), written in the transaction
that moves `next_run_at` and creates the execution carrying what the poll found
(`linkflow.scheduler.polling`). Existing rows are schedules, so `polling` is false
for them; a downgrade drops both columns (a polling trigger re-activated after an
upgrade starts over from its first poll).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("polling", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))  # fmt: skip
        batch_op.add_column(sa.Column("poll_cursor", sa.Text(), nullable=True))
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        # The default was for the existing rows; the model fills the column.
        batch_op.alter_column("polling", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("poll_cursor")
        batch_op.drop_column("polling")
