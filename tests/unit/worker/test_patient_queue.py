"""The worker's queue through a Redis outage (`worker.patient_queue`): a real
redis-server, stopped and started again on its port while a consumer waits."""

from __future__ import annotations

import asyncio

import pytest
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError

from linkflow.queue import Delivery
from linkflow.queue.redis_streams import RedisStreamsQueue
from linkflow.worker.patient_queue import PatientQueue
from tests._services import RedisServer, start_redis
from tests.api._support import eventually
from tests.unit.queue._support import make_job, take, within

pytestmark = pytest.mark.redis

OUTAGE_GUARD_S = 30.0
"""How long a test waits for the consumer to come back: the retry cap (5 s) and a slow
machine's redis-server start, with room."""


async def _enqueued(queue: RedisStreamsQueue, n: int) -> bool | None:
    try:
        await queue.enqueue(make_job(n))
    except RedisConnectionError:
        return None
    return True


class TestThroughAnOutage:
    async def test_a_waiting_consumer_lives_through_it_and_takes_jobs_after_it(self) -> None:
        """The dequeue waiting when Redis goes neither raises nor returns; once Redis is
        back on its port, it gets the next job. The outage is logged once, and its end."""
        server = start_redis()
        inner = RedisStreamsQueue.from_url(server.url())
        patient, producer = PatientQueue(inner), RedisStreamsQueue.from_url(server.url())
        restarted: RedisServer | None = None
        try:
            await inner.depth()
            with structlog.testing.capture_logs() as logs:
                waiting = asyncio.create_task(patient.dequeue())
                server.stop()
                await eventually(lambda: _unreachable(inner), what="the outage to be seen")
                # Several reads failed meanwhile (the probe and retries went on).
                await eventually(lambda: _retried(patient, 3), what="three retries")
                assert not waiting.done()
                restarted = start_redis(port=server.port)
                await eventually(lambda: _enqueued(producer, 7), timeout_s=OUTAGE_GUARD_S,
                                 what="Redis back")  # fmt: skip
                delivery = await within(waiting, OUTAGE_GUARD_S)
            assert delivery.job.payload["n"] == 7
            await patient.ack(delivery)
            events = [entry["event"] for entry in logs]
            assert sum("unreachable" in event for event in events) == 1, events
            assert sum("reachable again" in event for event in events) == 1, events
        finally:
            for queue in (patient, producer):
                await queue.aclose()
            server.stop()
            if restarted is not None:
                restarted.stop()

    async def test_a_settle_is_retried_until_redis_answers(self) -> None:
        """An ack made while Redis is away waits for it rather than fail: once Redis is back
        it returns, and the job is not delivered again."""
        server = start_redis()
        inner = RedisStreamsQueue.from_url(server.url())
        patient = PatientQueue(inner)
        restarted: RedisServer | None = None
        try:
            await inner.enqueue(make_job(1))
            delivery: Delivery = await take(patient)
            server.stop()
            acking = asyncio.create_task(patient.ack(delivery))
            await eventually(lambda: _retried(patient, 2), what="the ack to be retried")
            assert not acking.done()
            restarted = start_redis(port=server.port)
            await within(acking, OUTAGE_GUARD_S)
            assert (await inner.depth())["in_flight"] == 0
        finally:
            await patient.aclose()
            server.stop()
            if restarted is not None:
                restarted.stop()

    async def test_after_close_a_settle_gives_up_at_once(self) -> None:
        """At shutdown nothing waits for Redis: the settle raises (the entry stays pending,
        for a reclaim), and a dequeue says the queue is closed."""
        server = start_redis()
        patient = PatientQueue(RedisStreamsQueue.from_url(server.url()))
        try:
            await patient.enqueue(make_job(1))
            delivery = await take(patient)
            server.stop()
            await patient.close()
            with pytest.raises(RedisConnectionError):
                await within(patient.ack(delivery))
        finally:
            await patient.aclose()
            server.stop()


async def _unreachable(queue: RedisStreamsQueue) -> bool | None:
    return True if not queue.reachable else None


async def _retried(queue: PatientQueue, times: int) -> bool | None:
    return True if queue._retries >= times else None
