"""Webhooks: secrets out of the documents, random endpoint ids, the signature replay cache.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10

- `webhooks.legacy_signature`: the node's opt-in to the old body-only signature;
  off for every existing webhook (the old scheme can be replayed forever).
- `webhooks.enabled`: a webhook row now lives as long as its node, whatever the
  workflow's status, and a disabled node's row keeps its id and secret.
- `webhook_signatures`: timestamped signatures already accepted, until they
  could not pass the time check anyway.
- Every existing endpoint gets a random id: the old ones were uuid5 of the
  workflow and node ids, which anyone knowing those could compute. Test URLs
  are dropped (arming them again makes new ones). Existing webhook URLs
  change: callers take the new ones from `GET /api/v1/workflows/{id}`.
- A plain `secret` in a webhook node of a workflow's document is sealed into
  its webhook row (created when the workflow was not active) and replaced by
  `{"sealed": true}`. Stored versions lose theirs the same way (an exception to
  "a version row never changes": keeping a readable secret is worse), and so do
  deleted workflows, without sealing (nothing can call them again). Sealing
  needs the secret box: `linkflow migrate` hands in its `seal`; without one,
  a database holding such secrets is refused with a message saying so.

Downgrade drops the columns and the table; documents keep `{"sealed": true}`
(the old code reads it as "no secret": set the secrets again after a downgrade).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from linkflow.store.migrate import SEAL_ATTRIBUTE
from linkflow.store.types import JSONDocument, StringArray, UTCDateTime

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED: dict[str, Any] = {"sealed": True}

_workflows = sa.table(
    "workflows",
    sa.column("id", sa.Uuid()),
    sa.column("workspace_id", sa.Uuid()),
    sa.column("nodes", JSONDocument()),
    sa.column("deleted_at", sa.DateTime(timezone=True)),
)
_versions = sa.table("workflow_versions", sa.column("id", sa.Uuid()),
                     sa.column("nodes", JSONDocument()))  # fmt: skip
_webhooks = sa.table(
    "webhooks",
    sa.column("id", sa.Uuid()),
    sa.column("workspace_id", sa.Uuid()),
    sa.column("workflow_id", sa.Uuid()),
    sa.column("node_id", sa.String()),
    sa.column("path", sa.String()),
    sa.column("method", sa.String()),
    sa.column("response_mode", sa.String()),
    sa.column("secret_encrypted", sa.LargeBinary()),
    sa.column("ip_allowlist", StringArray()),
    sa.column("max_body_bytes", sa.Integer()),
    sa.column("is_test", sa.Boolean()),
    sa.column("call_count", sa.BigInteger()),
    sa.column("legacy_signature", sa.Boolean()),
    sa.column("enabled", sa.Boolean()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legacy_signature", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))  # fmt: skip
        batch_op.add_column(sa.Column("enabled", sa.Boolean(), nullable=False,
                                      server_default=sa.true()))  # fmt: skip
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        # The defaults were for the existing rows; the models fill these columns.
        batch_op.alter_column("legacy_signature", server_default=None)
        batch_op.alter_column("enabled", server_default=None)
    op.create_table(
        "webhook_signatures",
        sa.Column("workflow_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "workflow_id", "node_id", "signature", name=op.f("pk_webhook_signatures")
        ),
    )
    op.create_index("ix_webhook_signatures_expires_at", "webhook_signatures", ["expires_at"],
                    unique=False)  # fmt: skip
    bind = op.get_bind()
    _randomise_endpoint_ids(bind)
    config = op.get_context().config
    seal = config.attributes.get(SEAL_ATTRIBUTE) if config is not None else None
    _seal_document_secrets(bind, seal)


def downgrade() -> None:
    op.drop_index("ix_webhook_signatures_expires_at", table_name="webhook_signatures")
    op.drop_table("webhook_signatures")
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_column("enabled")
        batch_op.drop_column("legacy_signature")


def _randomise_endpoint_ids(bind: sa.Connection) -> None:
    bind.execute(sa.delete(_webhooks).where(_webhooks.c.is_test == sa.true()))
    for (row_id,) in bind.execute(sa.select(_webhooks.c.id)).all():
        bind.execute(sa.update(_webhooks).where(_webhooks.c.id == row_id)
                     .values(id=uuid.uuid4()))  # fmt: skip


def _with_secret(statement_table: Any) -> Any:
    """Rows whose nodes mention a secret at all (the rest need not be read)."""
    return sa.cast(statement_table.c.nodes, sa.Text).like('%"secret"%')


def _seal_document_secrets(bind: sa.Connection, seal: Callable[[bytes], bytes] | None) -> None:
    rows = bind.execute(
        sa.select(_workflows.c.id, _workflows.c.workspace_id, _workflows.c.nodes,
                  _workflows.c.deleted_at).where(_with_secret(_workflows))
    ).all()  # fmt: skip
    for workflow_id, workspace_id, nodes, deleted_at in rows:
        stripped, secrets = _strip(nodes)
        if not secrets:
            continue
        if deleted_at is None:
            if seal is None:
                msg = ("migration 0005 must seal webhook secrets kept in workflow documents: "
                       "run `linkflow migrate`, which holds LINKFLOW_ENCRYPTION_KEY")  # fmt: skip
                raise RuntimeError(msg)
            for node, secret in secrets:
                _store_secret(bind, workspace_id, workflow_id, node, seal(secret.encode()))
        bind.execute(sa.update(_workflows).where(_workflows.c.id == workflow_id)
                     .values(nodes=stripped))  # fmt: skip
    for version_id, nodes in bind.execute(
        sa.select(_versions.c.id, _versions.c.nodes).where(_with_secret(_versions))
    ).all():
        stripped, secrets = _strip(nodes)
        if secrets:
            bind.execute(sa.update(_versions).where(_versions.c.id == version_id)
                         .values(nodes=stripped))  # fmt: skip


def _strip(nodes: Any) -> tuple[list[Any], list[tuple[dict[str, Any], str]]]:
    """`nodes` with every webhook node's plain secret replaced by the marker, and the
    (node, secret) pairs taken out."""
    if not isinstance(nodes, list):
        return nodes, []
    out: list[Any] = []
    secrets: list[tuple[dict[str, Any], str]] = []
    for node in nodes:
        params = node.get("parameters") if isinstance(node, dict) else None
        if not isinstance(params, dict) or node.get("type") != "webhook":
            out.append(node)
            continue
        secret = params.get("secret")
        if not isinstance(secret, str) or not secret:
            out.append(node)
            continue
        secrets.append((node, secret))
        out.append({**node, "parameters": {**params, "secret": SEALED}})
    return out, secrets


def _store_secret(
    bind: sa.Connection, workspace_id: uuid.UUID, workflow_id: uuid.UUID,
    node: dict[str, Any], sealed: bytes,
) -> None:  # fmt: skip
    node_id = str(node.get("id"))
    where = ((_webhooks.c.workflow_id == workflow_id) & (_webhooks.c.node_id == node_id)
             & (_webhooks.c.is_test == sa.false()))  # fmt: skip
    updated = bind.execute(sa.update(_webhooks).where(where).values(secret_encrypted=sealed))
    if updated.rowcount:
        return
    params = node.get("parameters") or {}
    now = datetime.now(UTC)
    mode = params.get("response_mode")
    bind.execute(sa.insert(_webhooks).values(
        id=uuid.uuid4(), workspace_id=workspace_id, workflow_id=workflow_id, node_id=node_id,
        path=str(params.get("path") or ""), method=str(params.get("method") or "POST").upper(),
        response_mode=mode if mode in {"immediately", "last_node", "respond_node"}
        else "immediately",
        secret_encrypted=sealed, ip_allowlist=[str(a) for a in params.get("ip_allowlist") or []],
        max_body_bytes=params.get("max_body_bytes"), is_test=False, call_count=0,
        legacy_signature=False, enabled=not node.get("disabled"), created_at=now, updated_at=now,
    ))  # fmt: skip
