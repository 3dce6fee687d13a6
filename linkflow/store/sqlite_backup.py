"""Consistent copies of the embedded SQLite database, and what a copy holds.

`snapshot` copies a live database with SQLite's online backup API in one step: the
copy is the database as of one read transaction, whatever `linkflow serve` (its
writer process included) commits meanwhile. In WAL mode a reader blocks no writer,
so the server goes on; copying in several steps instead would start over each time
another process wrote, and under steady writes might never end.

`read_facts` opens a file read-only and immutable (nothing is created beside it, no
WAL is replayed) and says whether it is a LinkFlow database, its schema revision,
what it holds, and the ids of the keys its sealed values need (the secret box writes
the key id into every ciphertext: ``0x01 | length | key id | ...``).

`install` puts a verified copy in place of a database nobody runs on (see
`store.sqlite_lock`), keeping the replaced one aside.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy.engine import make_url

from linkflow.store.database import normalize_url
from linkflow.store.errors import StoreError

__all__ = [
    "DatabaseFacts",
    "NotALinkFlowDatabase",
    "database_file",
    "install",
    "read_facts",
    "snapshot",
]

_HEADER: Final = b"SQLite format 3\x00"
_FILE_MODE: Final = 0o600
BUSY_TIMEOUT_MS: Final = 30_000
"""A backup waits this long for a lock (only WAL recovery after a crash takes one a
reader must wait for)."""
# Tables a LinkFlow database has whatever its revision, and those counted for people.
_REQUIRED_TABLES: Final = ("alembic_version", "workflows", "executions", "credentials")
COUNTED: Final = ("users", "workspaces", "workflows", "credentials", "schedules", "executions")
# Columns holding secret-box ciphertexts (their key id is read from the bytes).
_SEALED: Final = (
    ("credentials", "data_encrypted"),
    ("users", "mfa_secret_encrypted"),
    ("oauth_connections", "access_token_encrypted"),
    ("oauth_connections", "refresh_token_encrypted"),
    ("webhooks", "secret_encrypted"),
    ("webhook_subscriptions", "secret_encrypted"),
)


class NotALinkFlowDatabase(StoreError):
    """The file is not a SQLite database, or not one LinkFlow made."""


@dataclass(frozen=True)
class DatabaseFacts:
    revision: str
    """The Alembic revision the schema is at."""
    counts: dict[str, int]
    """Rows of the tables in `COUNTED` that exist."""
    key_ids: frozenset[str]
    """The ids of the encryption keys its sealed values were sealed with."""


def database_file(url: str) -> Path | None:
    """The file of the SQLite database `url` names; None for PostgreSQL or an in-memory
    SQLite. `StoreConfigError` for a URL LinkFlow does not run on."""
    parsed = make_url(normalize_url(url))
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:" \
            or name.startswith("file:"):  # fmt: skip
        return None
    return Path(name)


def _create_private(path: Path) -> None:
    """`path` as a new empty file, owner-only: a copy holds what the database holds."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))


def snapshot(source: Path, target: Path) -> None:
    """Copy the database at `source` to the new file `target`, consistent as of one moment,
    self-contained (no WAL beside it) and checked (`PRAGMA quick_check`)."""
    if not source.is_file():
        raise StoreError(f"there is no database at {source}")
    _create_private(target)
    with _closing(sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000)) as origin, \
            _closing(sqlite3.connect(target)) as copy:  # fmt: skip
        origin.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        origin.backup(copy, pages=-1)  # -1: every page in one step (see the module's doc)
        copy.execute("PRAGMA journal_mode=DELETE")
        verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
    if verdict != "ok":
        raise StoreError(f"the copy of {source} failed SQLite's check: {verdict}")


def read_facts(path: Path, *, check: bool = False, live: bool = False) -> DatabaseFacts:
    """What the LinkFlow database at `path` holds; `NotALinkFlowDatabase` if it is none,
    or, with `check`, if SQLite finds it damaged (`PRAGMA quick_check`: every page read).

    `live`: the file may have a WAL beside it (a database, not a copy), read with it; the
    caller makes sure nobody writes it meanwhile."""
    with path.open("rb") as handle:
        if handle.read(len(_HEADER)) != _HEADER:
            raise NotALinkFlowDatabase(f"{path} is not a SQLite database")
    uri = f"file:{path.resolve()}?mode={'rw' if live else 'ro&immutable=1'}"
    try:
        with _closing(sqlite3.connect(uri, uri=True)) as connection:
            if check and (verdict := connection.execute("PRAGMA quick_check").fetchone()[0]) \
                    != "ok":  # fmt: skip
                raise NotALinkFlowDatabase(f"{path} fails SQLite's check: {verdict}")
            return _facts(connection, path)
    except sqlite3.DatabaseError as error:
        raise NotALinkFlowDatabase(f"{path} cannot be read as a database: {error}") from None


def _key_id(sealed: object) -> str | None:
    """The key id a ciphertext names (byte 1 is its length, the id follows)."""
    if not isinstance(sealed, bytes) or len(sealed) < 2:
        return None
    return sealed[2 : 2 + sealed[1]].decode("ascii", errors="replace")


def _facts(connection: sqlite3.Connection, path: Path) -> DatabaseFacts:
    connection.create_function("key_id", 1, _key_id, deterministic=True)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master "
                                                   "WHERE type = 'table'")}  # fmt: skip
    missing = [name for name in _REQUIRED_TABLES if name not in tables]
    if missing:
        raise NotALinkFlowDatabase(
            f"{path} is not a LinkFlow database (no {', '.join(missing)} table)"
        )
    row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    if row is None:
        raise NotALinkFlowDatabase(f"{path} has no schema revision")
    counts = {
        name: int(connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608 - names from COUNTED
        for name in COUNTED if name in tables
    }  # fmt: skip
    key_ids: set[str] = set()
    for table, column in _SEALED:
        if table not in tables:
            continue
        columns = {info[1] for info in connection.execute(f'PRAGMA table_info("{table}")')}
        if column not in columns:
            continue
        query = f'SELECT DISTINCT key_id("{column}") FROM "{table}" WHERE "{column}" IS NOT NULL'  # noqa: S608 - names from _SEALED
        key_ids.update(key_id for (key_id,) in connection.execute(query) if key_id)
    return DatabaseFacts(revision=str(row[0]), counts=counts, key_ids=frozenset(key_ids))


def install(copy: Path, database: Path) -> Path | None:
    """Put the verified `copy` in place of `database` (whose lock the caller holds).

    A database already there is kept aside as ``<name>.replaced-<UTC time>`` (its WAL
    checkpointed into it first, so it is one self-contained file); its path is returned.
    """
    kept: Path | None = None
    if database.exists():
        with _closing(sqlite3.connect(database)) as old:
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            old.execute("PRAGMA journal_mode=DELETE")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        kept = database.with_name(f"{database.name}.replaced-{stamp}")
        database.replace(kept)
    for suffix in ("-wal", "-shm", "-journal"):  # a stale one would be applied to the copy
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    copy.replace(database)
    _sync_directory(database.parent)
    return kept


def _sync_directory(directory: Path) -> None:
    """Make the renames in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _closing(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """The connection, closed after (sqlite3's own context manager only commits)."""
    try:
        yield connection
    finally:
        connection.close()
