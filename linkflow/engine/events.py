"""Execution history events: the append-only record an execution is folded from.

Names and order are public (CONTRACT.md section 4): clients stream them, and
`GET /executions/{id}/logs` returns them. Data shapes per type:

- `execution.started`: `{input, start_node, mode, workflow: {id, name, version}}`
- `node.started`: `{run, attempt, inputs: [[[node_id, run, output, count], ...], ...]}`
  (per input, the upstream outputs its items came from, in order); the event's
  timestamp is the `now` the node and its expressions see
- `node.retrying`: `{run, attempt, error, delay_s}`
- `node.completed`: `{run, outputs: {name: [{json, paired?}]}, state?, error?}`;
  `paired` is omitted when it is `[[0, i]]` for the item at index i
  or, when the outputs are larger than the blob threshold, `outputs_ref` (a blob
  holding the `outputs` object as JSON) instead of `outputs`; `meta` when the
  node recorded some (e.g. `child_executions`); `logs` (lines from `ctx.log`, e.g.
  a code node's prints) when there are any, on node.failed too
- `node.failed`: `{run, attempt, error}`; `node.skipped`: `{}`
- `execution.waiting`: `{node_id, run, until, webhook}`; `execution.resumed`:
  `{by: "time"|"webhook", payload}`; `execution.responded`: `{status, headers, body}`
  (the answer for a webhook caller, as soon as a node produced it)
- `execution.completed`: `{output}`; `execution.failed` / `execution.timed_out`:
  `{error: {message, node_id}}`; `execution.cancelled`: `{reason}`
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

__all__ = ["TERMINAL_EVENTS", "Event", "EventType"]


class EventType(StrEnum):
    EXECUTION_QUEUED = "execution.queued"
    EXECUTION_STARTED = "execution.started"
    EXECUTION_WAITING = "execution.waiting"
    EXECUTION_RESUMED = "execution.resumed"
    EXECUTION_RESPONDED = "execution.responded"
    EXECUTION_COMPLETED = "execution.completed"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    EXECUTION_TIMED_OUT = "execution.timed_out"
    NODE_STARTED = "node.started"
    NODE_COMPLETED = "node.completed"
    NODE_FAILED = "node.failed"
    NODE_RETRYING = "node.retrying"
    NODE_SKIPPED = "node.skipped"


TERMINAL_EVENTS = frozenset(
    {
        EventType.EXECUTION_COMPLETED,
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_TIMED_OUT,
    }
)


class Event(NamedTuple):
    """One history entry; `seq` is 1-based and dense within an execution.

    Immutable. A named tuple rather than a frozen dataclass: about ten are made per
    execution on the hot path, and a frozen dataclass's `__init__` sets each field
    through `object.__setattr__` (four times the cost)."""

    seq: int
    type: EventType
    node_id: str | None
    data: dict[str, Any]
    timestamp: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": str(self.type),
            "node_id": self.node_id,
            "data": self.data,
            "timestamp": self.timestamp.isoformat(),
        }
