"""A finished (or stopped) execution, read from its final state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from linkflow.engine.events import Event
from linkflow.engine.lineage import locate
from linkflow.engine.state import ExecutionState, NodeStatus, RunStatus
from linkflow.nodes.sdk import ChildExecution

__all__ = ["RunResult"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What `run_workflow` returns: status, output, error, and each node's items."""

    state: ExecutionState
    events: Sequence[Event]
    error_workflow: ChildExecution | None = None
    """The error workflow started because this execution failed, if any."""

    @property
    def response(self) -> dict[str, Any] | None:
        """The webhook answer a respond_to_webhook node produced: {status, headers, body}."""
        return self.state.response

    @property
    def waiting(self) -> dict[str, Any] | None:
        """While waiting: {node_id, run, until, webhook}."""
        return self.state.waiting

    @property
    def status(self) -> str:
        return self.state.status.value

    @property
    def error(self) -> dict[str, Any] | None:
        return self.state.error

    @property
    def output(self) -> list[dict[str, Any]]:
        return self.state.output

    def output_of(self, node_id: str, output: str = "main", run: int = -1) -> list[dict[str, Any]]:
        """The json of the items node `node_id` delivered on `output` in run `run`."""
        runs = self.state.runs[node_id]
        if not runs:
            return []
        return [item.json for item in runs[run].outputs.get(output, ())]

    def ran(self, node_id: str) -> bool:
        return any(r.status is RunStatus.COMPLETED for r in self.state.runs[node_id])

    def skipped(self, node_id: str) -> bool:
        return self.state.node_status[node_id] is NodeStatus.SKIPPED

    def run_count(self, node_id: str) -> int:
        return len(self.state.runs[node_id])

    def item_lineage(
        self, node_id: str, output: str = "main", run: int = -1
    ) -> list[list[tuple[str, int, int]]]:
        """Per output item, the upstream items it descends from: (node id, run, index)."""
        node_run = self.state.runs[node_id][run]
        lineage: list[list[tuple[str, int, int]]] = []
        for item in node_run.outputs.get(output, ()):
            sources: list[tuple[str, int, int]] = []
            for pair in item.paired or ():
                origin = self.state.runs[node_id][pair.run] if pair.run is not None else node_run
                ref = locate(origin.inputs[pair.input], pair.index)
                if ref is not None:
                    sources.append((ref[0], ref[1], ref[3]))
            lineage.append(sources)
        return lineage

    def node_summaries(self) -> list[dict[str, Any]]:
        """Per node run: the contract's `nodes` entries of an execution; nodes that never
        ran because nothing reached them are listed as skipped, after those that ran."""
        waiting = self.state.waiting or {}
        summaries = []
        for node_run in self.state.iter_runs():
            duration = None
            if node_run.completed_at is not None:
                duration = int((node_run.completed_at - node_run.started_at).total_seconds() * 1000)
            status = node_run.status.value
            if waiting.get("node_id") == node_run.node_id and waiting.get("run") == node_run.index:
                status = "waiting"
            summaries.append({
                "node_id": node_run.node_id, "run": node_run.index, "status": status,
                "attempts": node_run.attempts, "items_in": node_run.items_in,
                "items_out": node_run.items_out, "started_at": node_run.started_at,
                "completed_at": node_run.completed_at, "duration_ms": duration,
                "error": node_run.error,
            })  # fmt: skip
        for node_id in self.state.graph.order:
            if self.skipped(node_id) and not self.state.runs[node_id]:
                summaries.append({
                    "node_id": node_id, "run": 0, "status": "skipped", "attempts": 0,
                    "items_in": 0, "items_out": 0, "started_at": None, "completed_at": None,
                    "duration_ms": None, "error": None,
                })  # fmt: skip
        return summaries
