"""`linkflow worker`: runs executions from the shared queue, on the shared database.

Any number of them run beside `linkflow api` and `linkflow scheduler` on PostgreSQL
and Redis. Each takes at most `--concurrency` jobs at a time; an execution runs
under its lease (`worker.leases`), renewed by this process's heartbeat, so a
worker that dies (SIGKILL, a lost machine) leaves its executions to another once
their leases expire, resumed from their histories.

SIGTERM (a deploy, a scale-down) is graceful: the worker takes no new job at once;
the executions it runs go on for up to `LINKFLOW_WORKER_SHUTDOWN_GRACE_S`; those
still running then are stopped at their next durable point, their leases released,
and their jobs queued again for another worker (`Worker.hand_back`), before the
writer flushes and the process exits.

`--queues high,normal` pins a worker to some priorities (a pool of workers for urgent
work alone, say); the pass-over rule (`queue.local`) applies among them. With Redis
away the worker keeps running: its reads and settles are retried with backoff
(`worker.patient_queue`), and it takes jobs again once Redis answers.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence

from linkflow.config import Settings
from linkflow.observability.logging import get_logger
from linkflow.observability.tracing import start_tracing, stop_tracing
from linkflow.observability.worker_metrics import WorkerMetrics, serve_metrics
from linkflow.processes._memory import give_back_when_idle
from linkflow.processes._signals import stop_requested
from linkflow.queue.job import PRIORITY_ORDER, Priority
from linkflow.services.health import Health, queue_answers, writer_answers

__all__ = ["work"]

log = get_logger(__name__)


def _still_running(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    """A readiness check: the worker's loop has not ended (it ends only on a bug)."""

    async def check() -> None:
        if task.done():
            raise RuntimeError("the worker's loop stopped")

    return check


async def work(
    settings: Settings, *, concurrency: int, metrics_port: int | None = None,
    queues: Sequence[Priority] = PRIORITY_ORDER,
) -> None:  # fmt: skip
    """`queues`: the priorities this worker takes (`--queues`)."""
    from linkflow.wiring.cluster import build_worker_process

    start_tracing(settings, process="worker")
    metrics = WorkerMetrics() if metrics_port is not None else None
    built = build_worker_process(settings, concurrency=concurrency, metrics=metrics,
                                 queues=queues)  # fmt: skip
    shared, worker = built.shared, built.worker
    stop = stop_requested()
    shared.writer.start()
    running = asyncio.create_task(worker.run(), name="worker")
    heartbeat = asyncio.create_task(shared.leases.run(), name="lease-heartbeat")
    writer = shared.writer
    idle = asyncio.create_task(give_back_when_idle(lambda: writer.ops), name="give-back-memory")
    depth = None
    if metrics is not None and metrics_port is not None:
        health = Health(shared.database, None, checks={
            "redis": queue_answers(shared.queue), "writer": writer_answers(shared.writer),
            "worker": _still_running(running),
        })  # fmt: skip
        serve_metrics(metrics.registry, settings.host, metrics_port, ready=health.check)
        depth = asyncio.create_task(metrics.watch_depth(shared.queue), name="queue-depth")
    sys.stdout.write(f"LinkFlow worker is running ({concurrency} at a time)\n")
    sys.stdout.flush()
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # the worker's loop ended by itself: say why
        log.info("shutting down: finishing running executions",
                 running=len(worker.active), grace_s=settings.worker_shutdown_grace_s)  # fmt: skip
        await worker.queue.close()  # its retries too: a settle is tried once more, then left
        _, late = await asyncio.wait({running}, timeout=settings.worker_shutdown_grace_s)
        if late:
            log.info("grace period over: handing back running executions",
                     running=len(worker.active))  # fmt: skip
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    finally:
        stopping.cancel()
        for task in (heartbeat, depth, idle):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await shared.writer.close()  # the stopped runs' lease releases are durable now
        try:
            handed = await worker.hand_back()
        except Exception:  # Redis away: their leases expire, and recovery requeues them
            log.warning("handing back executions failed", exc_info=True)
        else:
            if handed:
                log.info("handed back executions to the queue", count=handed)
        await shared.aclose()
        if built.code is not None and hasattr(built.code, "close"):
            await built.code.close()
        await asyncio.to_thread(stop_tracing)  # the last spans exported
