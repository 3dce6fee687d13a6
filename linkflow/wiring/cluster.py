"""The processes of the Redis plane: `linkflow worker` and `linkflow scheduler`.

Both run on a shared PostgreSQL and a shared Redis (`LINKFLOW_DATABASE_URL`,
`LINKFLOW_REDIS_URL`): processes on several machines cannot share a SQLite file
or an in-process queue, so either setting missing is a `ConfigError` naming it.
`linkflow api` is the third (`wiring.build_api`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from linkflow.config import ConfigError, Settings
from linkflow.nodes.sdk import CodeRunner
from linkflow.observability.worker_metrics import WorkerMetrics
from linkflow.queue import PRIORITY_ORDER, Priority
from linkflow.sandbox import build_runner
from linkflow.scheduler.leader import LeaderLock
from linkflow.scheduler.local import LocalScheduler
from linkflow.store import Database
from linkflow.wiring.plane import (
    Shared,
    build_engine,
    build_queue,
    build_scheduler,
    build_shared,
    build_worker,
)
from linkflow.worker.consumer import Worker

__all__ = ["SchedulerProcess", "WorkerProcess", "build_scheduler_process", "build_worker_process"]


@dataclass
class WorkerProcess:
    """`linkflow worker`'s parts: the shared plane, a worker on it, its code runner."""

    shared: Shared
    worker: Worker
    code: CodeRunner | None


@dataclass
class SchedulerProcess:
    """`linkflow scheduler`'s parts: the shared plane, the scheduler's duties, the lock
    that says whether this process performs them."""

    shared: Shared
    scheduler: LocalScheduler
    lock: LeaderLock


def check_cluster_settings(settings: Settings, command: str) -> None:
    """Refuse to start a Redis-plane process without a shared database and Redis."""
    if settings.redis_url is None:
        raise ConfigError(
            f"`linkflow {command}` needs LINKFLOW_REDIS_URL (the queue and bus it shares with "
            "`linkflow api`); for one process with everything embedded, run `linkflow serve`"
        )
    if not settings.effective_database_url.startswith("postgresql"):
        raise ConfigError(
            f"`linkflow {command}` needs a PostgreSQL database in LINKFLOW_DATABASE_URL "
            "(postgresql+asyncpg://...): processes on several machines cannot share a "
            "SQLite file"
        )


def _database(settings: Settings) -> Database:
    return Database(settings.effective_database_url, pool_size=settings.database_pool_size)


def build_worker_process(
    settings: Settings, *, concurrency: int, metrics: WorkerMetrics | None = None,
    queues: Sequence[Priority] = PRIORITY_ORDER,
) -> WorkerProcess:  # fmt: skip
    """With `metrics`, the worker counts there what it settles, runs and writes, and its
    lease keeper's renewals and losses (`build_worker`). `queues`: the priorities it takes."""
    check_cluster_settings(settings, "worker")
    shared = build_shared(settings, _database(settings), writer_process=True,
                          queue=build_queue(settings, lanes=queues))  # fmt: skip
    code = build_runner(settings)
    worker = build_worker(shared, build_engine(shared, code), concurrency=concurrency,
                          metrics=metrics)  # fmt: skip
    return WorkerProcess(shared, worker, code)


def build_scheduler_process(settings: Settings) -> SchedulerProcess:
    check_cluster_settings(settings, "scheduler")
    assert settings.redis_url is not None
    from redis.asyncio import Redis

    shared = build_shared(settings, _database(settings), runs_worker=False)
    lock = LeaderLock(Redis.from_url(settings.redis_url), prefix=settings.redis_prefix,
                      ttl_s=settings.scheduler_lock_ttl_s)  # fmt: skip
    return SchedulerProcess(shared, build_scheduler(shared), lock)
