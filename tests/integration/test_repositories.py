"""Repositories keep workspaces apart, page stably and store histories in order.

Every test runs on SQLite and on PostgreSQL (the `database` fixture), in a
database shared by the module, so each test creates its own workspaces.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from linkflow.store import (
    Credential,
    CredentialRepository,
    Cursor,
    Database,
    EventRepository,
    Execution,
    ExecutionRepository,
    ExecutionStatus,
    InvalidCursor,
    NewEvent,
    StoreConfigError,
    StoreConflict,
    StoreUnavailable,
    User,
    UserRepository,
    VariableRepository,
    Workflow,
    WorkflowRepository,
    WorkflowStatus,
    normalize_url,
)
from tests.integration._rows import new_execution, new_workflow, new_workspace


class TestWorkspaceScoping:
    async def test_get_returns_none_for_another_workspaces_row(self, database: Database) -> None:
        """A row is found only through a repository bound to its own workspace."""
        mine, theirs = await new_workspace(database), await new_workspace(database)
        workflow = await new_workflow(database, theirs)
        async with database.session() as session:
            assert await WorkflowRepository(session, mine).get(workflow.id) is None
            found = await WorkflowRepository(session, theirs).get(workflow.id)
        assert found is not None
        assert found.workspace_id == theirs

    async def test_list_shows_only_the_workspaces_rows(self, database: Database) -> None:
        """Listing never includes another workspace's rows."""
        mine, theirs = await new_workspace(database), await new_workspace(database)
        await new_workflow(database, mine, "mine")
        await new_workflow(database, theirs, "theirs")
        async with database.session() as session:
            page = await WorkflowRepository(session, mine).list()
            count = await WorkflowRepository(session, mine).count()
        assert [workflow.name for workflow in page.items] == ["mine"]
        assert count == 1

    async def test_delete_cannot_touch_another_workspaces_row(self, database: Database) -> None:
        """Deleting through the wrong workspace matches nothing and changes nothing."""
        mine, theirs = await new_workspace(database), await new_workspace(database)
        execution = await new_execution(database, theirs)
        async with database.transaction() as session:
            assert await ExecutionRepository(session, mine).delete(execution.id) is False
        async with database.transaction() as session:
            assert await ExecutionRepository(session, theirs).get(execution.id) is not None
            assert await ExecutionRepository(session, theirs).delete(execution.id) is True
        async with database.session() as session:
            assert await ExecutionRepository(session, theirs).get(execution.id) is None

    async def test_add_puts_the_row_in_the_repositorys_workspace(self, database: Database) -> None:
        """`add` sets workspace_id, and refuses a row already bound to another workspace."""
        mine, theirs = await new_workspace(database), await new_workspace(database)
        async with database.transaction() as session:
            credential = Credential(name="api", type="t", data_encrypted=b"x", key_id="k1")
            await CredentialRepository(session, mine).add(credential)
            assert credential.workspace_id == mine
            stray = Credential(
                workspace_id=theirs, name="api", type="t", data_encrypted=b"x", key_id="k1"
            )
            with pytest.raises(ValueError, match="belongs to workspace"):
                await CredentialRepository(session, mine).add(stray)

    async def test_soft_deleted_rows_are_invisible(self, database: Database) -> None:
        """A soft-deleted credential disappears from get, get_by_name and list, but stays stored."""
        workspace = await new_workspace(database)
        async with database.transaction() as session:
            repository = CredentialRepository(session, workspace)
            credential = await repository.add(
                Credential(name="old", type="t", data_encrypted=b"x", key_id="k1")
            )
            assert await repository.delete(credential.id) is True
            assert await repository.delete(credential.id) is False
        async with database.session() as session:
            repository = CredentialRepository(session, workspace)
            assert await repository.get(credential.id) is None
            assert await repository.get_by_name("old") is None
            assert (await repository.list()).items == []
            stored = await session.get(Credential, credential.id)
        assert stored is not None
        assert stored.deleted_at is not None

    async def test_variables_are_per_workspace(self, database: Database) -> None:
        """The same key holds different values in different workspaces; `set` overwrites."""
        mine, theirs = await new_workspace(database), await new_workspace(database)
        async with database.transaction() as session:
            await VariableRepository(session, mine).set("region", "eu")
            await VariableRepository(session, theirs).set("region", "us")
            await VariableRepository(session, mine).set("region", "eu-west")
        async with database.session() as session:
            assert await VariableRepository(session, mine).as_mapping() == {"region": "eu-west"}
            assert await VariableRepository(session, theirs).as_mapping() == {"region": "us"}


class TestPagination:
    async def test_pages_cover_every_row_once_newest_first(self, database: Database) -> None:
        """Following next_cursor visits every row exactly once, newest first."""
        workspace = await new_workspace(database)
        created = [await new_workflow(database, workspace, f"wf{i}") for i in range(7)]
        seen: list[str] = []
        cursor: str | None = None
        async with database.session() as session:
            repository = WorkflowRepository(session, workspace)
            for _ in range(4):
                page = await repository.list(limit=3, cursor=cursor)
                seen.extend(workflow.name for workflow in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
        assert cursor is None
        assert seen == [workflow.name for workflow in reversed(created)]

    async def test_rows_created_at_the_same_instant_are_ordered_by_id(
        self, database: Database
    ) -> None:
        """Ties on created_at are broken by id, so no row is skipped or repeated."""
        workspace = await new_workspace(database)
        instant = datetime(2030, 1, 1, tzinfo=UTC)
        async with database.transaction() as session:
            repository = WorkflowRepository(session, workspace)
            for i in range(5):
                await repository.add(Workflow(name=f"tie{i}", created_at=instant))
        pages: list[list[str]] = []
        cursor: str | None = None
        async with database.session() as session:
            repository = WorkflowRepository(session, workspace)
            while True:
                page = await repository.list(limit=2, cursor=cursor)
                pages.append([workflow.name for workflow in page.items])
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        assert [len(page) for page in pages] == [2, 2, 1]
        assert sorted(name for page in pages for name in page) == [f"tie{i}" for i in range(5)]

    async def test_filters_combine_with_pagination(self, database: Database) -> None:
        """A status filter applies on every page."""
        workspace = await new_workspace(database)
        async with database.transaction() as session:
            repository = WorkflowRepository(session, workspace)
            for i in range(4):
                status = WorkflowStatus.ACTIVE if i % 2 else WorkflowStatus.DRAFT
                await repository.add(Workflow(name=f"s{i}", status=status))
        async with database.session() as session:
            repository = WorkflowRepository(session, workspace)
            first = await repository.list(limit=1, status=WorkflowStatus.ACTIVE)
            second = await repository.list(
                limit=1, cursor=first.next_cursor, status=WorkflowStatus.ACTIVE
            )
        assert [w.name for w in [*first.items, *second.items]] == ["s3", "s1"]
        assert second.next_cursor is None

    async def test_a_forged_cursor_is_refused(self, database: Database) -> None:
        """A cursor the store did not produce raises InvalidCursor, not a database error."""
        workspace = await new_workspace(database)
        async with database.session() as session:
            with pytest.raises(InvalidCursor):
                await WorkflowRepository(session, workspace).list(cursor="not-a-cursor")

    async def test_page_size_is_bounded(self, database: Database) -> None:
        """A limit below 1 or above the maximum is refused."""
        workspace = await new_workspace(database)
        async with database.session() as session:
            with pytest.raises(ValueError, match="limit"):
                await WorkflowRepository(session, workspace).list(limit=0)
            with pytest.raises(ValueError, match="limit"):
                await WorkflowRepository(session, workspace).list(limit=10_000)

    def test_a_cursor_round_trips_through_its_token(self) -> None:
        """encode/decode is lossless (aware datetime with microseconds, UUID)."""
        cursor = Cursor(datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), uuid.uuid4())
        assert Cursor.decode(cursor.encode()) == cursor


class TestEvents:
    async def test_events_are_read_back_in_seq_order(self, database: Database) -> None:
        """Whatever the order of appends, an execution's history reads in seq order."""
        execution = await new_execution(database, await new_workspace(database))
        async with database.transaction() as session:
            events = EventRepository(session)
            await events.append(execution.id, 2, "node.completed", node_id="a", data={"n": 2})
            await events.append(execution.id, 0, "execution.started")
            await events.append(execution.id, 1, "node.started", node_id="a")
        async with database.session() as session:
            history = await EventRepository(session).read(execution.id)
            after = await EventRepository(session).read(execution.id, after_seq=0)
            last = await EventRepository(session).last_seq(execution.id)
        assert [(e.seq, e.type) for e in history] == [
            (0, "execution.started"),
            (1, "node.started"),
            (2, "node.completed"),
        ]
        assert history[2].data == {"n": 2}
        assert history[2].node_id == "a"
        assert [e.seq for e in after] == [1, 2]
        assert last == 2

    async def test_a_duplicate_seq_is_refused_and_the_transaction_survives(
        self, database: Database
    ) -> None:
        """Appending a taken seq raises StoreConflict; the same transaction can go on."""
        execution = await new_execution(database, await new_workspace(database))
        async with database.transaction() as session:
            events = EventRepository(session)
            await events.append(execution.id, 0, "execution.started")
            with pytest.raises(StoreConflict, match="already exists"):
                await events.append(execution.id, 0, "execution.started")
            await events.append(execution.id, 1, "execution.completed")
        async with database.session() as session:
            history = await EventRepository(session).read(execution.id)
        assert [e.type for e in history] == ["execution.started", "execution.completed"]

    async def test_append_many_inserts_free_seqs_and_reports_taken_ones(
        self, database: Database
    ) -> None:
        """One batch across executions: taken (execution, seq) pairs come back, others land."""
        workspace = await new_workspace(database)
        first = await new_execution(database, workspace)
        second = await new_execution(database, workspace)
        async with database.transaction() as session:
            events = EventRepository(session)
            await events.append(first.id, 0, "execution.started")
            refused = await events.append_many(
                [
                    NewEvent(first.id, 0, "execution.started"),
                    NewEvent(first.id, 1, "node.started", node_id="a"),
                    NewEvent(second.id, 0, "execution.started", data={"k": [1, 2]}),
                ]
            )
        assert refused == [(first.id, 0)]
        async with database.session() as session:
            assert [e.seq for e in await EventRepository(session).read(first.id)] == [0, 1]
            (only,) = await EventRepository(session).read(second.id)
        assert only.data == {"k": [1, 2]}

    async def test_events_go_when_their_execution_is_deleted(self, database: Database) -> None:
        """Deleting an execution cascades to its history (retention relies on it)."""
        workspace = await new_workspace(database)
        execution = await new_execution(database, workspace)
        async with database.transaction() as session:
            await EventRepository(session).append(execution.id, 0, "execution.started")
        async with database.transaction() as session:
            assert await ExecutionRepository(session, workspace).delete(execution.id)
        async with database.session() as session:
            assert await EventRepository(session).read(execution.id) == []


class TestDatetimes:
    async def test_datetimes_come_back_aware_in_utc(self, database: Database) -> None:
        """An aware datetime in any zone is stored as its instant and read back as UTC."""
        workspace = await new_workspace(database)
        execution = await new_execution(database, workspace)
        paris_summer = timezone(timedelta(hours=2))
        started = datetime(2031, 6, 1, 14, 30, 15, 250_000, tzinfo=paris_summer)
        async with database.transaction() as session:
            row = await ExecutionRepository(session, workspace).get(execution.id)
            assert row is not None
            row.started_at = started
            row.status = ExecutionStatus.RUNNING
        async with database.session() as session:
            loaded = await ExecutionRepository(session, workspace).get(execution.id)
        assert loaded is not None
        assert loaded.started_at == started
        assert loaded.started_at is not None
        assert loaded.started_at.tzinfo == UTC
        assert loaded.started_at.hour == 12
        assert loaded.created_at.tzinfo == UTC
        assert loaded.status is ExecutionStatus.RUNNING

    async def test_naive_datetimes_are_refused(self, database: Database) -> None:
        """A naive datetime never reaches the database: its zone would be a guess."""
        workspace = await new_workspace(database)
        async with database.session() as session:
            naive = datetime(2030, 1, 1, 12, 0)  # noqa: DTZ001 (the point of the test)
            session.add(Workflow(workspace_id=workspace, name="n", activated_at=naive))
            with pytest.raises(StatementError, match="naive datetime"):
                await session.flush()

    async def test_comparisons_use_the_instant_not_the_zone(self, database: Database) -> None:
        """Filtering by time works across zones (SQLite compares stored UTC text)."""
        workspace = await new_workspace(database)
        execution = await new_execution(database, workspace)
        async with database.transaction() as session:
            row = await ExecutionRepository(session, workspace).get(execution.id)
            assert row is not None
            row.wait_until = datetime(2032, 1, 1, 10, 0, tzinfo=UTC)
        earlier_elsewhere = datetime(2032, 1, 1, 11, 0, tzinfo=timezone(timedelta(hours=5)))
        async with database.session() as session:
            due = await session.scalars(
                select(Execution.id).where(
                    Execution.id == execution.id, Execution.wait_until > earlier_elsewhere
                )
            )
            assert due.all() == [execution.id]


class TestUsers:
    async def test_email_is_stored_lower_case_and_found_in_any_case(
        self, database: Database
    ) -> None:
        """Lookups by e-mail ignore case, and a second account for it is refused."""
        local = uuid.uuid4().hex
        async with database.transaction() as session:
            user = await UserRepository(session).add(User(email=f"{local}@Example.COM"))
        assert user.email == f"{local}@example.com"
        async with database.session() as session:
            found = await UserRepository(session).get_by_email(f"{local.upper()}@EXAMPLE.com")
            assert found is not None
            assert found.id == user.id
            with pytest.raises(StoreConflict):
                await UserRepository(session).add(User(email=f"{local}@example.com"))


class TestDatabase:
    async def test_sqlite_connections_use_wal_and_enforce_foreign_keys(
        self, sqlite_url: str
    ) -> None:
        """Every SQLite connection is configured on connect (PostgreSQL needs nothing)."""
        db = Database(sqlite_url)
        try:
            async with db.session() as session:
                pragmas = [
                    (await session.execute(text(f"PRAGMA {name}"))).scalar()
                    for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
                ]
        finally:
            await db.dispose()
        assert pragmas == ["wal", 1, 1, 5000]

    async def test_sqlite_write_transactions_wait_for_each_other_instead_of_failing(
        self, sqlite_url: str
    ) -> None:
        """Concurrent read-then-write transactions all commit, one after another.

        With a deferred BEGIN, SQLite fails such a transaction at once ("database
        is locked") when another writer committed after its read.
        """
        db = Database(sqlite_url)
        try:
            execution = await new_execution(db, await new_workspace(db))

            async def append_next() -> None:
                async with db.transaction() as session:
                    events = EventRepository(session)
                    last = await events.last_seq(execution.id)
                    await asyncio.sleep(0)  # let the other transactions interleave
                    await events.append(execution.id, 0 if last is None else last + 1, "e")

            async with asyncio.TaskGroup() as group:
                for _ in range(8):
                    group.create_task(append_next())
            async with db.session() as session:
                history = await EventRepository(session).read(execution.id)
        finally:
            await db.dispose()
        assert [event.seq for event in history] == list(range(8))

    async def test_ping_answers_when_the_database_is_up(self, database: Database) -> None:
        """`ping` round-trips without error on a reachable database."""
        await database.ping()

    async def test_ping_raises_store_unavailable_when_nothing_listens(self) -> None:
        """An unreachable server surfaces as StoreUnavailable with a one-line reason."""
        db = Database("postgres://u:pw@127.0.0.1:1/x")
        try:
            with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1: connection refused"):
                await db.ping()
        finally:
            await db.dispose()

    @pytest.mark.parametrize(
        ("url", "normalized"),
        [
            ("postgres://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
            ("postgresql://u@h:5433/db", "postgresql+asyncpg://u@h:5433/db"),
            ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
            ("sqlite:///data/lf.db", "sqlite+aiosqlite:///data/lf.db"),
            ("sqlite+aiosqlite:////abs/lf.db", "sqlite+aiosqlite:////abs/lf.db"),
        ],
    )
    def test_urls_are_normalized_to_their_async_driver(self, url: str, normalized: str) -> None:
        """Plain scheme URLs are rewritten to asyncpg / aiosqlite."""
        assert normalize_url(url) == normalized

    @pytest.mark.parametrize(
        ("url", "complaint"),
        [
            ("not a url", "cannot parse database URL"),
            ("mysql://u:hunter2@h/db", "unsupported database 'mysql'"),
            ("postgresql+psycopg2://u:hunter2@h/db", "unsupported driver 'psycopg2'"),
        ],
    )
    def test_bad_urls_are_refused_in_one_line_without_the_password(
        self, url: str, complaint: str
    ) -> None:
        """StoreConfigError (a ValueError) names the problem, on one line, password masked."""
        with pytest.raises(StoreConfigError, match=complaint) as caught:
            normalize_url(url)
        assert isinstance(caught.value, ValueError)
        assert "\n" not in str(caught.value)
        assert "hunter2" not in str(caught.value)
