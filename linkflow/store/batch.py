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
   replacement per execution), webhook counts (added up), lease actions.

The outcome names the refused positions, the leases that lost a write, and a
note per refused transition, for the caller to raise, stop and log.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from linkflow.store.bulk import BulkStatements, Sink, hex_id
from linkflow.store.fencing import REVOKED
from linkflow.store.repositories.events import NewEvent
from linkflow.store.transitions import STATUS_OF_EVENT, allowed
from linkflow.store.types import utcnow

__all__ = ["LeaseAction", "Outcome", "Refused", "WriteOp", "write_batch"]

Refused = frozenset[int]
"""Positions in a batch of the ops that were not written."""


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

    def __init__(self, sink: Sink, statements: BulkStatements, ops: Sequence[WriteOp]) -> None:
        self.sink = sink
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
        for index, op in enumerate(ops):
            if op.event is not None and op.lease is not None:
                values = _implied(op.event)
                if values is not None:
                    self.implied[index] = values

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
        taken = [
            index for index, values in zip(positions, events, strict=True)
            if (hex_id(values["execution_id"]), values["seq"]) in suspects
            and not statements.holds(self.sink, values)
        ]  # fmt: skip
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
        fencing = statements.fencing
        for action, prepared in ((LeaseAction.RENEW, fencing.renew),
                                 (LeaseAction.RELEASE, fencing.release),
                                 (LeaseAction.DROP, fencing.drop)):  # fmt: skip
            prepared.run(sink, leases.get(action, ()))


def write_batch(sink: Sink, statements: BulkStatements, batch: Sequence[WriteOp]) -> Outcome:
    """Write one batch in the sink's transaction (see the module's doc)."""
    statements.insert_execution.run(
        sink, [op.new_execution for op in batch if op.new_execution is not None]
    )
    work = _Batch(sink, statements, batch)
    work.fence()
    work.check_transitions()
    work.append_events()
    work.project()
    return Outcome(frozenset(work.refused), frozenset(work.lost), tuple(work.notes))


def _event_values(event: NewEvent) -> Mapping[str, Any]:
    return {"execution_id": event.execution_id, "seq": event.seq, "type": event.type,
            "node_id": event.node_id, "data": event.data,
            "created_at": event.created_at or utcnow()}  # fmt: skip
