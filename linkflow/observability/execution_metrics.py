"""Prometheus metrics of the work itself: executions, node runs, the group-commit writer.

Counted where the worker hears its run's events (`ExecutionMetrics.watch` wraps the
observer it hands the engine) and where the writer settles a batch (`WriterMetrics`
is its `on_batch`), so neither the engine nor the store knows of metrics. The cost on
the hot path is a few dict lookups and a counter or histogram update per event:
labelled children are looked up once per label set and kept (`labels()` takes a lock
and builds a key on every call).

What a worker never runs is not counted here: an execution cancelled while its job
waited, or failed when its job went to the dead letters (`linkflow_jobs_total` counts
those), ends without the worker folding it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from linkflow.engine import TERMINAL_EVENTS, Event, EventType

__all__ = ["ExecutionMetrics", "Observer", "WriterMetrics"]

Observer = Callable[[Event], None]

# From 5 ms (a webhook answered by a set node) to an hour (a long HTTP chain; waits count).
_EXECUTION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip
# From 100 µs (a set node) to 5 minutes (an HTTP request's longest timeout).
_NODE_BUCKETS: Final = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 300)
# Ops per batch: 1 (a quiet process) to DEFAULT_MAX_BATCH (2000, a full one).
_BATCH_OPS_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
# From 100 µs (SQLite, few ops) to 5 s (a database in trouble).
_BATCH_SECONDS_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
)  # fmt: skip
_STATUS_OF: Final = {
    EventType.EXECUTION_COMPLETED: "completed", EventType.EXECUTION_FAILED: "failed",
    EventType.EXECUTION_CANCELLED: "cancelled", EventType.EXECUTION_TIMED_OUT: "timeout",
}  # fmt: skip
"""The execution status each terminal event leaves (the API's names)."""
assert set(_STATUS_OF) == TERMINAL_EVENTS


class ExecutionMetrics:
    """Executions started and finished, their durations, node runs and their durations."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started: Final = Counter(
            "linkflow_executions_started", "Executions that started running, by trigger "
            "(manual, webhook, schedule, ...).", ["trigger"], registry=registry,
        )  # fmt: skip
        self.finished: Final = Counter(
            "linkflow_executions_finished", "Executions that ended, by status (completed, "
            "failed, cancelled, timeout) and trigger.", ["status", "trigger"], registry=registry,
        )  # fmt: skip
        self.duration: Final = Histogram(
            "linkflow_execution_duration_seconds", "From an execution's start to its end "
            "(waits included), by trigger.", ["trigger"], buckets=_EXECUTION_BUCKETS,
            registry=registry,
        )  # fmt: skip
        self.node_runs: Final = Counter(
            "linkflow_node_runs", "Node runs that ended, by node type and status (completed, "
            "failed).", ["type", "status"], registry=registry,
        )  # fmt: skip
        self.node_duration: Final = Histogram(
            "linkflow_node_duration_seconds", "From a node run's start to its end (retries "
            "included), by node type.", ["type"], buckets=_NODE_BUCKETS, registry=registry,
        )  # fmt: skip
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def watch(
        self, trigger: str, known: Sequence[Event] | None, node_type: Callable[[str], str],
        observer: Observer,
    ) -> Observer:  # fmt: skip
        """`observer`, also counting the run's events. `known`: the history the run starts
        from, whose `execution.started` times a resumed execution's duration."""
        started_at: list[datetime] = [
            event.timestamp for event in (known or ())[:4]
            if event.type is EventType.EXECUTION_STARTED
        ]  # fmt: skip
        nodes: dict[tuple[str, int], datetime] = {}

        def observe(event: Event) -> None:
            observer(event)
            kind = event.type
            if event.node_id is not None:
                run = event.data.get("run", 0)
                if kind is EventType.NODE_STARTED:
                    nodes[(event.node_id, run)] = event.timestamp
                elif kind is EventType.NODE_COMPLETED or kind is EventType.NODE_FAILED:
                    began = nodes.pop((event.node_id, run), None)
                    type_ = node_type(event.node_id)
                    status = "completed" if kind is EventType.NODE_COMPLETED else "failed"
                    self._child(self.node_runs, type_, status).inc()
                    if began is not None:
                        elapsed = (event.timestamp - began).total_seconds()
                        self._child(self.node_duration, type_).observe(elapsed)
                return
            if kind is EventType.EXECUTION_STARTED:
                started_at.append(event.timestamp)
                self._child(self.started, trigger).inc()
            elif kind in _STATUS_OF:
                self._child(self.finished, _STATUS_OF[kind], trigger).inc()
                if started_at:
                    elapsed = (event.timestamp - started_at[0]).total_seconds()
                    self._child(self.duration, trigger).observe(elapsed)

        return observe


class WriterMetrics:
    """The group-commit writer's batches: how many ops each held and how long it took."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ops: Final = Histogram(
            "linkflow_writer_batch_ops", "Writes (events, row updates, leases) per "
            "group-commit batch.", buckets=_BATCH_OPS_BUCKETS, registry=registry,
        )  # fmt: skip
        self.seconds: Final = Histogram(
            "linkflow_writer_batch_seconds", "Time to write and commit one group-commit batch.",
            buckets=_BATCH_SECONDS_BUCKETS, registry=registry,
        )  # fmt: skip

    def batch(self, ops: int, seconds: float) -> None:
        """The writer's `on_batch`: one batch of `ops` written in `seconds`."""
        self.ops.observe(ops)
        self.seconds.observe(seconds)
