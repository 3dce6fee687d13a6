"""`linkflow serve`: the API, a worker and the scheduler in one process.

Embedded defaults: SQLite under the data dir (migrated at start), the
in-process queue (rebuilt from the database at start, so nothing queued or
running is lost across a restart or a kill) and the in-process bus.

Shutdown on SIGTERM/SIGINT is graceful: the HTTP server stops accepting,
the worker takes no new job and lets running executions reach their end (a
waiting one is already checkpointed), and the writer flushes. A SIGKILL
loses nothing either: every step is in the history, and the next start
resumes what was queued or running.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator

import uvicorn

from linkflow.config import Settings
from linkflow.observability.logging import get_logger
from linkflow.observability.tracing import start_tracing, stop_tracing
from linkflow.processes._memory import give_back_when_idle

__all__ = ["serve"]


class _Server(uvicorn.Server):
    """uvicorn's server, minus its own signal handling: uvicorn re-raises a caught
    SIGTERM once the HTTP side has stopped, which would kill the process before the
    worker finished its executions. Here the signal only starts the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop_accepting(self) -> None:
        log.info("shutting down: finishing running executions")
        self.should_exit = True


log = get_logger(__name__)


async def serve(settings: Settings, *, concurrency: int = 64) -> None:
    from linkflow.wiring import build_serve

    start_tracing(settings, process="serve")
    built = build_serve(settings, concurrency=concurrency)
    runtime = built.runtime
    config = uvicorn.Config(
        built.app, host=settings.host, port=settings.port, loop="none", http="httptools",
        log_config=None, access_log=False, proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=10, lifespan="on",
    )  # fmt: skip
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, server.stop_accepting)
    recovered = await runtime.start()
    if recovered:
        log.info("resuming unfinished executions", count=recovered)
    serving = asyncio.create_task(server.serve())
    writer = runtime.shared.writer
    idle = asyncio.create_task(give_back_when_idle(lambda: writer.ops), name="give-back-memory")
    # uvicorn offers `started` as a flag only, no event to wait on.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if server.started:
        url = runtime.plane.public_url
        sys.stdout.write(f"LinkFlow is running at {url}  (API docs: {url}/docs)\n")
        sys.stdout.flush()
    try:
        await serving
    finally:
        idle.cancel()
        await runtime.stop()
        await asyncio.to_thread(stop_tracing)  # the last spans exported
