"""Who holds an embedded SQLite database: the processes that run on it, or a restore.

A process that runs on a SQLite file (`linkflow serve`, `linkflow api` embedded)
holds a shared lock on the file beside it (``linkflow.db.lock``) for as long as it
runs; `linkflow restore` takes an exclusive one before it replaces the database. So a
restore never swaps the file under a running server (whose writer would go on writing
into the replaced file's pages), and a server does not start in the middle of a
restore. Several processes may share the file (`linkflow api --workers N`).

Invariants:
- the lock is `flock(2)` on a file of its own: SQLite's own locks are POSIX record
  locks on the database file, independent of these, so neither disturbs the other;
- the kernel drops the lock when the holder exits, a SIGKILL included: no stale lock
  file to clean up, and the file's presence means nothing;
- taking a lock never waits: a held lock is `DatabaseInUse` at once.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Final

from linkflow.store.errors import StoreError

__all__ = ["DatabaseInUse", "DatabaseLock", "lock_path"]

_LOCK_FILE_MODE: Final = 0o600


class DatabaseInUse(StoreError):
    """Another process holds the database's lock in a mode that excludes ours."""


def lock_path(database: Path) -> Path:
    """The lock file of the SQLite database at `database`."""
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """A held lock on a SQLite database; released by `release`, at exit of a `with`, or
    when the process ends."""

    def __init__(self, database: Path, *, exclusive: bool) -> None:
        self.database = database
        self.exclusive = exclusive
        path = lock_path(database)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                                       _LOCK_FILE_MODE)  # fmt: skip
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            if exclusive:
                raise DatabaseInUse(
                    f"the database {database} is in use by a running LinkFlow process "
                    "(linkflow serve or linkflow api): stop it first"
                ) from None
            raise DatabaseInUse(
                f"the database {database} is being restored (linkflow restore): "
                "start again once it has finished"
            ) from None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the lock

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:  # fmt: skip
        self.release()
