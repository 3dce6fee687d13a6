"""What the Redis Streams queue adds to the contract (tests/unit/queue/test_contract.py runs
the contract itself against it): several consumers on one Redis, a consumer that vanished,
a Redis that lost its data, and keys kept under the deployment's prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from linkflow.queue import Priority
from linkflow.queue.redis_streams import RedisStreamsQueue
from tests.unit.queue._support import make_job, take

pytestmark = pytest.mark.redis


@pytest.fixture
async def queues(redis_url: str) -> AsyncIterator[tuple[RedisStreamsQueue, RedisStreamsQueue]]:
    """Two queues on one Redis, as two worker processes would have."""
    first, second = RedisStreamsQueue.from_url(redis_url), RedisStreamsQueue.from_url(redis_url)
    yield first, second
    for queue in (first, second):
        await queue.aclose()


async def test_consumers_on_two_processes_share_the_jobs_without_duplicates(
    queues: tuple[RedisStreamsQueue, RedisStreamsQueue],
) -> None:
    first, second = queues
    for n in range(10):
        await first.enqueue(make_job(n))
    taken = [await take(first if n % 2 else second) for n in range(10)]
    assert sorted(d.job.payload["n"] for d in taken) == list(range(10))
    assert (await second.depth())["in_flight"] == 10


async def test_a_vanished_consumers_job_is_reclaimed_by_another(
    queues: tuple[RedisStreamsQueue, RedisStreamsQueue],
) -> None:
    """Taken by one process that then died: another reclaims it (attempt 2), and the dead
    one's receipt settles nothing."""
    dead, alive = queues
    await dead.enqueue(make_job(7))
    lost = await take(dead)
    assert await alive.reclaim(0.0) == 1
    again = await take(alive)
    assert (again.job, again.attempt) == (lost.job, 2)
    await dead.ack(lost)
    assert (await alive.depth())["in_flight"] == 1
    await alive.ack(again)
    assert (await alive.depth())["in_flight"] == 0


async def test_a_redis_that_lost_its_data_is_served_again(
    queues: tuple[RedisStreamsQueue, RedisStreamsQueue], redis_url: str
) -> None:
    """After FLUSHALL (a restart without persistence) the consumer group is made again on
    the next read; jobs enqueued from then on are delivered."""
    queue, _ = queues
    await queue.enqueue(make_job(1))
    await take(queue)
    async with aioredis.Redis.from_url(redis_url) as client:
        await client.flushall()
    await queue.enqueue(make_job(2, Priority.HIGH))
    assert (await take(queue)).job.payload["n"] == 2


async def test_keys_stay_under_the_prefix(redis_url: str) -> None:
    """Two deployments on one Redis, each with its prefix, never see each other's jobs."""
    ours = RedisStreamsQueue.from_url(redis_url, prefix="ours")
    theirs = RedisStreamsQueue.from_url(redis_url, prefix="theirs")
    try:
        await ours.enqueue(make_job(1))
        await ours.enqueue(make_job(2), delay_s=3600)
        assert (await theirs.depth())["normal"] == 0
        assert (await theirs.depth())["delayed"] == 0
        async with aioredis.Redis.from_url(redis_url) as client:
            keys = {key.decode() async for key in client.scan_iter()}
        assert keys == {"ours:queue:normal", "ours:queue:delayed", "theirs:queue:high",
                        "theirs:queue:normal", "theirs:queue:low"}  # fmt: skip
    finally:
        await ours.aclose()
        await theirs.aclose()
