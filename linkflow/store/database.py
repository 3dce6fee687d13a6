"""Engines and sessions: the one place that knows how to talk to each database.

Invariants:
- Only two engines are supported: PostgreSQL through asyncpg and SQLite
  through aiosqlite. Plain URLs (``postgresql://``, ``postgres://``,
  ``sqlite:///``) are rewritten to their async driver; any other scheme or
  driver is a `StoreConfigError` whose message names the problem in one line
  and never shows a password.
- Every SQLite connection runs in WAL mode with foreign keys enforced, a busy
  timeout and ``synchronous=NORMAL`` (durable across process crashes; the
  last transactions may be lost on power failure, which WAL makes a safe
  trade), or the level the URL's ``synchronous`` parameter names (``full``:
  each commit survives power loss too; see `SQLITE_SYNCHRONOUS`). It rides in
  the URL so that every process and engine opened on the URL (the writer's
  child among them) applies the same level. The driver's own implicit
  transaction handling is switched off and ``BEGIN`` is emitted instead, so
  that SQLite transactions, savepoints and transactional DDL behave as on
  PostgreSQL. `Database.transaction` begins
  SQLite write transactions with ``BEGIN IMMEDIATE``.
- Sessions do not expire objects on commit: a row read in a request stays
  readable after the commit without another round trip (and without the lazy
  load that asyncio forbids).
- A failure to reach the database surfaces as `StoreUnavailable` where this
  module connects on purpose (`Database.ping`, `connect`).
- A SQLite file this module creates is 0600, like the key files beside it (it
  holds password hashes, sealed credentials and every execution's data); SQLite
  gives its -wal, -shm and -journal files the mode of the database file. A
  missing directory is created 0700. Existing files keep their mode.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import orjson
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from linkflow.store.errors import StoreConfigError, StoreUnavailable

__all__ = [
    "Database",
    "connect",
    "create_engine",
    "normalize_url",
    "unavailable_error",
]

_ASYNC_DRIVERS: Final = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
_BACKEND_ALIASES: Final = {"postgres": "postgresql", "postgresql": "postgresql", "sqlite": "sqlite"}
_EXAMPLES: Final = (
    "e.g. postgresql://user:password@host:5432/linkflow or sqlite:///path/to/linkflow.db"
)

# Long enough to ride out a checkpoint or a burst of writers, short enough that
# a stuck writer surfaces as an error rather than a hung request.
SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
SQLITE_POOL_SIZE: Final = 32
"""Kept-open aiosqlite connections (a thread each). Sized for a busy `serve`: with a
small pool, connections beyond it are opened and closed per use, and each opening
costs a thread, a file open and PRAGMAs on the hot path."""
SQLITE_POOL_OVERFLOW: Final = 32
# Execution option naming how SQLite transactions begin: DEFERRED (the default)
# or IMMEDIATE, which takes the write lock at BEGIN (see `Database.transaction`).
_SQLITE_BEGIN: Final = "linkflow_sqlite_begin"
POSTGRES_POOL_SIZE: Final = 20
"""Kept-open PostgreSQL connections per process, by default (`Database(pool_size=)`);
as many again may open beyond them under a burst. SQLAlchemy's default (5) made a worker
running 64 executions open and close a connection for most of them (a TLS attempt,
authentication and a new backend each: a third of its CPU per execution)."""
# asyncpg's default is 60 s; a database that does not answer a connect in 10 s
# is down as far as a request (or a health check) is concerned.
POSTGRES_CONNECT_TIMEOUT_S: Final = 10


def _redact(raw: str) -> str:
    """`raw` with anything between ``:`` and ``@`` in the authority masked."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", raw)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        msg = f"cannot parse database URL {_redact(url)!r}: expected {_EXAMPLES}"
        raise StoreConfigError(msg) from None
    backend, _, driver = parsed.drivername.partition("+")
    canonical = _BACKEND_ALIASES.get(backend)
    if canonical is None:
        msg = (
            f"unsupported database {backend!r} in {parsed.render_as_string()!r}: "
            f"LinkFlow runs on PostgreSQL or SQLite ({_EXAMPLES})"
        )
        raise StoreConfigError(msg)
    wanted = _ASYNC_DRIVERS[canonical]
    if driver and driver != wanted:
        msg = (
            f"unsupported driver {driver!r} for {canonical} in {parsed.render_as_string()!r}: "
            f"use {canonical}://... (LinkFlow uses {wanted})"
        )
        raise StoreConfigError(msg)
    return parsed.set(drivername=f"{canonical}+{wanted}")


def normalize_url(url: str) -> str:
    """`url` rewritten for its async driver, e.g. ``postgres://`` → ``postgresql+asyncpg://``.

    Raises `StoreConfigError` for a URL that cannot be parsed or that names an
    engine or driver LinkFlow does not run on.
    """
    return _parse(url).render_as_string(hide_password=False)


SQLITE_SYNCHRONOUS: Final = ("normal", "full", "extra")
"""SQLite's durable ``synchronous`` levels in WAL mode, the URL's ``?synchronous=``
(`Settings.sqlite_synchronous`). ``off`` is not offered: a crash of the machine could
corrupt the file."""


def _sqlite_synchronous(parsed: URL) -> tuple[URL, str]:
    """The URL without its ``synchronous`` parameter (the driver does not know it), and
    the level it names (default ``normal``)."""
    raw = parsed.query.get("synchronous", "normal")
    level = (raw if isinstance(raw, str) else raw[-1]).lower()
    if level not in SQLITE_SYNCHRONOUS:
        msg = (f"unsupported SQLite synchronous level {level!r}: use one of "
               f"{', '.join(SQLITE_SYNCHRONOUS)}")  # fmt: skip
        raise StoreConfigError(msg)
    return parsed.difference_update_query(["synchronous"]), level


def _sqlite_path(parsed: URL) -> Path | None:
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


SQLITE_FILE_MODE: Final = 0o600
SQLITE_DIR_MODE: Final = 0o700


def _prepare_sqlite_file(path: Path) -> None:
    """Create `path` (and its directory) owner-only if missing, before SQLite does.

    SQLite would create it with 0644 (minus the umask): readable by every local
    user. An empty file is a valid, empty SQLite database.
    """
    path.parent.mkdir(mode=SQLITE_DIR_MODE, parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE)
    except FileExistsError:
        return
    os.close(descriptor)


def _describe(parsed: URL) -> str:
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        return f"SQLite database {path}" if path else "in-memory SQLite database"
    return f"PostgreSQL at {parsed.host or 'localhost'}:{parsed.port or 5432}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first_line


def unavailable_error(url: str, exc: BaseException) -> StoreUnavailable:
    """A one-line `StoreUnavailable` for a failure to connect to `url`."""
    verb = "open" if make_url(url).get_backend_name() == "sqlite" else "connect to"
    return StoreUnavailable(f"cannot {verb} {_describe(make_url(url))}: {_reason(exc)}")


def _configure_sqlite(engine: Engine, *, foreign_keys: bool, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
        # Stop the driver from issuing BEGIN on its own (and never for DDL or
        # SAVEPOINT); the "begin" listener below emits it for every transaction.
        dbapi_connection.isolation_level = None  # type: ignore[attr-defined]
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        try:
            # WAL is a property of the file: set it once, not on every connection
            # (setting it takes a lock that would stall the writer).
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def sqlite_writer_engine(url: str) -> Engine:
    """A synchronous engine on the SQLite file of `url`, for a single writer.

    aiosqlite hops to its thread for every driver call (a dozen per small
    transaction); a writer that does its whole batch in one hop to its own
    thread (or process) commits several times faster. Every transaction on it
    is ``BEGIN IMMEDIATE``.
    """
    sync_url, synchronous = _sqlite_synchronous(_parse(url).set(drivername="sqlite"))
    path = _sqlite_path(sync_url)
    if path is not None:
        _prepare_sqlite_file(path)
    engine = create_sync_engine(
        sync_url, json_serializer=_json_dumps, json_deserializer=orjson.loads,
        execution_options={_SQLITE_BEGIN: "IMMEDIATE"},
    )  # fmt: skip
    _configure_sqlite(engine, foreign_keys=True, synchronous=synchronous)
    return engine


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def create_engine(
    url: str, *, echo: bool = False, foreign_keys: bool = True,
    pool_size: int = POSTGRES_POOL_SIZE,
) -> AsyncEngine:  # fmt: skip
    """An async engine for `url` (see `normalize_url`), configured for LinkFlow.

    For SQLite, the database file and its directory are created owner-only if
    missing.
    `foreign_keys=False` is for migrations only: SQLite's batch migrations
    rebuild tables, and enforcing foreign keys during the rebuild would
    cascade deletes into the referencing tables.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed, synchronous = _sqlite_synchronous(parsed)
        path = _sqlite_path(parsed)
        if path is not None:
            _prepare_sqlite_file(path)
        engine = create_async_engine(
            parsed, echo=echo, json_serializer=_json_dumps, json_deserializer=orjson.loads,
            pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_OVERFLOW,
        )  # fmt: skip
        _configure_sqlite(engine.sync_engine, foreign_keys=foreign_keys, synchronous=synchronous)
        return engine
    return create_async_engine(
        parsed,
        echo=echo,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"timeout": POSTGRES_CONNECT_TIMEOUT_S},
        pool_size=pool_size,
        max_overflow=pool_size,
    )


async def connect(engine: AsyncEngine) -> AsyncConnection:
    """A started connection from `engine`; failing to connect raises `StoreUnavailable`.

    The caller closes it (``await conn.close()``).
    """
    try:
        return await engine.connect()
    except (OSError, DBAPIError) as exc:
        url = engine.url.render_as_string(hide_password=False)
        raise unavailable_error(url, exc) from exc


class Database:
    """An engine plus the session factory every request and job draws sessions from.

    Built once per process by the wiring and disposed at shutdown.
    """

    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = POSTGRES_POOL_SIZE
    ) -> None:
        self.engine: Final = create_engine(url, echo=echo, pool_size=pool_size)
        self.sessionmaker: Final = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer_sessionmaker: Final = async_sessionmaker(
            self.engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"}), expire_on_commit=False
        )
        self._reader_sessionmaker: Final = (
            async_sessionmaker(self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                               expire_on_commit=False)
            if self.engine.dialect.name == "postgresql" else self.sessionmaker
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The normalized URL, password included (never log it: use `repr`)."""
        return self.engine.url.render_as_string(hide_password=False)

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; the caller commits. Uncommitted work is rolled back on exit."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session for reads only, each statement on its own (autocommit on PostgreSQL):
        no BEGIN and ROLLBACK round trips around it, so a read is one round trip, but two
        statements may see different commits. For hot reads whose rows do not have to
        agree with each other (or cannot change: a history under its lease). Never write
        in it."""
        async with self._reader_sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: committed on normal exit, rolled back on error.

        Meant for writes. On SQLite the transaction takes the write lock at
        ``BEGIN IMMEDIATE``: a transaction that reads and then writes would
        otherwise fail at once with "database is locked" whenever another
        writer committed in between; this way it waits its turn (up to the
        busy timeout). So do not open a second `transaction` while holding
        one: on SQLite the inner one waits for the outer. No effect on
        PostgreSQL, where row locks (``SELECT ... FOR UPDATE``) serve.
        """
        async with self._writer_sessionmaker.begin() as session:
            yield session

    async def ping(self) -> None:
        """Round-trip ``SELECT 1``; raises `StoreUnavailable` when the database is unreachable."""
        connection = await connect(self.engine)
        try:
            await connection.execute(text("SELECT 1"))
        finally:
            await connection.close()

    async def dispose(self) -> None:
        """Close every pooled connection; the `Database` must not be used afterwards."""
        await self.engine.dispose()
