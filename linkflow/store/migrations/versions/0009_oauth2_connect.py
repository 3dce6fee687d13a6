"""OAuth2 credentials: connections waiting for the provider's callback, and refresh leases.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

`oauth2_connect_states` holds one row per started connection (the SHA-256 of its
`state`, the PKCE verifier, who started it and for which credential), deleted when
the callback uses it or once expired. `credential_refresh_leases` holds the process
refreshing a credential's token. Both tables are new and hold nothing durable: a
downgrade drops them (connections in progress must be started again).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth2_connect_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("credential_type", sa.String(length=64), nullable=False),
        sa.Column("credential_name", sa.String(length=255), nullable=True),
        sa.Column("credential_id", sa.Uuid(), nullable=True),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2048), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"], ondelete="CASCADE",
            name=op.f("fk_oauth2_connect_states_credential_id_credentials"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE",
            name=op.f("fk_oauth2_connect_states_user_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], ondelete="CASCADE",
            name=op.f("fk_oauth2_connect_states_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth2_connect_states")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth2_connect_states_state_hash")),
    )  # fmt: skip
    op.create_index("ix_oauth2_connect_states_expires_at", "oauth2_connect_states",
                    ["expires_at"], unique=False)  # fmt: skip
    op.create_table(
        "credential_refresh_leases",
        sa.Column("credential_id", sa.Uuid(), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"], ["credentials.id"], ondelete="CASCADE",
            name=op.f("fk_credential_refresh_leases_credential_id_credentials"),
        ),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_credential_refresh_leases")),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("credential_refresh_leases")
    op.drop_index("ix_oauth2_connect_states_expires_at", table_name="oauth2_connect_states")
    op.drop_table("oauth2_connect_states")
