"""Webhook rows of workflows: their random ids, sealed signing secrets and settings.

Invariants:
- A workflow's document never holds a signing secret: a plain `secret` sent
  in a webhook node (or a push trigger: `push_triggers.WEBHOOK_NODE_TYPES`) is
  sealed into that node's webhook row and the document keeps `SEALED`
  (`{"sealed": true}`). Saving `SEALED` again keeps the stored secret; a new
  string replaces it; null or an empty string removes it. So
  every read of a document (get, list, export, versions, clone) is free of
  secrets with nothing to strip on the way out.
- A webhook row lives as long as its node is in the document (drafts and
  inactive workflows included), so its id and secret outlive deactivation; it
  answers only while the workflow is active and the node enabled.
- Ids are `uuid4`, derived from nothing a caller knows; `rotate` gives a row a
  new one (the old URL is unknown at once in this process, and within the
  endpoint cache's refresh in the others).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from linkflow.engine import CompiledWorkflow
from linkflow.security.secretbox import SecretBox
from linkflow.services.errors import FieldProblem, Invalid
from linkflow.services.push_triggers import WEBHOOK_NODE_TYPES
from linkflow.store import Webhook, WebhookResponseMode, Workflow

__all__ = [
    "SEALED",
    "Keep",
    "SealedNodes",
    "SecretChange",
    "sealed_nodes",
    "sync_webhooks",
    "webhook_row",
]

SEALED: Final[Mapping[str, bool]] = {"sealed": True}


class Keep(Enum):
    """The document says `SEALED`: keep the secret stored for the node."""

    SECRET = "keep"  # noqa: S105 - a marker, not a secret


SecretChange = str | Keep | None
"""A node's new secret, `Keep.SECRET`, or None for none."""
SealedNodes = tuple[list[dict[str, Any]], dict[str, SecretChange]]


def sealed_nodes(nodes: Sequence[Mapping[str, Any]]) -> SealedNodes:
    """`nodes` with each webhook node's plain secret replaced by `SEALED`, and what each
    webhook node asks for its secret (by node id)."""
    out: list[dict[str, Any]] = []
    changes: dict[str, SecretChange] = {}
    for node in nodes:
        params = node.get("parameters")
        if node.get("type") not in WEBHOOK_NODE_TYPES or not isinstance(params, dict):
            out.append(dict(node))
            continue
        secret = params.get("secret")
        node_id = str(node.get("id"))
        if isinstance(secret, str) and secret:
            changes[node_id] = secret
            out.append({**node, "parameters": {**params, "secret": dict(SEALED)}})
            continue
        changes[node_id] = Keep.SECRET if _is_sealed(secret) else None
        out.append(dict(node))
    return out, changes


def _is_sealed(value: object) -> bool:
    return isinstance(value, dict) and value.get("sealed") is True


def webhook_row(
    workflow: Workflow, node_id: str, params: Mapping[str, Any], *, sealed: bytes | None,
    test: bool = False, enabled: bool = True,
) -> Webhook:  # fmt: skip
    """A new row (a fresh random id) for a webhook node."""
    return Webhook(
        id=uuid.uuid4(), workspace_id=workflow.workspace_id, workflow_id=workflow.id,
        node_id=node_id, is_test=test, secret_encrypted=sealed, call_count=0,
        **_settings(params, enabled=enabled),
    )  # fmt: skip


def _settings(params: Mapping[str, Any], *, enabled: bool) -> dict[str, Any]:
    """What a webhook row takes from its node (the rest, id and counts, is the row's own)."""
    return {
        "path": str(params.get("path") or ""),
        "method": str(params.get("method") or "POST").upper(),
        "response_mode": WebhookResponseMode(params.get("response_mode") or "immediately"),
        "ip_allowlist": list(params.get("ip_allowlist") or []),
        "max_body_bytes": params.get("max_body_bytes"),
        "rate_limit": params.get("rate_limit"),
        "legacy_signature": params.get("legacy_signature") is True,
        "enabled": enabled,
    }


async def sync_webhooks(
    session: AsyncSession, box: SecretBox, workflow: Workflow, compiled: CompiledWorkflow,
    changes: Mapping[str, SecretChange], inherited: Mapping[str, bytes] | None = None,
) -> None:  # fmt: skip
    """Make the workflow's live webhook rows match its webhook nodes: new nodes get a row
    (a random id), existing rows take the node's settings and keep their id and counts,
    rows of removed nodes go. `inherited` holds sealed secrets a `SEALED` node may take
    when it has no row yet (a clone's source's). A `SEALED` node with no secret to keep
    is refused: exports do not carry secrets, so it must be given again."""
    rows = {row.node_id: row for row in await session.scalars(
        select(Webhook).where(Webhook.workflow_id == workflow.id, Webhook.is_test.is_(False))
    )}  # fmt: skip
    missing: list[FieldProblem] = []
    for compiled_node in compiled.nodes.values():
        spec = compiled_node.spec
        if spec.type not in WEBHOOK_NODE_TYPES:
            continue
        row = rows.pop(spec.id, None)
        change = changes.get(spec.id)
        sealed: bytes | None = None
        if isinstance(change, str):
            sealed = box.seal(change.encode())
        elif change is Keep.SECRET:
            sealed = row.secret_encrypted if row is not None else None
            sealed = sealed if sealed is not None else (inherited or {}).get(spec.id)
            if sealed is None:
                missing.append(FieldProblem(
                    f"body.nodes.{spec.id}.parameters.secret",
                    "no secret is stored for this node (exports carry none): send the secret",
                    "webhook_secret_unknown",
                ))  # fmt: skip
                continue
        if row is None:
            session.add(webhook_row(workflow, spec.id, spec.parameters, sealed=sealed,
                                    enabled=not spec.disabled))  # fmt: skip
            continue
        for name, value in _settings(spec.parameters, enabled=not spec.disabled).items():
            setattr(row, name, value)
        row.secret_encrypted = sealed
    if missing:
        raise Invalid("a webhook's sealed secret is not known here",
                      code="webhook_secret_unknown", errors=missing)  # fmt: skip
    for row in rows.values():
        await session.delete(row)
