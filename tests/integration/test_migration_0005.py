"""Migration 0005: plain webhook secrets leave the stored documents sealed, endpoint ids
become random, and without the secret box the migration refuses instead of losing one."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from linkflow.security.secretbox import SecretBox
from linkflow.store import Database, Webhook, Workflow, WorkflowVersion
from linkflow.store.migrate import current, upgrade
from linkflow.store.types import JSONDocument, StringArray, UTCDateTime, new_id, utcnow

BOX = SecretBox.from_key(os.urandom(32))
ACTIVE_SECRET = "plain-active-secret-1"
DRAFT_SECRET = "plain-draft-secret-2"


def hook_nodes(secret: str) -> list[dict[str, Any]]:
    parameters = {"secret": secret, "path": "in", "response_mode": "last_node"}
    return [{"id": "hook", "type": "webhook", "parameters": parameters}]


# The tables as 0004 left them: the models have the columns of later migrations.
USERS_0004 = sa.table(
    "users", sa.column("id", sa.Uuid()), sa.column("email"), sa.column("name"),
    sa.column("is_admin"), sa.column("mfa_enabled"), sa.column("failed_logins"),
    sa.column("mfa_recovery_codes", JSONDocument()), sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)  # fmt: skip
WORKSPACES_0004 = sa.table(
    "workspaces", sa.column("id", sa.Uuid()), sa.column("owner_id", sa.Uuid()),
    sa.column("name"), sa.column("slug"), sa.column("is_personal"),
    sa.column("settings", JSONDocument()), sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)  # fmt: skip
WEBHOOKS_0004 = sa.table(
    "webhooks", *(sa.column(name, sa.Uuid()) for name in ("id", "workspace_id", "workflow_id")),
    *(sa.column(name) for name in ("node_id", "path", "method", "response_mode",
                                   "secret_encrypted", "is_test", "call_count")),
    sa.column("ip_allowlist", StringArray()), sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)  # fmt: skip


async def seed(url: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """At 0004: an active workflow with its (old, derived-id) webhook row and a test row,
    and a draft without one, both with plain secrets in documents and versions."""
    database = Database(url)
    old_id = uuid.uuid5(uuid.NAMESPACE_URL, "derived")
    try:
        async with database.transaction() as session:
            now = utcnow()
            user_id, space_id = new_id(), new_id()
            await session.execute(sa.insert(USERS_0004).values(
                id=user_id, email=f"{uuid.uuid4()}@example.com", name="", is_admin=False,
                mfa_enabled=False, failed_logins=0, mfa_recovery_codes=[], created_at=now,
                updated_at=now,
            ))  # fmt: skip
            await session.execute(sa.insert(WORKSPACES_0004).values(
                id=space_id, owner_id=user_id, name="w", slug=uuid.uuid4().hex[:16],
                is_personal=False, settings={}, created_at=now, updated_at=now,
            ))  # fmt: skip
            flows = []
            for secret, status in ((ACTIVE_SECRET, "active"), (DRAFT_SECRET, "draft")):
                flow = Workflow(id=uuid.uuid4(), workspace_id=space_id, name=status,
                                nodes=hook_nodes(secret), connections=[], settings={},
                                status=status, version=1)  # fmt: skip
                session.add(flow)
                await session.flush()
                session.add(WorkflowVersion(workspace_id=space_id, workflow_id=flow.id, version=1,
                                            nodes=hook_nodes(secret), connections=[],
                                            settings={}))  # fmt: skip
                flows.append(flow.id)
            await session.flush()
            for row_id, is_test in ((old_id, False), (uuid.uuid4(), True)):
                await session.execute(sa.insert(WEBHOOKS_0004).values(
                    id=row_id, workspace_id=space_id, workflow_id=flows[0], node_id="hook",
                    path="in", method="POST", response_mode="last_node",
                    secret_encrypted=BOX.seal(ACTIVE_SECRET.encode()), ip_allowlist=[],
                    is_test=is_test, call_count=7, created_at=now, updated_at=now,
                ))  # fmt: skip
    finally:
        await database.dispose()
    return flows[0], flows[1], old_id


class TestMigration0005:
    async def test_secrets_are_sealed_and_ids_made_random(self, empty_db_url: str) -> None:
        """After 0005 no document or version holds a plain secret; each lives sealed in its
        node's webhook row (the draft gets one); the old derived id and test row are gone,
        the call count stays."""
        await upgrade(empty_db_url, "0004")
        active, draft, old_id = await seed(empty_db_url)
        await upgrade(empty_db_url, seal=BOX.seal)
        database = Database(empty_db_url)
        try:
            async with database.session() as session:
                documents = [*await session.scalars(select(Workflow.nodes)),
                             *await session.scalars(select(WorkflowVersion.nodes))]  # fmt: skip
                rows = {row.workflow_id: row for row in await session.scalars(select(Webhook))}
        finally:
            await database.dispose()
        for nodes in documents:
            assert nodes[0]["parameters"]["secret"] == {"sealed": True}
        assert set(rows) == {active, draft}  # one live row each, no test row
        assert old_id not in {row.id for row in rows.values()}
        assert BOX.open(rows[active].secret_encrypted or b"") == ACTIVE_SECRET.encode()
        assert BOX.open(rows[draft].secret_encrypted or b"") == DRAFT_SECRET.encode()
        assert (rows[active].call_count, rows[draft].enabled) == (7, True)
        assert not rows[active].legacy_signature

    async def test_without_the_box_it_refuses_and_changes_nothing(
        self, empty_db_url: str
    ) -> None:
        """A plain secret to seal and no `seal`: the upgrade fails and the database stays at
        0004 (nothing is dropped)."""
        await upgrade(empty_db_url, "0004")
        await seed(empty_db_url)
        with pytest.raises(RuntimeError, match="linkflow migrate"):
            await upgrade(empty_db_url)
        assert await current(empty_db_url) == "0004"
