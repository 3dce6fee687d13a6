"""The files `linkflow` keeps in its data dir are readable by their owner only.

Regression test of issue 13: the SQLite database (password hashes, sealed
credentials, every execution's data) was created world-readable (0644) beside
key files that were 0600.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from linkflow.config import ENCRYPTION_KEY_FILE, SECRET_KEY_FILE
from tests.e2e._serve import ROOT, Client, Serve, poll, register

OWNER_ONLY = 0o600


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The common umask 022, under which SQLite would create a file 0644; restored after."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("permissive_umask")
def test_migrate_creates_the_sqlite_database_owner_only(tmp_path: Path) -> None:
    """`linkflow migrate` on a fresh data dir: the database file (and any journal) is 0600."""
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "linkflow", "migrate"], cwd=ROOT, capture_output=True,
        text=True, timeout=120, check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - the child's PATH
             "LINKFLOW_DATA_DIR": str(data_dir)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    database = data_dir / "linkflow.db"
    assert mode_of(database) == OWNER_ONLY
    leftovers = [p.name for p in data_dir.glob("linkflow.db*") if mode_of(p) != OWNER_ONLY]
    assert leftovers == []


@pytest.mark.usefixtures("permissive_umask")
def test_serve_keeps_the_database_and_its_wal_and_shm_owner_only(tmp_path: Path) -> None:
    """While `linkflow serve` runs and writes, linkflow.db, -wal and -shm are 0600, like the
    generated key files."""
    server = Serve(tmp_path)
    server.start()
    try:
        register(Client(server))
        database = tmp_path / "linkflow.db"
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
        poll(lambda: wal.exists() and shm.exists(), "the WAL and shared-memory files")
        files = [database, wal, shm, tmp_path / SECRET_KEY_FILE, tmp_path / ENCRYPTION_KEY_FILE]
        assert {p.name: oct(mode_of(p)) for p in files} == {p.name: oct(OWNER_ONLY) for p in files}
    finally:
        server.stop()
