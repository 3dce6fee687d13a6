"""One batch of the group-commit writer, written in one transaction.

A batch mixes the writes of many executions: new executions, history events,
row projections, node_executions replacements, webhook call counts, and lease
actions (take, renew, release, drop). In order, inside the transaction:

1. new executions are inserted;
2. the rows of executions whose status changes are locked and read, leases
   are taken, and the owners of every fenced execution are read (locked
   against a takeover until commit; see `store.fencing`); on SQLite, whose
   transaction holds every row already, statuses and owners are one read;
3. fencing: an op carrying a lease that is not the execution's owner is refused;
4. transitions: each status change (explicit, or caused by an event a worker
   appends, `store.transitions.STATUS_OF_EVENT`) is checked in op order
   against the table; an illegal one is refused;
5. events are inserted (a taken `seq` is refused alone, unless the stored event
   is this one: a retried write);
6. nothing after a refused event is kept: the execution's later ops in the
   batch are refused too (an event already inserted at a free `seq` is
   deleted again) and the lease they were written under is revoked, so later
   batches refuse them as well;
7. the projections of what remains are written: the row values each event
   implies (status, start time, wait time), explicit row updates
   (merged per execution, later values win), node_executions (the last
   replacement per execution), webhook counts (added up), lease actions, and
   usage (below).

Usage and plan limits, in the same transaction, so nothing is counted in memory and
a batch written again (a pipeline's retry, a crashed writer's caller retrying)
counts nothing twice:
- a new execution with a `Quota` counts in its workspace's `usage` row of metric
  `executions` for the billing period (`Quota.period_start`). When the quota sets a
  limit, that row is locked and read in step 2, sent with the fence's reads (no wait
  of its own), and, for `concurrent`, the workspace's queued and running executions
  are counted after the lock is held (so they include everything committed by whoever
  held it before); then each new execution of the workspace passes, in op order,
  while ``used < executions`` and ``unfinished < concurrent``. A refused one is
  deleted again with everything of it in the batch (its events, its lease) and
  reported in `Outcome.limited`. Lock order: rows sorted by workspace; a workspace's
  new executions come through one connection (`services.writer`), so two connections
  of the writer never wait on one counter;
- a `node.completed` or `node.failed` event a worker appends (under a lease) and this
  batch inserts counts one `node_runs` in its workspace's row of the hour (a retried
  write of a stored event counts nothing); each of the writer's connections has a row
  of its own (`shard`), so they never wait on each other. The workspaces are read in
  step 2 too.

The outcome names the refused positions, the leases that lost a write, a note per
refused transition, and the new executions a plan limit refused, for the caller to
raise, stop and log.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from linkflow.store.bulk import BulkStatements, Rows, Sink, hex_id
from linkflow.store.fencing import REVOKED
from linkflow.store.repositories.events import NewEvent
from linkflow.store.transitions import STATUS_OF_EVENT, allowed
from linkflow.store.types import utcnow

__all__ = [
    "CONCURRENT_LIMIT",
    "EXECUTIONS_LIMIT",
    "LeaseAction",
    "Limited",
    "Outcome",
    "Quota",
    "Refused",
    "WriteOp",
    "write_batch",
]

Refused = frozenset[int]
"""Positions in a batch of the ops that were not written."""
Limited = tuple[int, str, int, int]
"""A new execution a plan limit refused: (position, limit, its value, the usage)."""

EXECUTIONS_LIMIT: Final = "executions_per_month"
CONCURRENT_LIMIT: Final = "max_concurrent_executions"
EXECUTIONS: Final = "executions"
"""The usage metric of executions: one row per workspace and billing period."""
NODE_RUNS: Final = "node_runs"
"""The usage metric of node runs: one row per workspace and hour."""
NODE_RUN_EVENTS: Final = frozenset({"node.completed", "node.failed"})


class Quota(NamedTuple):
    """What a new execution counts against: its workspace's billing period, and the
    limits in force (None: unlimited)."""

    period_start: datetime | str
    """The period's start (ISO 8601 text through the writer process's channel)."""
    executions: int | None = None
    """Executions the period may hold (`executions_per_month`)."""
    concurrent: int | None = None
    """Executions queued or running at once (`max_concurrent_executions`)."""


class LeaseAction:
    """What a lease op does (`WriteOp.lease_action`)."""

    TAKE: Final = "take"
    """Insert or take over the lease (`values["expires_at"]`); refused while held."""
    RENEW: Final = "renew"
    """Push the lease's expiry to `values["expires_at"]`; refused when no longer held."""
    RELEASE: Final = "release"
    """Expire the lease now (the execution waits: anyone may take it next)."""
    DROP: Final = "drop"
    """Delete the lease (the execution has ended)."""


@dataclass(slots=True)
class WriteOp:
    """One write: an event, a row update, a new execution, a node_executions
    replacement, a webhook call or a lease action (exactly one of them); `lease`
    fences it: written only while that lease holds the execution."""

    event: NewEvent | None = None
    execution_id: uuid.UUID | None = None
    values: dict[str, Any] = field(default_factory=dict)
    """The columns to set (with `execution_id`), `at` of a webhook call, or
    `expires_at` of a lease action."""
    new_execution: dict[str, Any] | None = None
    """The columns of an `executions` row to insert."""
    replace_nodes_of: uuid.UUID | None = None
    """Make `node_rows` this execution's node_executions rows."""
    node_rows: Sequence[dict[str, Any]] = ()
    webhook_called: uuid.UUID | None = None
    lease: str | None = None
    lease_action: str | None = None
    quota: Quota | None = None
    """Of a new execution: counted in its workspace's usage, refused over its limits."""

    def target(self) -> Any:
        """The execution this op writes to, if any."""
        if self.event is not None:
            return self.event.execution_id
        if self.execution_id is not None:
            return self.execution_id
        return self.replace_nodes_of


class Outcome(NamedTuple):
    refused: Refused
    lost: frozenset[str]
    """Leases a write was refused under: their executions must stop."""
    notes: tuple[str, ...]
    """Refused status transitions, for the log."""
    unstorable: tuple[tuple[int, str], ...] = ()
    """(position, reason) of ops refused because their execution's data could not be
    written (see `services.writer`: a failing batch is split by execution)."""
    limited: tuple[Limited, ...] = ()
    """New executions a plan limit refused (with every op of theirs in `refused`)."""


def _implied(event: NewEvent) -> dict[str, Any] | None:
    """The row values a worker's event implies (None: it changes no status)."""
    status = STATUS_OF_EVENT.get(event.type)
    if status is None:
        return None
    at = event.created_at
    data = event.data
    if event.type == "execution.started":
        return {"status": status, "started_at": at}
    if event.type == "execution.waiting":
        until = data.get("until")
        return {"status": status,
                "wait_until": datetime.fromisoformat(str(until)) if until else None}  # fmt: skip
    if event.type == "execution.resumed":
        return {"status": status, "wait_until": None}
    # An end is projected by its worker explicitly, with the node runs, in the end's own
    # batch (`Engine.run(on_end=...)`): a reader who sees the end sees every node's row.
    return None


class _Batch:
    """The working state of one `write_batch` call."""

    def __init__(
        self, sink: Sink, statements: BulkStatements, ops: Sequence[WriteOp], shard: int
    ) -> None:
        self.sink = sink
        self.shard = shard
        self.statements = statements
        self.ops = ops
        self.now = utcnow()
        self.refused: set[int] = set()
        self.lost: set[str] = set()
        self.notes: list[str] = []
        self.keys: list[str | None] = [
            None if (target := op.target()) is None else hex_id(target) for op in ops
        ]
        self.implied: dict[int, dict[str, Any]] = {}
        self.node_runs: list[int] = []
        """Positions of the node runs' events a worker appends (counted in usage)."""
        for index, op in enumerate(ops):
            if op.event is not None and op.lease is not None:
                values = _implied(op.event)
                if values is not None:
                    self.implied[index] = values
                elif op.event.type in NODE_RUN_EVENTS:
                    self.node_runs.append(index)
        self.node_runs_set = frozenset(self.node_runs)
        self.new_in: dict[str, int] = {}
        """New executions in this batch per workspace (hex id)."""
        self.workspaces: Rows | None = None
        self.stored_before: set[int] = set()
        """Events already stored by an earlier write of theirs (not counted again)."""
        self.limited: list[Limited] = []
        self.usage: dict[tuple[str, str, Any], list[Any]] = {}
        """(workspace hex, metric, period start) -> [workspace id, quantity] to add."""

    def claim(self) -> list[_Claim]:
        """Lock and read the counters of the new executions under a limit, and count
        their workspaces' unfinished executions (sent now, read in `settle`); read the
        workspaces of the node runs' executions."""
        groups: dict[tuple[str, str], _Claim] = {}
        for index, op in enumerate(self.ops):
            if op.new_execution is None:
                continue
            workspace = op.new_execution["workspace_id"]
            self.new_in[hex_id(workspace)] = self.new_in.get(hex_id(workspace), 0) + 1
            if op.quota is None:
                continue
            key = (hex_id(workspace), str(op.quota.period_start))
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Claim(workspace, op.quota)
            group.positions.append(index)
        statements, sink = self.statements, self.sink
        claims = [groups[key] for key in sorted(groups)]  # ordered locks: no deadlock
        for claim in claims:
            quota = claim.quota
            if quota.executions is None and quota.concurrent is None:
                continue
            claim.used = sink.query(statements.claim_usage.sql, statements.claim_usage.row(
                self._usage_row(claim.workspace_id, EXECUTIONS, quota.period_start)
            ))  # fmt: skip
            if quota.concurrent is not None:
                count = statements.count_unfinished
                claim.unfinished = sink.query(count.sql, count.row(
                    {"workspace_id": claim.workspace_id, **statements.unfinished}
                ))  # fmt: skip
        runs = self.ids_where(lambda index, _: index in self.node_runs_set)
        self.workspaces = statements.workspaces.query(sink, runs) if runs else None
        return claims

    def settle(self, claims: Sequence[_Claim]) -> None:
        """Decide each new execution under a limit (see the module's doc): a refused one
        is deleted again, with every op of it refused."""
        deleted: list[dict[str, Any]] = []
        for claim in claims:
            quota, passed = claim.quota, 0
            used = 0 if claim.used is None else int(claim.used()[0][0])
            unfinished = 0
            if claim.unfinished is not None:  # less this batch's new ones, just inserted
                unfinished = int(claim.unfinished()[0][0]) - self.new_in[hex_id(claim.workspace_id)]
            for index in claim.positions:
                over = _over(quota, used + passed, unfinished + passed)
                if over is None:
                    passed += 1
                    continue
                self.limited.append((index, *over))
                execution_id = self.ops[index].new_execution["id"]  # type: ignore[index]
                key = hex_id(execution_id)
                self.refused.add(index)
                self.refused.update(i for i in range(index, len(self.ops)) if self.keys[i] == key)
                deleted.append({"execution_id": execution_id})
            if passed:
                self._count(claim.workspace_id, EXECUTIONS, quota.period_start, passed)
        self.statements.delete_execution.run(self.sink, deleted)

    def _usage_row(self, workspace: Any, metric: str, period_start: Any) -> dict[str, Any]:
        return {"id": uuid.uuid4(), "workspace_id": workspace, "metric": metric,
                "period_start": period_start, "at": self.now}  # fmt: skip

    def _count(self, workspace: Any, metric: str, period_start: Any, quantity: int) -> None:
        key = (hex_id(workspace), metric, period_start)
        entry = self.usage.setdefault(key, [workspace, 0])
        entry[1] += quantity

    def count_node_runs(self) -> None:
        if self.workspaces is None:
            return
        of = {hex_id(row_id): workspace for row_id, workspace in self.workspaces()}
        # Each connection of the writer counts in a row of its own (the hour, plus its
        # number in microseconds): two never wait on one row's lock. Reports add them up.
        hour = self.now.replace(minute=0, second=0, microsecond=self.shard % 1_000_000)
        for index in self.node_runs:
            if index in self.refused or index in self.stored_before:
                continue
            workspace = of.get(self.keys[index] or "")
            if workspace is not None:
                self._count(workspace, NODE_RUNS, hour, 1)

    def ids_where(self, wanted: Any) -> list[Any]:
        """The targets of the ops `wanted` accepts, each once, ordered by id."""
        found: dict[str, Any] = {}
        for index, op in enumerate(self.ops):
            key = self.keys[index]
            if key is not None and key not in found and wanted(index, op):
                found[key] = op.target()
        return [found[key] for key in sorted(found)]

    def fence(self) -> None:
        fencing, sink = self.statements.fencing, self.sink

        def changes(index: int, op: WriteOp) -> bool:
            return index in self.implied or "status" in op.values

        takes = [
            {"execution_id": op.execution_id, "owner": op.lease,
             "expires_at": op.values["expires_at"], "at": self.now}
            for op in self.ops if op.lease_action == LeaseAction.TAKE
        ]  # fmt: skip
        if fencing.both is None:  # PostgreSQL: two locked reads, around the takes, sent
            # together (with the new executions' insert before them): one wait when pipelined
            pending = fencing.statuses.query(sink, self.ids_where(changes))
            fencing.take.run(sink, takes)
            owned = fencing.held.query(sink, self.ids_where(lambda _, op: op.lease is not None))
            statuses, owners = pending(), owned()
        else:  # SQLite: one read, after the takes
            fencing.take.run(sink, takes)
            both = fencing.both.fetch(
                sink, self.ids_where(lambda index, op: op.lease is not None or changes(index, op))
            )
            statuses = [(row_id, status) for row_id, status, _ in both]
            owners = [(row_id, owner) for row_id, _, owner in both]
        self.statuses = {hex_id(row_id): status for row_id, status in statuses}
        held = {hex_id(row_id): owner for row_id, owner in owners}
        for index, op in enumerate(self.ops):
            if op.lease is not None and held.get(self.keys[index] or "") != op.lease:
                self.refuse(index)

    def refuse(self, index: int) -> None:
        self.refused.add(index)
        lease = self.ops[index].lease
        if lease is not None:
            self.lost.add(lease)

    def check_transitions(self) -> None:
        current = dict(self.statuses)
        for index, op in enumerate(self.ops):
            if index in self.refused:
                continue
            implied = self.implied.get(index)
            to = implied["status"] if implied is not None else op.values.get("status")
            if to is None or op.lease_action is not None:
                continue
            key = self.keys[index] or ""
            status = current.get(key)
            if status is not None and allowed(status, to):
                current[key] = to
                continue
            self.notes.append(
                f"execution {key}: {status or 'missing'} to {to} is not an allowed transition"
                + (f" ({op.event.type})" if op.event is not None else "")
            )
            if op.event is not None:
                self.cut(index)
            else:
                self.refused.add(index)

    def cut(self, index: int) -> None:
        """Refuse op `index` and every later op of its execution in this batch."""
        key = self.keys[index]
        lease = self.ops[index].lease
        for later in range(index, len(self.ops)):
            if self.keys[later] == key and later not in self.refused:
                self.refuse(later)
        if lease is not None:
            fencing = self.statements.fencing
            fencing.revoke.run(self.sink, [{
                "execution_id": self.ops[index].target(), "owner": lease,
                "revoked": REVOKED + lease[:200], "at": self.now,
            }])  # fmt: skip

    def append_events(self) -> None:
        ops, statements = self.ops, self.statements
        positions = [
            index for index, op in enumerate(ops)
            if op.event is not None and index not in self.refused
        ]  # fmt: skip
        events = [_event_values(ops[index].event) for index in positions]  # type: ignore[arg-type]
        suspects = statements.insert_events(self.sink, events) if events else set()
        if not suspects:
            return
        # Maybe skipped: refused unless the stored event is this very one (same type and
        # time: a write that went through before it was retried, or the one of two
        # claims of a place that went in).
        taken: list[int] = []
        for index, values in zip(positions, events, strict=True):
            if (hex_id(values["execution_id"]), values["seq"]) not in suspects:
                continue
            if statements.holds(self.sink, values):
                self.stored_before.add(index)
            else:
                taken.append(index)
        inserted = set(positions) - set(taken)
        for index in taken:
            if index in self.refused:
                continue  # cut already, with an earlier event of its execution
            self.cut(index)
            stale = [
                {"execution_id": ops[later].target(), "seq": ops[later].event.seq}  # type: ignore[union-attr]
                for later in range(index + 1, len(ops))
                if later in inserted and self.keys[later] == self.keys[index]
            ]  # fmt: skip
            statements.delete_event.run(self.sink, stale)

    def project(self) -> None:
        ops, statements, sink = self.ops, self.statements, self.sink
        nodes: dict[str, tuple[Any, Sequence[dict[str, Any]]]] = {}
        updates: dict[str, tuple[Any, dict[str, Any]]] = {}
        calls: dict[uuid.UUID, dict[str, Any]] = {}
        leases: dict[str, list[dict[str, Any]]] = {}
        for index, op in enumerate(ops):
            if index in self.refused:
                continue
            key = self.keys[index] or ""
            implied = self.implied.get(index)
            if implied is not None:
                updates.setdefault(key, (op.target(), {}))[1].update(implied)
            elif op.lease_action is not None:
                leases.setdefault(op.lease_action, []).append({
                    "execution_id": op.execution_id, "owner": op.lease,
                    "expires_at": op.values.get("expires_at"), "at": self.now,
                })  # fmt: skip
            elif op.replace_nodes_of is not None:
                nodes[key] = (op.replace_nodes_of, op.node_rows)
            elif op.execution_id is not None and op.values:
                updates.setdefault(key, (op.execution_id, {}))[1].update(op.values)
            elif op.webhook_called is not None:
                hook = op.webhook_called
                call = calls.setdefault(hook, {"webhook_id": hook, "calls": 0})
                call["calls"] += 1
                call["at"] = op.values["at"]
        if nodes:
            statements.delete_nodes.run(
                sink, [{"execution_id": target} for target, _ in nodes.values()]
            )
            statements.insert_node.run(sink, [row for _, rows in nodes.values() for row in rows])
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for target, values in updates.values():
            by_columns.setdefault(tuple(sorted(values)), []).append(
                {**values, "execution_id": target}
            )
        for columns, rows in by_columns.items():
            statements.update_execution(columns).run(sink, rows)
        statements.count_calls.run(sink, list(calls.values()))
        self.count_node_runs()
        statements.add_usage.run(sink, [  # ordered locks, as in `claim`
            {**self._usage_row(workspace, metric, period), "quantity": quantity}
            for (_, metric, period), (workspace, quantity) in sorted(
                self.usage.items(), key=lambda item: (item[0][0], item[0][1], str(item[0][2]))
            )
        ])  # fmt: skip
        fencing = statements.fencing
        for action, prepared in ((LeaseAction.RENEW, fencing.renew),
                                 (LeaseAction.RELEASE, fencing.release),
                                 (LeaseAction.DROP, fencing.drop)):  # fmt: skip
            prepared.run(sink, leases.get(action, ()))


def write_batch(
    sink: Sink, statements: BulkStatements, batch: Sequence[WriteOp], *, shard: int = 0
) -> Outcome:
    """Write one batch in the sink's transaction (see the module's doc); `shard`: the
    writer's connection, whose node runs count in rows of their own."""
    statements.insert_execution.run(
        sink, [op.new_execution for op in batch if op.new_execution is not None]
    )
    work = _Batch(sink, statements, batch, shard)
    claims = work.claim()
    work.fence()
    work.settle(claims)
    work.check_transitions()
    work.append_events()
    work.project()
    return Outcome(frozenset(work.refused), frozenset(work.lost), tuple(work.notes),
                   limited=tuple(work.limited))  # fmt: skip


@dataclass(slots=True)
class _Claim:
    """The new executions of one workspace and period under a quota, in op order, and
    the reads their decision waits for."""

    workspace_id: Any
    quota: Quota
    positions: list[int] = field(default_factory=list)
    used: Rows | None = None
    unfinished: Rows | None = None


def _over(quota: Quota, used: int, unfinished: int) -> tuple[str, int, int] | None:
    """The limit one more execution would exceed (name, value, usage), if any."""
    if quota.executions is not None and used >= quota.executions:
        return EXECUTIONS_LIMIT, quota.executions, used
    if quota.concurrent is not None and unfinished >= quota.concurrent:
        return CONCURRENT_LIMIT, quota.concurrent, unfinished
    return None


def _event_values(event: NewEvent) -> Mapping[str, Any]:
    return {"execution_id": event.execution_id, "seq": event.seq, "type": event.type,
            "node_id": event.node_id, "data": event.data,
            "created_at": event.created_at or utcnow()}  # fmt: skip
