"""The postgres_trigger polled by the scheduler as `serve` wires it, on SQLite and on
PostgreSQL (the store), watching a table of the session's real PostgreSQL: one
execution per poll with exactly the new rows, each row once, also when the scheduler
is rebuilt on the same database between polls or two schedulers poll one tick."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select

from linkflow.config import Settings
from linkflow.engine import Engine
from linkflow.scheduler.local import LocalScheduler
from linkflow.security.rbac import Role, permissions_for
from linkflow.security.ssrf import AddressPolicy
from linkflow.services.context import Actor, Principal, RequestInfo, WorkspaceAccess
from linkflow.services.credentials import Credentials
from linkflow.services.workflows import WorkflowDocumentIn, WorkflowService
from linkflow.services.writer import GroupCommitWriter
from linkflow.store import Database, Execution, Schedule, User, Workspace
from linkflow.wiring import Shared, build_scheduler, build_shared
from tests._services import PostgresServer
from tests.api._support import ENCRYPTION_KEY, SECRET_KEY

POLLED = "polled_triggers"
INTERVAL = timedelta(seconds=60)


@pytest.fixture(scope="module")
async def polled_database(postgres_server: PostgresServer) -> AsyncIterator[str]:
    admin = await asyncpg.connect(postgres_server.url())
    await admin.execute(f"DROP DATABASE IF EXISTS {POLLED}")
    await admin.execute(f"CREATE DATABASE {POLLED}")
    yield POLLED
    await admin.execute(f"DROP DATABASE IF EXISTS {POLLED} WITH (FORCE)")
    await admin.close()


@pytest.fixture
async def orders(
    postgres_server: PostgresServer, polled_database: str
) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the watched database, with an empty `orders` table."""
    connection = await asyncpg.connect(postgres_server.url(polled_database))
    await connection.execute("DROP TABLE IF EXISTS orders")
    await connection.execute("CREATE TABLE orders (id serial PRIMARY KEY, item text NOT NULL)")
    yield connection
    await connection.close()


@dataclass
class Process:
    """One process's scheduler and what it needs, as `serve` builds them."""

    shared: Shared
    scheduler: LocalScheduler

    async def close(self) -> None:
        await self.shared.http.aclose()


def start_process(database: Database, writer: GroupCommitWriter) -> Process:
    settings = Settings(secret_key=SECRET_KEY, encryption_key=ENCRYPTION_KEY,
                        http_allow_private=True)  # fmt: skip
    shared = build_shared(settings, database, writer=writer)
    return Process(shared, build_scheduler(shared))


@pytest.fixture
async def process(database: Database, writer: GroupCommitWriter) -> AsyncIterator[Process]:
    started = start_process(database, writer)
    yield started
    await started.close()


async def owner_access(database: Database) -> tuple[WorkspaceAccess, Actor]:
    async with database.transaction() as session:
        user = User(email=f"{uuid.uuid4().hex}@example.com")
        session.add(user)
        await session.flush()
        workspace = Workspace(name="Shop", slug=uuid.uuid4().hex, owner_id=user.id)
        session.add(workspace)
        await session.flush()
    principal = Principal(user=user)
    access = WorkspaceAccess(workspace.id, Role.OWNER, permissions_for(Role.OWNER), principal)
    return access, principal.actor(RequestInfo())


async def activate(
    process: Process, server: PostgresServer, parameters: dict[str, Any] | None = None
) -> uuid.UUID:
    """A workspace with the `shop` credential and an active workflow whose trigger
    watches `orders`; returns the workflow's id."""
    shared = process.shared
    access, actor = await owner_access(shared.database)
    credentials = Credentials(shared.database, shared.box, shared.http,
                              AddressPolicy(allow_private=True))  # fmt: skip
    await credentials.create(access, actor, name="shop", type="postgres", data={
        "host": server.host, "port": server.port, "database": POLLED, "user": "postgres",
        "password": "unused", "sslmode": "disable",
    })  # fmt: skip
    trigger = {"query": "SELECT id, item FROM orders", "cursor_column": "id",
               "interval_s": int(INTERVAL.total_seconds()), **(parameters or {})}  # fmt: skip
    service = WorkflowService(shared.database, Engine(shared.registry), shared.box)
    created = await service.create(access, actor, WorkflowDocumentIn(
        name="new orders",
        nodes=[{"id": "orders", "type": "postgres_trigger", "parameters": trigger,
                "credentials": {"postgres": "shop"}},
               {"id": "next", "type": "noop"}],
        connections=[{"from": "orders", "to": "next"}],
    ))  # fmt: skip
    await service.set_active(access, actor, created.id, True)
    return created.id


async def fired(database: Database, workflow_id: uuid.UUID) -> list[list[str]]:
    """The items of each execution of the workflow, oldest execution first: the `item`
    of every row it fired."""
    async with database.session() as session:
        rows = await session.scalars(
            select(Execution).where(Execution.workflow_id == workflow_id)
            .order_by(Execution.queued_at, Execution.id)
        )  # fmt: skip
        inputs: list[Any] = [row.input for row in rows.all()]
        return [[entry["item"] for entry in value["items"]] for value in inputs]


async def schedule_of(database: Database, workflow_id: uuid.UUID) -> Schedule:
    async with database.session() as session:
        return (await session.scalars(
            select(Schedule).where(Schedule.workflow_id == workflow_id)
        )).one()  # fmt: skip


async def insert(orders: asyncpg.Connection, *items: str) -> None:
    await orders.executemany("INSERT INTO orders (item) VALUES ($1)", [(i,) for i in items])


class Clock:
    """Tick times: each `next()` is one interval after the previous, so every tick is due."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC) + timedelta(seconds=1)

    def next(self) -> datetime:
        current = self.moment
        self.moment += INTERVAL + timedelta(seconds=1)
        return current


class TestPostgresTrigger:
    async def test_each_poll_fires_exactly_the_new_rows_and_nothing_new_fires_nothing(
        self, database: Database, process: Process, postgres_server: PostgresServer,
        orders: asyncpg.Connection,
    ) -> None:  # fmt: skip
        """Rows there at activation do not fire; then each poll that finds rows starts one
        execution with exactly those, and a poll that finds none starts none."""
        await insert(orders, "before")
        workflow_id = await activate(process, postgres_server)
        clock = Clock()
        await process.scheduler.tick(clock.next())
        assert await fired(database, workflow_id) == []
        await insert(orders, "a", "b")
        await process.scheduler.tick(clock.next())
        assert await fired(database, workflow_id) == [["a", "b"]]
        await process.scheduler.tick(clock.next())
        assert await fired(database, workflow_id) == [["a", "b"]]
        await insert(orders, "c")
        await process.scheduler.tick(clock.next())
        assert await fired(database, workflow_id) == [["a", "b"], ["c"]]
        schedule = await schedule_of(database, workflow_id)
        assert schedule.poll_cursor == '{"after":4}'

    async def test_a_scheduler_rebuilt_between_polls_fires_no_row_twice_and_misses_none(
        self, database: Database, writer: GroupCommitWriter, postgres_server: PostgresServer,
        orders: asyncpg.Connection,
    ) -> None:  # fmt: skip
        """The cursor is in the database: a new process on it goes on where the old one
        stopped, also for rows added while no scheduler ran."""
        first = start_process(database, writer)
        try:
            workflow_id = await activate(first, postgres_server)
            clock = Clock()
            await first.scheduler.tick(clock.next())
            await insert(orders, "a", "b")
            await first.scheduler.tick(clock.next())
            await insert(orders, "c")
        finally:
            await first.close()
        await insert(orders, "d")
        second = start_process(database, writer)
        try:
            await second.scheduler.tick(clock.next())
            await second.scheduler.tick(clock.next())
        finally:
            await second.close()
        assert await fired(database, workflow_id) == [["a", "b"], ["c", "d"]]

    async def test_two_schedulers_polling_one_tick_fire_its_rows_once(
        self, database: Database, writer: GroupCommitWriter, postgres_server: PostgresServer,
        orders: asyncpg.Connection,
    ) -> None:  # fmt: skip
        """Both poll and find the same rows; only the first to commit moves the cursor and
        starts the execution (a leader and one that still believes it leads)."""
        first, second = start_process(database, writer), start_process(database, writer)
        try:
            workflow_id = await activate(first, postgres_server)
            clock = Clock()
            await first.scheduler.tick(clock.next())
            await insert(orders, "a", "b", "c")
            due = clock.next()
            await asyncio.gather(first.scheduler.tick(due), second.scheduler.tick(due))
            await second.scheduler.tick(clock.next())
        finally:
            await first.close()
            await second.close()
        assert await fired(database, workflow_id) == [["a", "b", "c"]]

    async def test_a_backlog_fires_in_batches_of_max_rows_in_order(
        self, database: Database, process: Process, postgres_server: PostgresServer,
        orders: asyncpg.Connection,
    ) -> None:  # fmt: skip
        """With `emit_existing`, the rows there at activation fire too, `max_rows` a poll."""
        await insert(orders, "a", "b", "c", "d", "e")
        workflow_id = await activate(process, postgres_server,
                                     {"emit_existing": True, "max_rows": 2})  # fmt: skip
        clock = Clock()
        for _ in range(4):
            await process.scheduler.tick(clock.next())
        assert await fired(database, workflow_id) == [["a", "b"], ["c", "d"], ["e"]]

    async def test_a_failing_poll_starts_nothing_and_keeps_its_cursor(
        self, database: Database, process: Process, postgres_server: PostgresServer,
        orders: asyncpg.Connection,
    ) -> None:  # fmt: skip
        """The watched table is gone: no execution, the cursor stays; once it is back,
        the rows added meanwhile fire."""
        workflow_id = await activate(process, postgres_server)
        clock = Clock()
        await process.scheduler.tick(clock.next())
        await orders.execute("ALTER TABLE orders RENAME TO orders_away")
        await process.scheduler.tick(clock.next())
        assert process.scheduler.poller is not None
        assert process.scheduler.poller.failed == 1
        assert (await schedule_of(database, workflow_id)).poll_cursor == '{"after":null}'
        await orders.execute("INSERT INTO orders_away (item) VALUES ('a')")
        await orders.execute("ALTER TABLE orders_away RENAME TO orders")
        await process.scheduler.tick(clock.next())
        assert await fired(database, workflow_id) == [["a"]]
