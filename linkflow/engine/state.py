"""Execution state as a fold over history events, and the decision of what comes next.

`ExecutionState.apply(event)` is the only way state changes, so a state
rebuilt from a stored history equals the state of the run that wrote it.
`decide()` is a pure function of that state: given the same history it always
names the same next step, which is what makes a replay continue exactly where
the interrupted run stopped.

Order of execution: among the nodes that are ready (every forward input
settled, or for a looping loop node every back edge settled), the one first in
topological order (ties: document order) goes next. A ready node with input
items runs; one without is skipped, which settles its outgoing connections
with no items, so skipping spreads to everything downstream of it only.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from linkflow.engine.events import Event, EventType
from linkflow.engine.graph import Edge
from linkflow.engine.validation import CompiledWorkflow
from linkflow.nodes.sdk import Item, Pair

__all__ = [
    "Decision",
    "ExecutionState",
    "ExecutionStatus",
    "NodeRun",
    "NodeStatus",
    "RunStatus",
    "Segment",
    "items_from_json",
    "items_to_json",
]

DONE_OUTPUT = "done"


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


class NodeStatus(StrEnum):
    """A node's status within the current pass (a loop's body is reset each batch)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    LOOPING = "looping"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Segment:
    """`count` items of output `output` of run `run` of node `node_id`."""

    node_id: str
    run: int
    output: str
    count: int

    def to_json(self) -> list[Any]:
        return [self.node_id, self.run, self.output, self.count]


@dataclass(slots=True)
class NodeRun:
    node_id: str
    index: int
    inputs: list[list[Segment]]
    started_at: datetime
    now: datetime
    status: RunStatus = RunStatus.RUNNING
    attempts: int = 1
    failures: int = 0
    interruptions: int = 0
    """Attempts that started and never ended: the process running them died (or lost
    its lease). Counted so a node that kills its process every time stops being run."""
    open: bool = True
    """The latest attempt started and has not ended (completed, failed, retrying, waiting)."""
    outputs: dict[str, list[Item]] = field(default_factory=dict)
    state: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    completed_at: datetime | None = None

    @property
    def items_in(self) -> int:
        return sum(segment.count for segments in self.inputs for segment in segments)

    @property
    def items_out(self) -> int:
        return sum(len(items) for items in self.outputs.values())


@dataclass(frozen=True, slots=True)
class Decision:
    """The next step: run (or re-run, when `resume`) a node, skip it, or finish."""

    kind: str  # "run" | "skip" | "finish"
    node_id: str | None = None
    resume: bool = False


def items_to_json(items: Sequence[Item]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    append = out.append
    for index, item in enumerate(items):
        entry: dict[str, Any] = {"json": item.json}
        paired = item.paired
        if paired is not None and len(paired) == 1:
            first = paired[0]
            own = first.index == index and first.input == 0 and first.run is None
        else:
            own = False
        if not own:
            entry["paired"] = [
                [p.input, p.index] if p.run is None else [p.input, p.index, p.run]
                for p in paired or ()
            ]
        if item.binary:
            entry["binary"] = dict(item.binary)
        append(entry)
    return out


def items_from_json(raw: Sequence[Mapping[str, Any]]) -> list[Item]:
    items: list[Item] = []
    for index, entry in enumerate(raw):
        links = entry.get("paired")
        paired = (
            (Pair(0, index),)
            if links is None
            else tuple(Pair(link[0], link[1], link[2] if len(link) > 2 else None) for link in links)
        )
        items.append(Item(json=entry["json"], paired=paired, binary=entry.get("binary")))
    return items


def _segments_from_json(raw: Sequence[Sequence[Sequence[Any]]]) -> list[list[Segment]]:
    return [[Segment(s[0], s[1], s[2], s[3]) for s in segments] for segments in raw]


class ExecutionState:
    """Everything known about one execution, folded from its events."""

    def __init__(self, workflow: CompiledWorkflow) -> None:
        self.workflow = workflow
        self.graph = workflow.graph
        self.status = ExecutionStatus.QUEUED
        self.seq = 0
        self.input: Any = None
        self.start_node: str | None = None
        self.mode = "manual"
        self.parent: dict[str, Any] | None = None
        """The execution (and node) that started this one as a child, if one did."""
        self.started_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.output: list[dict[str, Any]] = []
        self.error: dict[str, Any] | None = None
        self.node_status: dict[str, NodeStatus] = dict.fromkeys(
            self.graph.order, NodeStatus.PENDING
        )
        self.runs: dict[str, list[NodeRun]] = {node_id: [] for node_id in self.graph.order}
        self.pending: dict[str, dict[int, list[Segment]]] = {n: {} for n in self.graph.order}
        self.settled: set[Edge] = set()
        self.last_run: NodeRun | None = None
        self.waiting: dict[str, Any] | None = None
        """While status is waiting: `{node_id, run, until, webhook}` of execution.waiting."""
        self.resumed: dict[str, Any] | None = None
        """`{node_id, run, by, payload}` of the last resumption, for the node's next run."""
        self.waited_s = 0.0
        self.response: dict[str, Any] | None = None
        self._waiting_since: datetime | None = None
        # Derived from node_status, kept so that deciding does not scan every node.
        self._open: list[str] = list(self.graph.order)
        self._running: str | None = None

    def _set_status(self, node_id: str, status: NodeStatus) -> None:
        was_open = self.node_status[node_id] in _OPEN
        self.node_status[node_id] = status
        if was_open and status not in _OPEN:
            self._open.remove(node_id)
        elif status in _OPEN and not was_open:
            bisect.insort(self._open, node_id, key=self.graph.rank.__getitem__)
        if status is NodeStatus.RUNNING:
            self._running = node_id
        elif self._running == node_id:
            self._running = None

    # -- folding -------------------------------------------------------------

    def apply(self, event: Event, decoded: object = None) -> None:
        """Fold one event in.

        `decoded` is the event's bulky data in the form the state keeps (output
        items for node.completed, input segments for node.started), passed by the
        executor that just built it so that a live run does not decode its own
        events; a replay leaves it None and the data is decoded here.
        """
        if event.seq != self.seq + 1:
            raise ValueError(f"event {event.seq} applied after {self.seq}")
        self.seq = event.seq
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event, decoded)

    def _on_execution_started(self, event: Event, _: object) -> None:
        self.status = ExecutionStatus.RUNNING
        self.input = event.data.get("input")
        self.start_node = event.data.get("start_node")
        self.mode = event.data.get("mode", "manual")
        self.parent = event.data.get("parent")
        self.started_at = event.timestamp

    def _on_node_started(self, event: Event, decoded: object) -> None:
        """A node run (or another attempt of it) starts; its `now` is the event's time."""
        node_id = event.node_id
        assert node_id is not None
        data = event.data
        runs = self.runs[node_id]
        if runs and runs[-1].index == data["run"]:
            run = runs[-1]
            if run.open:
                run.interruptions += 1
            run.attempts = data["attempt"]
            run.now = event.timestamp
            run.open = True
            return
        if self.node_status[node_id] is NodeStatus.LOOPING:
            self._reset_loop_body(node_id)
        inputs = decoded if isinstance(decoded, list) else _segments_from_json(data["inputs"])
        self.pending[node_id] = {}
        now = event.timestamp
        runs.append(NodeRun(node_id, data["run"], inputs, now, now, attempts=data["attempt"]))
        self._set_status(node_id, NodeStatus.RUNNING)

    def _on_node_retrying(self, event: Event, _: object) -> None:
        assert event.node_id is not None
        run = self.runs[event.node_id][-1]
        run.failures += 1
        run.open = False
        run.error = event.data.get("error")

    def _on_node_completed(self, event: Event, decoded: object) -> None:
        node_id = event.node_id
        assert node_id is not None
        run = self.runs[node_id][-1]
        if isinstance(decoded, dict):
            outputs: Mapping[str, list[Item]] = decoded
        else:
            outputs = {name: items_from_json(raw) for name, raw in event.data["outputs"].items()}
        run.outputs = {name: list(items) for name, items in outputs.items() if items}
        run.state = event.data.get("state")
        run.error = event.data.get("error")
        run.status = RunStatus.COMPLETED
        run.open = False
        run.completed_at = event.timestamp
        self.last_run = run
        looping = run.state is not None and node_id in self.graph.loop_bodies
        self._set_status(node_id, NodeStatus.LOOPING if looping else NodeStatus.DONE)
        for edge in self.graph.outgoing[node_id]:
            if looping and edge.output == DONE_OUTPUT:
                continue
            self._settle(edge, run)

    def _on_node_failed(self, event: Event, _: object) -> None:
        assert event.node_id is not None
        run = self.runs[event.node_id][-1]
        run.status = RunStatus.FAILED
        run.open = False
        run.error = event.data.get("error")
        run.completed_at = event.timestamp

    def _on_node_skipped(self, event: Event, _: object) -> None:
        node_id = event.node_id
        assert node_id is not None
        self._set_status(node_id, NodeStatus.SKIPPED)
        self.pending[node_id] = {}
        for edge in self.graph.outgoing[node_id]:
            self.settled.add(edge)

    def _on_execution_waiting(self, event: Event, _: object) -> None:
        self.status = ExecutionStatus.WAITING
        self.waiting = dict(event.data)
        waiting_runs = self.runs.get(str(event.data.get("node_id")))
        if waiting_runs:
            waiting_runs[-1].open = False
        self._waiting_since = event.timestamp

    def _on_execution_resumed(self, event: Event, _: object) -> None:
        assert self.waiting is not None
        self.status = ExecutionStatus.RUNNING
        self.resumed = {
            "node_id": self.waiting["node_id"], "run": self.waiting["run"],
            "by": event.data.get("by"), "payload": event.data.get("payload"),
        }  # fmt: skip
        if self._waiting_since is not None:
            self.waited_s += (event.timestamp - self._waiting_since).total_seconds()
        self.waiting = None
        self._waiting_since = None

    def _on_execution_responded(self, event: Event, _: object) -> None:
        if self.response is None:
            self.response = dict(event.data)

    def resume_for(self, node_id: str, run: int) -> dict[str, Any] | None:
        """What the node run that asked to wait is resumed with, if it was."""
        resumed = self.resumed
        if resumed is None or resumed["node_id"] != node_id or resumed["run"] != run:
            return None
        return {"by": resumed["by"], "payload": resumed["payload"]}

    def _on_execution_ended(self, event: Event, _: object) -> None:
        self.status = _END_STATUS[event.type]
        self.completed_at = event.timestamp
        self.error = event.data.get("error")
        self.output = event.data.get("output", [])

    def _settle(self, edge: Edge, run: NodeRun) -> None:
        self.settled.add(edge)
        count = len(run.outputs.get(edge.output, ()))
        if count:
            segments = self.pending[edge.target].setdefault(edge.input, [])
            segments.append(Segment(run.node_id, run.index, edge.output, count))

    def _reset_loop_body(self, loop_id: str) -> None:
        """A loop starts its next batch: its body runs afresh."""
        body = self.graph.loop_bodies[loop_id]
        for node_id in body:
            self._set_status(node_id, NodeStatus.PENDING)
            self.pending[node_id] = {}
        self.settled = {
            edge for edge in self.settled
            if edge.target not in body and edge.source != loop_id
            and not (edge.back and edge.target == loop_id)
        }  # fmt: skip

    # -- deciding ------------------------------------------------------------

    def _ready(self, node_id: str) -> bool:
        status = self.node_status[node_id]
        if status is NodeStatus.PENDING:
            return all(edge in self.settled for edge in self.graph.forward_in[node_id])
        if status is NodeStatus.LOOPING:
            return all(edge in self.settled for edge in self.graph.back_in[node_id])
        return False

    def decide(self) -> Decision:
        """The next step, a pure function of the state."""
        if self._running is not None:
            return Decision("run", self._running, resume=True)
        for node_id in self._open:
            if not self._ready(node_id):
                continue
            if self._should_run(node_id):
                return Decision("run", node_id)
            return Decision("skip", node_id)
        return Decision("finish")

    def _should_run(self, node_id: str) -> bool:
        if self.node_status[node_id] is NodeStatus.LOOPING:
            return True
        if self.workflow.nodes[node_id].is_trigger:
            return node_id == self.start_node and not self.runs[node_id]
        return any(self.pending[node_id].values())

    # -- reading -------------------------------------------------------------

    def input_segments(self, node_id: str) -> list[list[Segment]]:
        count = self.workflow.nodes[node_id].input_count
        pending = self.pending[node_id]
        width = max([count, *(k + 1 for k in pending)])
        return [list(pending.get(k, [])) for k in range(width)]

    def items_of(self, segments: Sequence[Segment]) -> list[Item]:
        items: list[Item] = []
        for segment in segments:
            items.extend(self.runs[segment.node_id][segment.run].outputs.get(segment.output, ()))
        return items

    def iter_runs(self) -> Iterator[NodeRun]:
        for node_id in self.graph.order:
            yield from self.runs[node_id]


_OPEN = frozenset({NodeStatus.PENDING, NodeStatus.LOOPING})
"""Statuses of nodes that may still be decided on in the current pass."""

_END_STATUS = {
    EventType.EXECUTION_COMPLETED: ExecutionStatus.COMPLETED,
    EventType.EXECUTION_FAILED: ExecutionStatus.FAILED,
    EventType.EXECUTION_CANCELLED: ExecutionStatus.CANCELLED,
    EventType.EXECUTION_TIMED_OUT: ExecutionStatus.TIMEOUT,
}

_HANDLERS = {
    EventType.EXECUTION_STARTED: ExecutionState._on_execution_started,
    EventType.NODE_STARTED: ExecutionState._on_node_started,
    EventType.NODE_RETRYING: ExecutionState._on_node_retrying,
    EventType.NODE_COMPLETED: ExecutionState._on_node_completed,
    EventType.NODE_FAILED: ExecutionState._on_node_failed,
    EventType.NODE_SKIPPED: ExecutionState._on_node_skipped,
    EventType.EXECUTION_WAITING: ExecutionState._on_execution_waiting,
    EventType.EXECUTION_RESUMED: ExecutionState._on_execution_resumed,
    EventType.EXECUTION_RESPONDED: ExecutionState._on_execution_responded,
    **dict.fromkeys(_END_STATUS, ExecutionState._on_execution_ended),
}
