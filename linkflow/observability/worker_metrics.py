"""Prometheus metrics of a `linkflow worker` (and of the scheduler), on their own port.

A worker has no HTTP API, so `--metrics-port` serves its registry alone
(prometheus-client's exposition server, in a thread of its own). What is counted:
- jobs by type and outcome (`done`: acked, `retried`: redelivered after a backoff,
  `dead_lettered`) and their duration, the jobs running now: measured where a
  delivery is settled, by `MeteredQueue` wrapping the worker's queue, so the worker
  itself stays free of metric calls;
- queue depth by priority (and delayed, in flight, dead) and the age of the oldest
  ready job by priority, read every few seconds;
- lease renewals and losses, read from the `LeaseKeeper`'s counts at scrape time;
- executions, node runs and the writer's batches (`observability.execution_metrics`);
- for the scheduler: whether it leads, the ticks it fired and those it missed (fired
  once for all after an outage longer than the catch-up window), its writer's batches.

`linkflow serve` puts all of them, the scheduler's too, in its API's registry: its
`/metrics` shows the whole process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from linkflow.observability.execution_metrics import ExecutionMetrics, WriterMetrics
from linkflow.observability.logging import get_logger
from linkflow.observability.probes import Ready, serve_metrics_and_probes
from linkflow.queue import Delivery, Queue
from linkflow.queue.wrapper import QueueWrapper

__all__ = ["MeteredQueue", "SchedulerMetrics", "WorkerMetrics", "serve_metrics"]

log = get_logger(__name__)

DEPTH_EVERY_S: Final = 5.0
"""How often the queue's depth is read (a pipeline of a few commands)."""
# From 10 ms (a no-op job) to an hour (Job.timeout's default).
_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)


class WorkerMetrics:
    """The registry of one worker process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry: Final = registry or CollectorRegistry()
        self.jobs: Final = Counter(
            "linkflow_jobs_total", "Jobs settled by this worker, by type and outcome.",
            ["type", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.duration: Final = Histogram(
            "linkflow_job_duration_seconds", "From handing a job out to settling it, by type.",
            ["type"], buckets=_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.active: Final = Gauge(
            "linkflow_jobs_active", "Jobs handed to this worker and not settled yet.",
            registry=self.registry,
        )  # fmt: skip
        self.depth: Final = Gauge(
            "linkflow_queue_depth", "Jobs in the shared queue: ready by priority, delayed, "
            "in flight, dead.", ["state"], registry=self.registry,
        )  # fmt: skip
        self.oldest: Final = Gauge(
            "linkflow_queue_oldest_age_seconds", "How long the oldest ready job of each "
            "priority has waited for a worker (0: none ready).", ["priority"],
            registry=self.registry,
        )  # fmt: skip
        self.executions: Final = ExecutionMetrics(self.registry)
        self.writer: Final = WriterMetrics(self.registry)

    def leases(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Expose the lease renewals and losses `counts()` returns (totals so far)."""
        self.registry.register(_Totals(
            ("linkflow_lease_renewals", "Lease renewals written.", lambda: counts()[0]),
            ("linkflow_lease_losses", "Leases lost to another worker (a refused write or "
             "renewal).", lambda: counts()[1]),
        ))  # fmt: skip

    async def watch_depth(self, queue: Queue) -> None:
        """Keep `linkflow_queue_depth` and `linkflow_queue_oldest_age_seconds` fresh, until
        cancelled."""
        while True:
            try:
                for state, count in (await queue.depth()).items():
                    self.depth.labels(state).set(count)
                for priority, age_s in (await queue.oldest_age_s()).items():
                    self.oldest.labels(priority).set(age_s)
            except Exception:  # the queue is away: the gauges keep their last values
                log.debug("reading the queue depth failed", exc_info=True)
            await asyncio.sleep(DEPTH_EVERY_S)


class _Totals(Collector):
    """Counters whose totals another object keeps (plain integers on a hot path), read at
    scrape time: (name, help, read)."""

    def __init__(self, *totals: tuple[str, str, Callable[[], int]]) -> None:
        self.totals = totals

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, help_text, read in self.totals:
            yield CounterMetricFamily(name, help_text, value=read())


class MeteredQueue(QueueWrapper):
    """A `Queue` that counts what its consumer settles (see the module's doc)."""

    def __init__(self, queue: Queue, metrics: WorkerMetrics) -> None:
        super().__init__(queue)
        self.metrics = metrics
        self._since: dict[str, float] = {}

    async def dequeue(self) -> Delivery:
        delivery = await self.queue.dequeue()
        self._since[delivery.receipt] = time.monotonic()
        self.metrics.active.inc()
        return delivery

    def _settled(self, delivery: Delivery, outcome: str) -> None:
        started = self._since.pop(delivery.receipt, None)
        if started is None:
            return  # settled twice, or handed out before the metrics existed
        self.metrics.active.dec()
        kind = delivery.job.type.value
        self.metrics.jobs.labels(kind, outcome).inc()
        self.metrics.duration.labels(kind).observe(time.monotonic() - started)

    async def ack(self, delivery: Delivery) -> None:
        await self.queue.ack(delivery)
        self._settled(delivery, "done")

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        await self.queue.nack(delivery, delay_s=delay_s)
        self._settled(delivery, "retried")

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self.queue.dead_letter(delivery, reason)
        self._settled(delivery, "dead_lettered")


class SchedulerMetrics:
    """The registry of one scheduler process."""

    def __init__(self, registry: CollectorRegistry | None = None, *, writer: bool = True) -> None:
        """`writer`: count the process's writer here (not in `serve`, whose worker does)."""
        self.registry: Final = registry or CollectorRegistry()
        self.leading: Final = Gauge(
            "linkflow_scheduler_leading", "1 while this scheduler holds the leader lock.",
            registry=self.registry,
        )  # fmt: skip
        self.writer: Final = WriterMetrics(self.registry) if writer else None

    def ticks(self, fired: Callable[[], int], missed: Callable[[], int]) -> None:
        """Expose the schedule ticks `fired()` says this scheduler fired and `missed()` says
        it fired once for all instead of each at its time."""
        self.registry.register(_Totals(
            ("linkflow_scheduler_ticks_fired", "Schedule ticks this scheduler fired.", fired),
            ("linkflow_scheduler_ticks_missed", "Schedule ticks missed for longer than "
             "LINKFLOW_SCHEDULE_CATCH_UP_S (no scheduler ran): not fired at their own time, "
             "one run stood for them all.", missed),
        ))  # fmt: skip


def serve_metrics(
    registry: CollectorRegistry, host: str, port: int, *, ready: Ready | None = None
) -> None:
    """Serve `registry` at http://host:port/metrics from a thread (a process without an
    API), with `/health/live` and `/health/ready` (`ready`'s checks) beside it: see
    `observability.probes`. Call it from the process's event loop."""
    serve_metrics_and_probes(registry, host, port, ready=ready)
