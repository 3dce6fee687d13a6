"""The leases this process holds on executions, and their heartbeat.

A worker runs an execution only under a lease (`store.fencing`): taken in one
statement before the run (or, for an execution this process just created, in
the same batch as its row), renewed every third of its time to live, released
when the run stops (dropped when the execution ended, in the batch of the end
itself: `end`). Every write of the run carries the lease's id, and the writer
refuses those made after the lease passed to another worker; the keeper then
stops the run at once (`watch`).

A lease id is ``<host>:<pid>:<nonce>/<n>``: unique per acquisition, and it says
which process held it, so a restarted process can tell that a lease of a dead
process of its own machine need not be waited out (`held_by_dead_process`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from linkflow.observability.logging import get_logger
from linkflow.services.writer import GroupCommitWriter, LeaseAction, LeaseWrite

__all__ = ["LeaseKeeper", "held_by_dead_process"]

log = get_logger(__name__)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def held_by_dead_process(owner: str, *, me: str | None = None) -> bool:
    """Whether lease `owner` belongs to a process of this machine that no longer runs
    (or to an earlier process with this very pid: a restarted container's)."""
    process = owner.split("/", 1)[0]
    host, _, rest = process.partition(":")
    pid_text, _, nonce = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not nonce:
        return False
    if me is not None and process == me:
        return False
    pid = int(pid_text)
    return pid == os.getpid() or not _process_alive(pid)


class LeaseKeeper:
    """Mints, takes, renews and releases this process's leases."""

    def __init__(self, writer: GroupCommitWriter, *, ttl_s: float = 30.0) -> None:
        self.writer = writer
        self.ttl = timedelta(seconds=ttl_s)
        self.process = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._numbers = itertools.count(1)
        self.held: dict[str, uuid.UUID] = {}
        """Lease id → execution, for every lease this process holds (or is taking)."""
        self._watchers: dict[str, Callable[[], object]] = {}
        self._ended: dict[str, LeaseWrite] = {}
        """The drops `end` queued, until `release` takes them."""
        self.renewals = 0
        self.losses = 0
        """Totals so far, for the worker's metrics."""
        writer.on_lease_lost = self._lost

    def expiry(self) -> datetime:
        return datetime.now(UTC) + self.ttl

    def mint(self, execution_id: uuid.UUID) -> tuple[str, datetime]:
        """A new lease id for `execution_id`, counted as held (its take is the caller's:
        in the batch that creates the execution); with its expiry."""
        lease = f"{self.process}/{next(self._numbers)}"
        self.held[lease] = execution_id
        return lease, self.expiry()

    async def take(self, execution_id: uuid.UUID) -> str | None:
        """Take the execution's lease, waiting until that is durable; None when another
        worker holds it."""
        lease, expires_at = self.mint(execution_id)
        if await self.writer.lease_nowait(LeaseAction.TAKE, execution_id, lease, expires_at):
            return lease
        self.held.pop(lease, None)
        return None

    def watch(self, lease: str, on_lost: Callable[[], object]) -> None:
        """Call `on_lost` if the lease is lost (a write under it was refused)."""
        self._watchers[lease] = on_lost

    def end(self, lease: str) -> None:
        """The execution ended: drop the lease now, in order after the end's writes (in
        their batch); `release` then hands back that drop. No longer renewed from here."""
        execution_id = self.held.pop(lease, None)
        self._watchers.pop(lease, None)
        if execution_id is not None:
            self._ended[lease] = self.writer.lease_nowait(LeaseAction.DROP, execution_id, lease)

    def release(self, lease: str, *, finished: bool) -> LeaseWrite | None:
        """Give the lease up, in order after the run's writes: dropped when the execution
        ended, expired otherwise (it waits, or failed to run: anyone may take it). Awaiting
        the write (None: the lease was no longer held) means the run's writes are durable."""
        dropped = self._ended.pop(lease, None)
        if dropped is not None:
            return dropped  # at the end already (`end`)
        execution_id = self.held.pop(lease, None)
        self._watchers.pop(lease, None)
        if execution_id is None:
            return None
        action = LeaseAction.DROP if finished else LeaseAction.RELEASE
        return self.writer.lease_nowait(action, execution_id, lease)

    def _lost(self, lease: str) -> None:
        if self.held.pop(lease, None) is None:
            return
        self.losses += 1
        log.warning("lease lost: another worker owns the execution now", lease=lease)
        watcher = self._watchers.pop(lease, None)
        if watcher is not None:
            watcher()

    async def renew(self) -> int:
        """Renew every held lease; returns how many were lost."""
        expires_at = self.expiry()
        pending = [
            (lease, self.writer.lease_nowait(LeaseAction.RENEW, execution_id, lease, expires_at))
            for lease, execution_id in list(self.held.items())
        ]
        lost = 0
        for lease, write in pending:
            if not await write:
                lost += 1
                self._lost(lease)
        self.renewals += len(pending) - lost
        return lost

    async def run(self) -> None:
        """The heartbeat: renew every third of the time to live, until cancelled."""
        interval_s = self.ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.renew()
            except Exception:
                log.warning("lease renewal failed; retrying", exc_info=True)
