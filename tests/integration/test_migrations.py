"""The migrations build exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from linkflow.store import (
    Database,
    Execution,
    ExecutionEvent,
    Plan,
    StoreUnavailable,
    User,
    Workflow,
    Workspace,
    create_engine,
)
from linkflow.store.migrate import check, current, downgrade, head, upgrade
from tests._services import free_port

EXPECTED_TABLES = {
    "users",
    "billing_events",
    "sessions",
    "api_keys",
    "oauth_connections",
    "workspaces",
    "workspace_members",
    "workflows",
    "workflow_versions",
    "executions",
    "node_executions",
    "credentials",
    "schedules",
    "webhooks",
    "webhook_signatures",
    "webhook_subscriptions",
    "webhook_deliveries",
    "plans",
    "subscriptions",
    "usage",
    "audit_logs",
    "execution_events",
    "variables",
    "idempotency_keys",
    "execution_leases",
    "password_reset_tokens",
    "oauth2_connect_states",
    "credential_refresh_leases",
}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names) - {"alembic_version"}


async def _indexes(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(lambda sync: inspect(sync).get_indexes(table))
    finally:
        await engine.dispose()
    return {str(index["name"]) for index in found}


class TestUpgrade:
    async def test_upgrade_creates_every_table(self, empty_db_url: str) -> None:
        """A never-migrated database gets every table of the schema, and nothing else."""
        await upgrade(empty_db_url)
        assert await _tables(empty_db_url) == EXPECTED_TABLES

    async def test_a_migrated_database_matches_the_models(self, empty_db_url: str) -> None:
        """Autogenerate finds no difference between the models and the migrated schema."""
        await upgrade(empty_db_url)
        assert await check(empty_db_url) == []

    async def test_current_is_none_before_and_head_after(self, empty_db_url: str) -> None:
        """`current` reports no revision on a fresh database and the head after upgrading."""
        assert await current(empty_db_url) is None
        await upgrade(empty_db_url)
        assert await current(empty_db_url) == head()

    async def test_upgrading_twice_is_a_no_op(self, empty_db_url: str) -> None:
        """Running the migrations on an up-to-date database changes nothing."""
        await upgrade(empty_db_url)
        await upgrade(empty_db_url)
        assert await check(empty_db_url) == []

    async def test_the_tags_gin_index_exists_on_postgresql_only(self, empty_db_url: str) -> None:
        """workflows.tags gets a GIN index on PostgreSQL; SQLite has no such index kind."""
        await upgrade(empty_db_url)
        indexes = await _indexes(empty_db_url, "workflows")
        assert ("ix_workflows_tags" in indexes) == empty_db_url.startswith("postgresql")
        assert "ix_workflows_workspace_created" in indexes


class TestDowngrade:
    async def test_downgrade_to_base_leaves_no_tables(self, empty_db_url: str) -> None:
        """Downgrading to base drops every table the migrations created."""
        await upgrade(empty_db_url)
        await downgrade(empty_db_url)
        assert await _tables(empty_db_url) == set()
        assert await current(empty_db_url) is None

    async def test_upgrade_after_downgrade_rebuilds_the_schema(self, empty_db_url: str) -> None:
        """The migrations round-trip: up, down, up again gives the full, seeded schema."""
        await upgrade(empty_db_url)
        await downgrade(empty_db_url)
        await upgrade(empty_db_url)
        assert await check(empty_db_url) == []
        db = Database(empty_db_url)
        try:
            async with db.session() as session:
                codes = (await session.scalars(select(Plan.code))).all()
        finally:
            await db.dispose()
        assert sorted(codes) == ["business", "enterprise", "free", "pro"]


class TestCheck:
    async def test_check_reports_a_database_that_is_not_at_head(self, empty_db_url: str) -> None:
        """A database behind head yields one line saying which revision it is at."""
        differences = await check(empty_db_url)
        assert len(differences) == 1
        assert "base" in differences[0]
        assert head() in differences[0]

    async def test_check_names_an_index_missing_from_the_database(
        self, empty_db_url: str
    ) -> None:
        """A schema that drifted from the models is reported, naming what differs."""
        await upgrade(empty_db_url)
        engine = create_engine(empty_db_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("DROP INDEX ix_schedules_due"))
        finally:
            await engine.dispose()
        assert await check(empty_db_url) == [
            "index ix_schedules_due on schedules exists only in the models"
        ]


class TestSeededPlans:
    async def test_plans_are_seeded_with_their_limits(self, database: Database) -> None:
        """free has small limits; enterprise has none (NULL means unlimited)."""
        async with database.session() as session:
            plans = {plan.code: plan for plan in (await session.scalars(select(Plan))).all()}
        assert set(plans) == {"free", "pro", "business", "enterprise"}
        free, enterprise = plans["free"], plans["enterprise"]
        assert (free.price_cents, free.executions_per_month, free.workflows) == (0, 1_000, 5)
        assert (free.team_members, free.retention_days) == (1, 7)
        assert enterprise.executions_per_month is None
        assert enterprise.workflows is None
        assert enterprise.team_members is None
        assert enterprise.retention_days is None
        paid = [plans[code].executions_per_month or 0 for code in ("free", "pro", "business")]
        assert paid == sorted(paid)
        assert free.max_concurrent_executions == 2
        assert enterprise.max_concurrent_executions is None
        assert "webhooks" in free.features
        assert set(free.features) < set(enterprise.features)


class TestConstraints:
    async def test_an_event_seq_is_unique_per_execution(self, database: Database) -> None:
        """The database itself refuses a second event with the same (execution_id, seq)."""
        async with database.transaction() as session:
            owner = User(email=f"{uuid.uuid4().hex}@example.com")
            session.add(owner)
            await session.flush()
            workspace = Workspace(name="w", slug=uuid.uuid4().hex, owner_id=owner.id)
            session.add(workspace)
            await session.flush()
            workflow = Workflow(workspace_id=workspace.id, name="wf")
            session.add(workflow)
            await session.flush()
            execution = Execution(
                workspace_id=workspace.id, workflow_id=workflow.id, workflow_version=1
            )
            session.add(execution)
            await session.flush()
            session.add(ExecutionEvent(execution_id=execution.id, seq=0, type="execution.queued"))
        async with database.session() as session:
            session.add(ExecutionEvent(execution_id=execution.id, seq=0, type="execution.started"))
            with pytest.raises(IntegrityError):
                await session.flush()


class TestUnreachableDatabase:
    async def test_upgrade_of_an_unreachable_postgresql_raises_store_unavailable(self) -> None:
        """No server on the port: a one-line StoreUnavailable naming host, port and reason."""
        port = free_port()
        with pytest.raises(StoreUnavailable) as caught:
            await upgrade(f"postgresql://linkflow:secret@127.0.0.1:{port}/linkflow")
        message = str(caught.value)
        assert message == f"cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused"
        assert "secret" not in message

    async def test_check_of_an_unopenable_sqlite_file_raises_store_unavailable(
        self, tmp_path: Path
    ) -> None:
        """A SQLite path that cannot be opened (here: a directory) is StoreUnavailable."""
        with pytest.raises(StoreUnavailable, match="cannot open SQLite database"):
            await check(f"sqlite:///{tmp_path}")
