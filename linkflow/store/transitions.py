"""The one table of an execution's status transitions, and which events cause them.

    queued ──▶ running ──▶ waiting ──▶ queued (resume accepted) ──▶ running ...
       │          │           │
       └──────────┴───────────┴──▶ completed | failed | cancelled | timeout

Every change of `executions.status` is checked here, wherever it is written:
by the group-commit writer, which moves the status with a worker's start, wait
and resumption events in their own transaction (`STATUS_OF_EVENT`; an end is
projected by its worker with the node runs) and checks every status a batch
writes, and by the compare-and-set
updates of requests that change a stored execution (resume, cancel, dead
letter), which update only from `sources(to)`. A transition this table does
not allow is refused and reported, never written: a finished execution never
runs again, a cancelled one never completes.

Staying in a status (running to running, when a recovered execution starts
again) is not a transition and is always allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from linkflow.store.enums import ExecutionStatus

__all__ = ["ALLOWED", "FINISHED", "STATUS_OF_EVENT", "allowed", "sources"]

_Q, _R, _W = ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING
FINISHED: Final = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED,
     ExecutionStatus.TIMEOUT}
)  # fmt: skip

ALLOWED: Final[Mapping[ExecutionStatus, frozenset[ExecutionStatus]]] = {
    # Taken by a worker; cancelled or dead-lettered before any worker ran it.
    _Q: frozenset({_R, ExecutionStatus.CANCELLED, ExecutionStatus.FAILED}),
    # Every end, or a wait (a wait node; a parent waiting for its child).
    _R: frozenset({_W, *FINISHED}),
    # Resumed by a request (queued for a worker) or by its timer (a worker runs it
    # at once); cancelled, or failed when its resumption cannot be delivered.
    _W: frozenset(
        {_Q, _R, ExecutionStatus.CANCELLED, ExecutionStatus.FAILED, ExecutionStatus.TIMEOUT}
    ),
    **{status: frozenset() for status in FINISHED},
}
"""From each status, the statuses it may move to."""

STATUS_OF_EVENT: Final[Mapping[str, ExecutionStatus]] = {
    "execution.started": _R,
    "execution.waiting": _W,
    "execution.resumed": _R,
    "execution.completed": ExecutionStatus.COMPLETED,
    "execution.failed": ExecutionStatus.FAILED,
    "execution.cancelled": ExecutionStatus.CANCELLED,
    "execution.timed_out": ExecutionStatus.TIMEOUT,
}
"""The status an event puts its execution in when a worker appends it. (A resume
accepted by the API records `execution.resumed` but moves the execution to queued:
no worker runs it yet; see `sources`.)"""


def allowed(current: ExecutionStatus | str, to: ExecutionStatus | str) -> bool:
    """Whether an execution in `current` may move to `to`."""
    current, to = ExecutionStatus(current), ExecutionStatus(to)
    return current == to or to in ALLOWED[current]


def sources(to: ExecutionStatus) -> frozenset[ExecutionStatus]:
    """The statuses from which an execution may move to `to` (for compare-and-set)."""
    return frozenset(status for status, targets in ALLOWED.items() if to in targets)
