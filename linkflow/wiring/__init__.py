"""Builds each process from `Settings`: the one place that picks implementations
(SQLite or PostgreSQL, embedded or Redis queue and bus, which blob store) and composes
the parts against their protocols.

- `build_api`: the HTTP API alone (`linkflow api`); with Redis configured it serves
  the execution plane too, handing executions to `linkflow worker` processes over the
  shared queue; without, it serves none and says so (`api.routes.no_plane`);
- `build_runtime` (`wiring.plane`): worker, scheduler and the API's plane on one
  process's queue and bus; `build_worker` and `build_scheduler` are its parts;
- `build_serve`: the two in one process (`linkflow serve`);
- `build_local_engine` (`wiring.engine`): the engine of `linkflow run`.

Nothing here runs at import time; the CLI calls these builders once. The names of
the submodules are imported on first use (PEP 562): `linkflow run` needs only
`wiring.engine`, and importing the web app and the store with it tripled its start-up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from linkflow.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from linkflow.api import Container
    from linkflow.wiring.container import build_container
    from linkflow.wiring.engine import build_blob_store, build_local_engine, shared_http_client
    from linkflow.wiring.plane import (
        Runtime,
        Shared,
        build_engine,
        build_plane,
        build_runtime,
        build_scheduler,
        build_shared,
        build_worker,
    )

__all__ = [
    "Runtime",
    "Serve",
    "Shared",
    "build_api",
    "build_blob_store",
    "build_container",
    "build_engine",
    "build_local_engine",
    "build_plane",
    "build_runtime",
    "build_scheduler",
    "build_serve",
    "build_shared",
    "build_worker",
    "shared_http_client",
]

_SUBMODULE_OF = {
    "build_container": "linkflow.wiring.container",
    "build_blob_store": "linkflow.wiring.engine",
    "build_local_engine": "linkflow.wiring.engine",
    "shared_http_client": "linkflow.wiring.engine",
    **dict.fromkeys(
        ("Runtime", "Shared", "build_engine", "build_plane", "build_runtime",
         "build_scheduler", "build_shared", "build_worker"),
        "linkflow.wiring.plane",
    ),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """A submodule's public name, imported when it is first asked for."""
    module = _SUBMODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def build_api(settings: Settings) -> FastAPI:
    """The app of an API-only process; `ConfigError` names a bad setting. Its plane
    (with Redis) has its own writer and runs no worker and no code."""
    from linkflow.api import create_app
    from linkflow.observability.tracing import start_tracing
    from linkflow.wiring.container import build_container

    start_tracing(settings, process="api")  # its spans are flushed at exit
    container = build_container(settings)
    if settings.redis_url is None:
        return create_app(container)
    from linkflow.observability.execution_metrics import WriterMetrics
    from linkflow.services.health import writer_answers
    from linkflow.wiring.plane import build_engine, build_plane, build_shared

    shared = build_shared(settings, container.database, runs_worker=False, writer_process=True)
    container.health.add("writer", writer_answers(shared.writer))
    # The executions it creates go through its writer: its batches show on /metrics.
    shared.writer.on_batch = WriterMetrics(container.metrics.registry).batch
    plane = build_plane(shared, build_engine(shared, code=None))
    return create_app(container, plane=plane, lifetime=shared)


@dataclass(frozen=True)
class Serve:
    """`linkflow serve`'s parts: the app, what it is built on, and the plane beside it."""

    app: FastAPI
    container: Container
    runtime: Runtime


def build_serve(settings: Settings, *, concurrency: int = 64) -> Serve:
    """API, worker and scheduler in one process. The SQLite writer runs in a child
    process: serve's own is busy with HTTP and the engine, and the writer's work then
    runs on the other core."""
    from linkflow.api import create_app
    from linkflow.observability.worker_metrics import SchedulerMetrics, WorkerMetrics
    from linkflow.services.health import writer_answers
    from linkflow.wiring.container import build_container
    from linkflow.wiring.plane import build_runtime

    container = build_container(settings)
    # One registry: the API's /metrics shows the worker's and the scheduler's work too.
    registry = container.metrics.registry
    runtime = build_runtime(settings, container.database, concurrency=concurrency,
                            writer_process=True, metrics=WorkerMetrics(registry))  # fmt: skip
    scheduler = runtime.scheduler
    scheduler_metrics = SchedulerMetrics(registry, writer=False)
    scheduler_metrics.leading.set(1)  # serve's scheduler has no rival to lead
    scheduler_metrics.ticks(lambda: scheduler.fired, lambda: scheduler.missed)
    container.health.add("writer", writer_answers(runtime.shared.writer))
    return Serve(create_app(container, plane=runtime.plane), container, runtime)
