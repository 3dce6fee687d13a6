"""Shared fixtures: real PostgreSQL, SQLite and Redis, started lazily, once per session.

Nothing starts unless a test asks for it, so unit tests never pay for (or
need) a server. What each fixture yields:

- `postgres_server` (session): the running `PostgresServer`.
- `pg_url` (module): a ``postgresql://`` URL of a fresh database, cloned from
  a template migrated to head once per session; dropped after the module.
- `sqlite_url` (module): a ``sqlite:///`` URL of a fresh migrated file.
- `db_url` (module, parametrized ``sqlite`` / ``postgres``): one of the two,
  for tests that must hold on both engines.
- `database` (function): a `Database` on `db_url`, disposed after the test.
- `empty_db_url` (function, parametrized): a database that was never migrated.
- `redis_server` (session) and `redis_url` (function): a Redis URL whose
  database is flushed before each test.
- `mariadb_server` (session): a running `MariaDBServer` (account `MARIADB_USER` with
  `MARIADB_PASSWORD` over TCP); tests create their own databases.
- `s3_endpoint` (session): the URL of an S3 API on loopback (moto's server,
  keys `testing`/`testing`, region us-east-1); tests create their own buckets.
- `mongo_server` (session): a `FakeMongo` on loopback speaking the MongoDB wire
  protocol (tests/_mongo_wire.py; no MongoDB can be installed here), with the user
  `MONGO_USER`/`MONGO_PASSWORD`; tests use databases of their own.

Databases are shared by the tests of a module: tests create their own
workspaces (or other roots) rather than assume an empty database.
Tests that use PostgreSQL or Redis are marked `postgres` / `redis`
automatically, so ``-m "not postgres"`` deselects them.
"""

from __future__ import annotations

import atexit
import itertools
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import pytest
import redis
from sqlalchemy import text

from linkflow.store import Database, create_engine
from linkflow.store.migrate import upgrade
from tests._mongo_wire import FakeMongo, fake_mongo
from tests._services import (
    MariaDBServer,
    PostgresServer,
    RedisServer,
    start_mariadb,
    start_postgres,
    start_redis,
)

TEMPLATE_DB: Final = "linkflow_template"
MONGO_USER: Final = "flows"
MONGO_PASSWORD: Final = "mongo-pa55-word"
_database_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the servers their fixtures start."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & {"postgres_server", "pg_url"}:
            item.add_marker(pytest.mark.postgres)
        if fixtures & {"redis_server", "redis_url"}:
            item.add_marker(pytest.mark.redis)


async def _execute_autocommit(url: str, *statements: str) -> None:
    """Run statements that refuse a transaction block (CREATE/DROP DATABASE)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await autocommit.execute(text(statement))
    finally:
        await engine.dispose()


# --- PostgreSQL -------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (initdb in a temp dir, free port)."""
    server = start_postgres()
    atexit.register(server.stop)  # in case the session ends without fixture teardown
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def pg_template(postgres_server: PostgresServer) -> str:
    """The name of a database migrated to head, to clone fresh databases from."""
    await _execute_autocommit(postgres_server.url(), f"CREATE DATABASE {TEMPLATE_DB}")
    await upgrade(postgres_server.url(TEMPLATE_DB))
    return TEMPLATE_DB


async def _new_pg_database(server: PostgresServer, template: str) -> str:
    name = f"linkflow_test_{next(_database_numbers)}"
    await _execute_autocommit(server.url(), f"CREATE DATABASE {name} TEMPLATE {template}")
    return name


async def _drop_pg_database(server: PostgresServer, name: str) -> None:
    await _execute_autocommit(server.url(), f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
async def pg_url(postgres_server: PostgresServer, pg_template: str) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for this module."""
    name = await _new_pg_database(postgres_server, pg_template)
    yield postgres_server.url(name)
    await _drop_pg_database(postgres_server, name)


# --- SQLite -----------------------------------------------------------------


@pytest.fixture(scope="session")
async def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, to copy fresh databases from."""
    path = tmp_path_factory.mktemp("sqlite-template") / "linkflow.db"
    await upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="module")
def sqlite_url(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, migrated SQLite database file for this module."""
    path = tmp_path_factory.mktemp("sqlite") / "linkflow.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


# --- Either engine ----------------------------------------------------------


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database for this module, once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    """A `Database` on `db_url`, disposed after the test."""
    db = Database(db_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def empty_db_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """A database that exists but was never migrated (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await _new_pg_database(server, "template0")
    yield server.url(name)
    await _drop_pg_database(server, name)


# --- Redis ------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole session (no persistence, free port)."""
    server = start_redis()
    atexit.register(server.stop)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A Redis URL whose database was just flushed."""
    url = redis_server.url()
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


# --- MariaDB ------------------------------------------------------------------


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A MariaDB server for the whole session (no binlog, lazy flushes, free port)."""
    server = start_mariadb()
    atexit.register(server.stop)
    try:
        yield server
    finally:
        server.stop()


# --- S3 -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, on a port the OS picks (port 0: no race for it)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# --- MongoDB ------------------------------------------------------------------


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[FakeMongo]:
    """The fake MongoDB server (tests/_mongo_wire.py) for the whole session."""
    with fake_mongo(users={MONGO_USER: MONGO_PASSWORD}) as server:
        yield server
