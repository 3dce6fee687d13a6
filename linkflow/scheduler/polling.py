"""Polling triggers' ticks: poll, then store the cursor and the execution together.

A polling trigger node (`linkflow.nodes.polling.PollingTrigger`) of an active
workflow is a schedule row with `polling` set. When it is due, the scheduler
(`LocalScheduler`) hands it here, and one poll goes:

1. `poll` runs outside any transaction, given the stored cursor (`poll_cursor`,
   JSON text; NULL before the first poll). It only reads the service.
2. One transaction compare-and-sets the row from (`next_run_at`, `poll_cursor`)
   as they were read to (the next interval, the cursor the poll returned) and, when
   the poll found items, creates the execution carrying them
   (`{"items": [...], "polled_at": ...}`, started at the trigger node).

Durability: the cursor moves exactly when the execution that fires the items
exists, so a process that dies before the commit leaves both as they were (the
next poll, by this process after a restart or by another scheduler, finds the
same items again) and one that dies after it has fired them once (the execution
is queued; a job lost before `enqueue` is `ExecutionService.recover`'s). Two
schedulers polling the same tick both read, but only the first commit passes the
compare-and-set; the other's poll is dropped. Nothing new: the cursor may move
(a first poll records where the items end) but no execution is created.

Failures: a poll that raises (the service is down, a wrong credential) moves
`next_run_at` only, so it is tried again after the interval with the same cursor;
the error is logged with the schedule's id, the credentials' secrets scrubbed. A
poll whose workspace is at a plan limit keeps its cursor too: its items fire once
the limit allows. Missed intervals (no scheduler ran) are not caught up one by
one: the next poll finds everything new since the cursor anyway.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, select, update

from linkflow.nodes.polling import Poll, PollingTrigger
from linkflow.nodes.registry import NodeRegistry, UnknownNodeType
from linkflow.nodes.sdk import AddressGuard, JsonObject, NodeError
from linkflow.observability.logging import get_logger
from linkflow.queue import Queue
from linkflow.scheduler.timing import next_fire
from linkflow.services.credential_resolver import ExecutionCredentials
from linkflow.services.errors import LinkFlowError
from linkflow.services.executions import ExecutionService, NewExecution
from linkflow.store import Database, Schedule, TriggerType, Workflow

__all__ = ["POLL_TIMEOUT_S", "Poller"]

log = get_logger(__name__)

POLL_TIMEOUT_S: Final = 300.0
"""A whole poll at most (nodes time their own steps): a hung service must not hold the
scheduler's tick for longer than a few intervals."""
RESOLVE_TIMEOUT_S: Final = 10.0
"""Resolving a host a poll connects to, as for a node's connections."""


class _PollContext:
    """The `PollContext` of one poll: the node's credential slots in its workspace."""

    def __init__(
        self, credentials: ExecutionCredentials, slots: Mapping[str, str],
        addresses: AddressGuard | None, now: datetime,
    ) -> None:  # fmt: skip
        self._credentials = credentials
        self._slots = slots
        self._addresses = addresses
        self._now = now

    async def credential(self, slot: str) -> JsonObject:
        reference = self._slots.get(slot)
        if reference is None:
            raise NodeError(f"the node has no credential in slot {slot!r}")
        try:
            return await self._credentials.resolve(reference)
        except LookupError:
            raise NodeError(f"credential {reference!r} (slot {slot!r}) was not found") from None

    async def resolve_host(self, host: str, port: int) -> Sequence[str]:
        if self._addresses is None:
            raise NodeError("network connections are not available in this process")
        return await self._addresses.resolve(host, port, timeout_s=RESOLVE_TIMEOUT_S)

    def now(self) -> datetime:
        return self._now


class Poller:
    """Runs the due polls of polling triggers (see the module docstring)."""

    def __init__(
        self, database: Database, executions: ExecutionService, queue: Queue,
        registry: NodeRegistry, credentials: ExecutionCredentials,
        addresses: AddressGuard | None, *, timeout_s: float = POLL_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self.database = database
        self.executions = executions
        self.queue = queue
        self.registry = registry
        self.credentials = credentials
        self.addresses = addresses
        self.timeout_s = timeout_s
        self.fired = 0
        """Polls that started an execution."""
        self.failed = 0
        """Polls that raised."""

    async def fire(
        self, schedule: Schedule, version: int, due: datetime | None, now: datetime
    ) -> datetime | None:
        """Poll `schedule` (due at `due`) and commit what it found; returns the new
        `next_run_at`, None when another scheduler moved the row first."""
        following = next_fire(now, cron=None, interval_s=schedule.interval_s or 60,
                              timezone="UTC")  # fmt: skip
        if due is None:  # never armed: only its first time
            return await self._commit(schedule, version, due, following, None, now)
        found = await self._poll(schedule, now)
        return await self._commit(schedule, version, due, following, found, now)

    async def _poll(self, schedule: Schedule, now: datetime) -> Poll | None:
        """What the poll found; None when it failed (logged)."""
        with self.credentials.bound(schedule.workspace_id):
            try:
                node, parameters, slots = await self._node(schedule)
                context = _PollContext(self.credentials, slots, self.addresses, now)
                cursor = None if schedule.poll_cursor is None else json.loads(schedule.poll_cursor)
                async with asyncio.timeout(self.timeout_s):
                    return await node.poll(context, parameters, cursor)
            except NodeError as error:
                reason = self.credentials.scrub(error.message)
            except TimeoutError:
                reason = f"the poll took longer than {self.timeout_s:g} s"
            except Exception as error:  # noqa: BLE001 - a plugin's poll: logged, tried again later
                reason = self.credentials.scrub(f"{type(error).__name__}: {error}")[:500]
        self.failed += 1
        log.warning("polling trigger failed; tried again after its interval",
                    schedule_id=str(schedule.id), workflow_id=str(schedule.workflow_id),
                    node_id=schedule.node_id, reason=reason)  # fmt: skip
        return None

    async def _node(
        self, schedule: Schedule
    ) -> tuple[PollingTrigger, Mapping[str, Any], Mapping[str, str]]:
        async with self.database.session() as session:
            nodes = await session.scalar(
                select(Workflow.nodes).where(Workflow.id == schedule.workflow_id)
            )
        found = [node for node in nodes or [] if isinstance(node, dict)]
        spec: dict[str, Any] | None = next(
            (node for node in found if node.get("id") == schedule.node_id), None
        )
        if spec is None:
            raise NodeError(f"the workflow has no node {schedule.node_id!r}")
        try:
            node = self.registry.get(str(spec.get("type")))
        except UnknownNodeType:
            raise NodeError(f"node type {spec.get('type')!r} is not installed") from None
        if not isinstance(node, PollingTrigger):
            raise NodeError(f"node type {node.type!r} is not a polling trigger")
        slots = {str(k): str(v) for k, v in (spec.get("credentials") or {}).items()}
        return node, dict(spec.get("parameters") or {}), slots

    async def _commit(
        self, schedule: Schedule, version: int, due: datetime | None, following: datetime,
        found: Poll | None, now: datetime,
    ) -> datetime | None:  # fmt: skip
        old = schedule.poll_cursor
        new = old if found is None else _encoded(found.cursor)
        items = [] if found is None else [dict(item) for item in found.items]
        async with self.database.transaction() as session:
            result = await session.execute(
                update(Schedule)
                .where(Schedule.id == schedule.id, _is(Schedule.next_run_at, due),
                       _is(Schedule.poll_cursor, old))
                .values(next_run_at=following, poll_cursor=new,
                        last_run_at=now if items else Schedule.last_run_at)
            )  # fmt: skip
            if not getattr(result, "rowcount", 0):
                return None
            if not items:
                return following
            try:
                job = await self.executions.insert(session, NewExecution(
                    workspace_id=schedule.workspace_id, workflow_id=schedule.workflow_id,
                    workflow_version=version, trigger_type=TriggerType.SCHEDULE,
                    input={"items": items, "polled_at": now.isoformat()},
                    start_node=schedule.node_id,
                ))  # fmt: skip
            except LinkFlowError as refused:
                if refused.code != "plan_limit":
                    raise
                # The items stay unfired: the cursor goes back, they fire once allowed.
                await session.execute(
                    update(Schedule).where(Schedule.id == schedule.id).values(poll_cursor=old)
                )
                log.warning("polling trigger not run: its workspace is at a plan limit",
                            schedule_id=str(schedule.id), detail=refused.detail)  # fmt: skip
                return following
        self.fired += 1
        await self.queue.enqueue(job)
        return following


def _encoded(cursor: Any) -> str:
    return json.dumps(cursor, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _is(column: Any, value: Any) -> ColumnElement[bool]:
    """`column` holds `value`, NULL included."""
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]
