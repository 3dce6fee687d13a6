"""`linkflow scheduler`: fires schedules, wakes due waits, recovers what workers left.

Run two (or more) for availability: one leads at a time (`scheduler.leader`, a lock
in Redis), the others wait to take over. While it leads, a scheduler
- fires cron and interval schedules whose time came, each tick a compare-and-set on
  `next_run_at` in the transaction that creates its execution (missed ticks: those of
  the last `LINKFLOW_SCHEDULE_CATCH_UP_S` fire each, older ones once for all, see
  `scheduler.local`);
- hands due wait timers to the workers;
- recovers, every half lease, the executions nobody holds: leases that expired (a
  worker died), queued executions whose job Redis lost (restarted empty), parents
  whose children all ended (see `ExecutionService.recover`);
- reclaims queue entries a vanished worker took and never settled
  (`LINKFLOW_QUEUE_VISIBILITY_S`), and says when dead letters appear;
- at taking the lead, queues again the outgoing webhook deliveries left open;
- counts usage per workspace and hour (`services.usage`, every five minutes) and
  deletes executions past their retention, hourly;
- moves due retries and delayed jobs back to their streams every second (every
  worker's reads do it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from linkflow.config import Settings
from linkflow.observability.logging import get_logger
from linkflow.observability.tracing import start_tracing, stop_tracing
from linkflow.observability.worker_metrics import SchedulerMetrics, serve_metrics
from linkflow.processes._signals import stop_requested
from linkflow.services.health import Health, writer_answers

__all__ = ["schedule"]

log = get_logger(__name__)

MOVE_DUE_EVERY_S = 1.0
"""How often the leader moves due delayed jobs to their streams (one script call)."""

if TYPE_CHECKING:
    from linkflow.wiring.cluster import SchedulerProcess


async def schedule(settings: Settings, *, metrics_port: int | None = None) -> None:
    from linkflow.wiring.cluster import build_scheduler_process

    start_tracing(settings, process="scheduler")
    built = build_scheduler_process(settings)
    lock = built.lock
    metrics = SchedulerMetrics()
    if metrics_port is not None:
        metrics.ticks(lambda: built.scheduler.fired, lambda: built.scheduler.missed)
        if metrics.writer is not None:
            built.shared.writer.on_batch = metrics.writer.batch
        health = Health(built.shared.database, lock.redis,
                        checks={"writer": writer_answers(built.shared.writer)})  # fmt: skip
        serve_metrics(metrics.registry, settings.host, metrics_port, ready=health.check)
    stop = stop_requested()
    built.shared.writer.start()
    sys.stdout.write("LinkFlow scheduler is running (leading when it holds the lock)\n")
    sys.stdout.flush()
    duties: asyncio.Task[None] | None = None
    reachable = True
    try:
        while not stop.is_set():
            try:
                if duties is None:
                    if await lock.acquire():
                        log.info("leading: this scheduler fires schedules now")
                        duties = asyncio.create_task(_lead(built, settings), name="leading")
                elif duties.done():  # they catch what they meet: this is a bug
                    log.error("the leader's duties stopped; the lock lapses to another",
                              exc_info=duties.exception())  # fmt: skip
                    duties = None
                elif not await lock.renew():
                    log.warning("no longer leading: another scheduler took over")
                    await _stop(duties)
                    duties = None
                if not reachable:
                    log.info("Redis is reachable again")
                    reachable = True
            except (RedisError, OSError):
                if reachable:  # logged once per change, not per attempt
                    log.warning("Redis is unreachable: not leading until it is back")
                    reachable = False
                await _stop(duties)
                duties = None
            metrics.leading.set(duties is not None)
            wait_s = lock.renew_every_s if duties is not None else lock.try_every_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)
    finally:
        await _stop(duties)
        with contextlib.suppress(RedisError, OSError):
            await lock.resign()  # a follower takes over at its next try, not a lease later
        await lock.redis.aclose()
        await built.shared.aclose()
        await asyncio.to_thread(stop_tracing)


async def _stop(duties: asyncio.Task[None] | None) -> None:
    if duties is not None:
        duties.cancel()
        await asyncio.gather(duties, return_exceptions=True)


async def _lead(built: SchedulerProcess, settings: Settings) -> None:
    """The leader's duties, until cancelled (leadership lost, or shutdown)."""
    from linkflow.wiring.plane import outgoing_events

    shared = built.shared
    try:
        recovered = await shared.executions.recover(shared.dead_owner)
        recovered += await shared.children.recover()
        if recovered:
            log.info("resuming unfinished executions", count=recovered)
        # Outgoing webhooks left open by a process that died (see services.outgoing_events).
        await outgoing_events(shared).recover()
    except Exception:
        log.warning("recovery at taking the lead failed; retried every half lease", exc_info=True)
    await asyncio.gather(built.scheduler.run(), _reclaim(built, settings), _move_due(built))


async def _move_due(built: SchedulerProcess) -> None:
    """Due retries and delayed jobs to their streams every `MOVE_DUE_EVERY_S`, whether or
    not a worker reads (workers' reads move them too)."""
    while True:
        await asyncio.sleep(MOVE_DUE_EVERY_S)
        try:
            await built.shared.queue.move_due()
        except Exception:  # Redis away: the leadership loop deals with it
            log.debug("moving due jobs failed", exc_info=True)


async def _reclaim(built: SchedulerProcess, settings: Settings) -> None:
    """Queue entries of vanished workers back to the queue; new dead letters logged."""
    queue = built.shared.queue
    dead = None
    while True:
        await asyncio.sleep(settings.queue_visibility_s / 2)
        try:
            reclaimed = await queue.reclaim(settings.queue_visibility_s)
            if reclaimed:
                log.info("reclaimed jobs a vanished worker held", count=reclaimed)
            now_dead = (await queue.depth()).get("dead", 0)
            if dead is not None and now_dead > dead:
                log.warning("jobs went to the dead letters", new=now_dead - dead, total=now_dead)
            dead = now_dead
        except Exception:
            log.warning("reclaiming queue entries failed; retrying", exc_info=True)
