"""Queue benchmark: no-op jobs per second through enqueue → dequeue → ack.

- `local`: the in-process queue, producer and consumers in one event loop;
- `redis`: the Redis Streams queue on a redis-server this script starts on loopback
  (no persistence): a producer process (as an API process would be: bursts of concurrent
  `enqueue` calls), 1, then 2, consumer processes (as workers: `CONSUMER_CONCURRENCY`
  slots each, one `dequeue` per free slot, `ack` at once), with reads of 1 and with the
  default read batch (`READ_BATCH`: reads sized to the free slots). This process times
  from the producer's first enqueue until nothing is ready or in flight.

Target (issue "Many processes"): 10,000 no-op jobs/s through Redis. Prints figures
only; nothing here asserts.

    python bench/queues.py [--jobs N] [--rounds R]

(Not `queue.py`: run as a script, that name would hide the standard library's `queue`.)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import redis

from linkflow.queue import Delivery, Job, JobType, LocalQueue, Queue, QueueClosed
from linkflow.queue.redis_streams import READ_BATCH, RedisStreamsQueue

CONSUMER_CONCURRENCY = 64
"""Deliveries one consumer process settles at once (a worker's slots)."""
PRODUCER_BURST = 500
"""Concurrent `enqueue` calls of the producer (webhook requests in flight in an API)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def job(n: int) -> Job:
    return Job(type=JobType.NOTIFICATION, payload={"n": n})


async def consume(queue: Queue) -> None:
    """Take and ack, up to `CONSUMER_CONCURRENCY` at once, until the queue closes."""
    slots = asyncio.Semaphore(CONSUMER_CONCURRENCY)
    pending: set[asyncio.Task[None]] = set()

    async def settle(delivery: Delivery) -> None:
        try:
            await queue.ack(delivery)
        finally:
            slots.release()

    while True:
        await slots.acquire()
        try:
            delivery = await queue.dequeue()
        except QueueClosed:
            break
        task = asyncio.create_task(settle(delivery))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)


async def drained(queue: Queue) -> None:
    """Return once nothing is ready or in flight any more."""
    while True:
        depth = await queue.depth()
        if not any(depth[key] for key in ("high", "normal", "low", "delayed", "in_flight")):
            return
        await asyncio.sleep(0.005)


async def local_round(jobs: int) -> float:
    queue = LocalQueue()
    started = time.perf_counter()
    consumer = asyncio.create_task(consume(queue))
    for n in range(jobs):
        await queue.enqueue(job(n))
    await drained(queue)
    elapsed = time.perf_counter() - started
    await queue.close()
    await consumer
    return jobs / elapsed


def _consumer_process(url: str, read_batch: int) -> None:
    async def main() -> None:
        await consume(RedisStreamsQueue.from_url(url, read_batch=read_batch))

    asyncio.run(main())


async def _produce(url: str, jobs: int) -> None:
    queue = RedisStreamsQueue.from_url(url)
    for start in range(0, jobs, PRODUCER_BURST):
        chunk = range(start, min(jobs, start + PRODUCER_BURST))
        await asyncio.gather(*(queue.enqueue(job(n)) for n in chunk))
    await queue.aclose()


def _producer_process(url: str, jobs: int, ready: Any, go: Any) -> None:
    ready.set()
    go.wait()
    asyncio.run(_produce(url, jobs))


async def _drained(url: str) -> None:
    queue = RedisStreamsQueue.from_url(url)
    await drained(queue)
    await queue.aclose()


def redis_round(url: str, jobs: int, consumers: int, read_batch: int) -> float:
    with redis.Redis.from_url(url) as client:
        client.flushall()
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_consumer_process, args=(url, read_batch), daemon=True)
                 for _ in range(consumers)]  # fmt: skip
    for process in processes:
        process.start()
    asyncio.run(_produce(url, 100))  # consumers up, groups and scripts in place
    asyncio.run(_drained(url))
    ready, go = context.Event(), context.Event()
    producer = context.Process(target=_producer_process, args=(url, jobs, ready, go))
    producer.start()
    ready.wait()
    started = time.perf_counter()
    go.set()
    producer.join()  # every job enqueued (and some consumed)...
    asyncio.run(_drained(url))  # ...and all of them acked
    elapsed = time.perf_counter() - started
    for process in processes:
        process.terminate()
        process.join(30)
    return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server_binary = shutil.which("redis-server")
    if server_binary is None:
        sys.exit("redis-server is not installed (make services installs it)")
    for _ in range(args.rounds):
        print(f"local queue, one loop: {asyncio.run(local_round(args.jobs)):,.0f} jobs/s")
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [server_binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with redis.Redis.from_url(url) as client:
                        client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            for read_batch in (1, READ_BATCH):
                for consumers in (1, 2):
                    for _ in range(args.rounds):
                        rate = redis_round(url, args.jobs, consumers, read_batch)
                        print(f"redis streams, {consumers} consumer process(es), reads of "
                              f"{read_batch}: {rate:,.0f} jobs/s")  # fmt: skip
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
