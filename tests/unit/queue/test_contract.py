"""The Queue contract (`linkflow.queue.protocol`), run against every implementation.

To run the suite against a new implementation, add one `pytest.param` to
`IMPLEMENTATIONS`: a factory that gets the test's `FixtureRequest` (to ask for
fixtures such as `redis_url` with `request.getfixturevalue`) and returns a
fresh, empty queue. The fixture closes it after the test. A fixture asked for
that way is not seen by the conftest's auto-marking, so such a param carries
its mark itself: ``pytest.param(_redis_queue, id="redis", marks=pytest.mark.redis)``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import pytest

from linkflow.queue import (
    Delivery,
    Job,
    JobType,
    LocalQueue,
    Priority,
    Queue,
    QueueClosed,
)
from linkflow.queue.redis_streams import RedisStreamsQueue
from tests.unit.queue._support import (
    HANG_GUARD_S,
    make_job,
    settle_into_waiting,
    take,
    within,
)

QueueFactory = Callable[[pytest.FixtureRequest], Awaitable[Queue]]


async def _local_queue(request: pytest.FixtureRequest) -> Queue:
    return LocalQueue()


async def _redis_queue(request: pytest.FixtureRequest) -> Queue:
    return RedisStreamsQueue.from_url(request.getfixturevalue("redis_url"))


async def _redis_batched_queue(request: pytest.FixtureRequest) -> Queue:
    return RedisStreamsQueue.from_url(request.getfixturevalue("redis_url"), read_batch=16)


async def _redis_reads_of_one_queue(request: pytest.FixtureRequest) -> Queue:
    return RedisStreamsQueue.from_url(request.getfixturevalue("redis_url"), read_batch=1)


IMPLEMENTATIONS: Final = [
    pytest.param(_local_queue, id="local"),
    pytest.param(_redis_queue, id="redis", marks=pytest.mark.redis),
    pytest.param(_redis_batched_queue, id="redis-batched", marks=pytest.mark.redis),
    pytest.param(_redis_reads_of_one_queue, id="redis-reads-of-1", marks=pytest.mark.redis),
]

CLOCK_SLACK_S: Final = 0.005
"""A delay may end this much early: an implementation may keep due times in whole
milliseconds (Redis does)."""

SHORT_DELAY_S: Final = 0.2
"""Long enough to tell "delayed" from "at once", short enough to keep the suite quick."""

FAR_DELAY_S: Final = 3600.0
"""A delay no test outlives: the job stays delayed for the whole test."""


@pytest.fixture(params=IMPLEMENTATIONS)
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[Queue]:
    factory: QueueFactory = request.param
    made = await factory(request)
    yield made
    await made.close()
    if isinstance(made, RedisStreamsQueue):
        await made.aclose()  # its connections


def _ns(deliveries: list[Delivery]) -> list[int]:
    return [d.job.payload["n"] for d in deliveries]


EMPTY_DEPTH: Final = {"high": 0, "normal": 0, "low": 0, "delayed": 0, "in_flight": 0, "dead": 0}


class TestOrder:
    async def test_higher_priority_is_delivered_first(self, queue: Queue) -> None:
        """Ready jobs come out high, then normal, then low, whatever the enqueue order."""
        order = [Priority.LOW, Priority.NORMAL, Priority.HIGH] * 2
        for n, priority in enumerate(order):
            await queue.enqueue(make_job(n, priority))
        deliveries = [await take(queue) for _ in order]
        expected = [Priority.HIGH] * 2 + [Priority.NORMAL] * 2 + [Priority.LOW] * 2
        assert [d.job.queue for d in deliveries] == expected

    async def test_fifo_within_a_priority(self, queue: Queue) -> None:
        """Jobs of one priority come out in the order they went in."""
        for n in range(20):
            await queue.enqueue(make_job(n))
        assert _ns([await take(queue) for _ in range(20)]) == list(range(20))

    async def test_a_delivered_job_equals_the_enqueued_one(self, queue: Queue) -> None:
        """Every field of the job survives the trip, and the first delivery is attempt 1."""
        job = Job(type=JobType.WEBHOOK_DELIVERY, payload={"a": [1, {"b": None}]},
                  queue=Priority.LOW, max_attempts=5, timeout=12.5)  # fmt: skip
        await queue.enqueue(job)
        delivery = await take(queue)
        assert delivery.job == job
        assert delivery.attempt == 1
        assert not delivery.last_attempt


class TestDelay:
    async def test_delayed_job_is_not_delivered_before_its_delay(self, queue: Queue) -> None:
        """A delayed job waits its delay; a ready job enqueued after it overtakes it."""
        started = time.monotonic()
        await queue.enqueue(make_job(1), delay_s=SHORT_DELAY_S)
        await queue.enqueue(make_job(2))
        first = await take(queue)
        second = await take(queue)
        assert _ns([first, second]) == [2, 1]
        assert time.monotonic() - started >= SHORT_DELAY_S - CLOCK_SLACK_S

    async def test_a_consumer_waiting_on_an_empty_queue_gets_a_delayed_job(
        self, queue: Queue
    ) -> None:
        """A consumer that started waiting before the delayed job existed still gets it."""
        consumer = asyncio.create_task(queue.dequeue())
        await settle_into_waiting(consumer)
        started = time.monotonic()
        await queue.enqueue(make_job(7), delay_s=SHORT_DELAY_S)
        delivery = await within(consumer)
        assert delivery.job.payload["n"] == 7
        assert time.monotonic() - started >= SHORT_DELAY_S - CLOCK_SLACK_S

    async def test_nack_with_a_delay_waits_before_redelivery(self, queue: Queue) -> None:
        """A nacked delivery comes back no sooner than its `delay_s`."""
        await queue.enqueue(make_job(1))
        first = await take(queue)
        nacked_at = time.monotonic()
        await queue.nack(first, delay_s=SHORT_DELAY_S)
        assert (await queue.depth())["delayed"] == 1
        again = await take(queue)
        assert time.monotonic() - nacked_at >= SHORT_DELAY_S - CLOCK_SLACK_S
        assert again.attempt == 2


    async def test_move_due_makes_a_due_delayed_job_ready_without_a_read(
        self, queue: Queue
    ) -> None:
        """What the scheduler does while no worker reads: the retry is ready, not delayed."""
        await queue.enqueue(make_job(1))
        first = await take(queue)
        await queue.nack(first, delay_s=SHORT_DELAY_S)
        await queue.move_due()  # not due yet: stays delayed
        assert (await queue.depth())["delayed"] == 1

        async def moved() -> bool:
            await queue.move_due()
            depth = await queue.depth()
            return depth["delayed"] == 0 and depth["normal"] == 1

        deadline = time.monotonic() + HANG_GUARD_S  # a poll for the condition, not a wait
        while not await moved():
            assert time.monotonic() < deadline, "the due job never became ready"
            await asyncio.sleep(0.01)
        again = await take(queue)
        assert again.attempt == 2


class TestSettling:
    async def test_ack_forgets_the_job(self, queue: Queue) -> None:
        """After ack the job is nowhere: not ready, not in flight, not reclaimable."""
        await queue.enqueue(make_job())
        delivery = await take(queue)
        assert (await queue.depth())["in_flight"] == 1
        await queue.ack(delivery)
        assert await queue.depth() == EMPTY_DEPTH
        assert await queue.reclaim(0.0) == 0

    async def test_nack_redelivers_with_the_next_attempt(self, queue: Queue) -> None:
        """The same job comes back with attempt 2, under a new receipt."""
        await queue.enqueue(make_job(5))
        first = await take(queue)
        await queue.nack(first, delay_s=0.0)
        second = await take(queue)
        assert second.job == first.job
        assert (first.attempt, second.attempt) == (1, 2)
        assert second.receipt != first.receipt

    async def test_attempts_reach_max_then_last_attempt_is_true(self, queue: Queue) -> None:
        """With max_attempts 3 the deliveries are 1, 2, 3, and only the third is the last."""
        await queue.enqueue(make_job(max_attempts=3))
        seen: list[tuple[int, bool]] = []
        for _ in range(3):
            delivery = await take(queue)
            seen.append((delivery.attempt, delivery.last_attempt))
            await queue.nack(delivery, delay_s=0.0)
        assert seen == [(1, False), (2, False), (3, True)]

    async def test_dead_letter_keeps_reason_and_attempts_and_leaves_the_live_queue(
        self, queue: Queue
    ) -> None:
        """The dead letter holds the job, its attempt count and the reason; nothing is live."""
        job = make_job(3)
        await queue.enqueue(job)
        await queue.nack(await take(queue), delay_s=0.0)
        second = await take(queue)
        before = datetime.now(UTC)
        await queue.dead_letter(second, "the node kept failing")
        after = datetime.now(UTC)
        [dead] = await queue.dead_letters()
        assert (dead.job, dead.attempts, dead.reason) == (job, 2, "the node kept failing")
        assert dead.at.utcoffset() is not None
        assert before <= dead.at <= after
        assert await queue.depth() == EMPTY_DEPTH | {"dead": 1}
        assert await queue.reclaim(0.0) == 0

    async def test_dead_letters_are_listed_newest_first_up_to_the_limit(self, queue: Queue) -> None:
        """`dead_letters(limit)` gives the most recent first and no more than `limit`."""
        for n in range(3):
            await queue.enqueue(make_job(n))
            await queue.dead_letter(await take(queue), f"reason {n}")
        newest_first = ["reason 2", "reason 1", "reason 0"]
        assert [d.reason for d in await queue.dead_letters()] == newest_first
        assert [d.reason for d in await queue.dead_letters(limit=2)] == ["reason 2", "reason 1"]
        assert await queue.dead_letters(limit=0) == []

    async def test_a_dead_letter_taken_leaves_the_dead_letters_once(self, queue: Queue) -> None:
        """`take_dead_letter` returns it with its job and removes it; of twenty concurrent
        takes exactly one gets it; an unknown or malformed id takes nothing."""
        for n in range(2):
            await queue.enqueue(make_job(n))
            await queue.dead_letter(await take(queue), f"reason {n}")
        newest, oldest = await queue.dead_letters()
        assert newest.id
        assert oldest.id
        assert newest.id != oldest.id
        taken = await asyncio.gather(*(queue.take_dead_letter(oldest.id) for _ in range(20)))
        [winner] = [dead for dead in taken if dead is not None]
        assert (winner.job, winner.reason, winner.id) == (oldest.job, "reason 0", oldest.id)
        assert [d.reason for d in await queue.dead_letters()] == ["reason 1"]
        assert (await queue.depth())["dead"] == 1
        assert await queue.take_dead_letter("0-1") is None
        assert await queue.take_dead_letter("not an id") is None

    async def test_a_settled_delivery_cannot_be_settled_again(self, queue: Queue) -> None:
        """Ack, nack or dead-letter after an ack change nothing and raise nothing."""
        await queue.enqueue(make_job())
        delivery = await take(queue)
        await queue.ack(delivery)
        await queue.ack(delivery)
        await queue.nack(delivery, delay_s=0.0)
        await queue.dead_letter(delivery, "too late")
        assert await queue.depth() == EMPTY_DEPTH
        assert await queue.dead_letters() == []

    async def test_settles_issued_together_take_effect_in_the_order_issued(
        self, queue: Queue
    ) -> None:
        """Settles issued at once (a worker's tasks finishing together) each take effect; of
        two settles of one delivery the first issued wins and the second is a no-op."""
        for n in range(4):
            await queue.enqueue(make_job(n))
        acked, nacked, dead, left = [await take(queue) for _ in range(4)]
        await asyncio.gather(
            queue.ack(acked), queue.nack(acked, delay_s=0.0),
            queue.nack(nacked, delay_s=0.0), queue.dead_letter(nacked, "too late"),
            queue.dead_letter(dead, "poison"), queue.ack(dead),
        )  # fmt: skip
        assert await queue.depth() == EMPTY_DEPTH | {"normal": 1, "in_flight": 1, "dead": 1}
        again = await take(queue)
        assert (again.job, again.attempt) == (nacked.job, 2)
        assert [d.reason for d in await queue.dead_letters()] == ["poison"]
        await queue.ack(left)
        await queue.ack(again)
        assert await queue.depth() == EMPTY_DEPTH | {"dead": 1}


class TestReclaim:
    async def test_reclaim_redelivers_unsettled_deliveries_only(self, queue: Queue) -> None:
        """Of four deliveries (acked, nacked, dead-lettered, left), only the left one returns."""
        for n in range(4):
            await queue.enqueue(make_job(n))
        acked, nacked, dead, left = [await take(queue) for _ in range(4)]
        await queue.ack(acked)
        await queue.nack(nacked, delay_s=FAR_DELAY_S)
        await queue.dead_letter(dead, "poison")
        assert await queue.reclaim(0.0) == 1
        again = await take(queue)
        assert (again.job, again.attempt) == (left.job, 2)
        assert (await queue.depth())["delayed"] == 1

    async def test_reclaim_spares_deliveries_younger_than_idle_s(self, queue: Queue) -> None:
        """A delivery handed out just now is not idle for an hour: it stays in flight."""
        await queue.enqueue(make_job())
        await take(queue)
        assert await queue.reclaim(FAR_DELAY_S) == 0
        assert (await queue.depth())["in_flight"] == 1

    async def test_stale_receipt_after_reclaim_does_not_settle_the_new_delivery(
        self, queue: Queue
    ) -> None:
        """The vanished consumer's old delivery settles nothing; the new one still can."""
        await queue.enqueue(make_job())
        old = await take(queue)
        assert await queue.reclaim(0.0) == 1
        new = await take(queue)
        assert new.receipt != old.receipt
        await queue.ack(old)
        await queue.nack(old, delay_s=0.0)
        await queue.dead_letter(old, "stale")
        assert await queue.depth() == EMPTY_DEPTH | {"in_flight": 1}
        assert await queue.dead_letters() == []
        await queue.ack(new)
        assert await queue.depth() == EMPTY_DEPTH

    async def test_reclaimed_deliveries_reach_every_waiting_consumer(self, queue: Queue) -> None:
        """Three jobs reclaimed at once wake three waiting consumers, not one."""
        for n in range(3):
            await queue.enqueue(make_job(n))
        for _ in range(3):
            await take(queue)
        consumers = [asyncio.create_task(queue.dequeue()) for _ in range(3)]
        await settle_into_waiting(*consumers)
        assert await queue.reclaim(0.0) == 3
        deliveries = await within(asyncio.gather(*consumers))
        assert sorted(_ns(deliveries)) == [0, 1, 2]
        assert {d.attempt for d in deliveries} == {2}


class TestDepth:
    async def test_depth_counts_ready_delayed_in_flight_and_dead(self, queue: Queue) -> None:
        """Each job is counted once, where it is."""
        assert await queue.depth() == EMPTY_DEPTH
        for n, priority in enumerate([Priority.HIGH, Priority.HIGH, Priority.NORMAL, Priority.LOW]):
            await queue.enqueue(make_job(n, priority))
        await queue.enqueue(make_job(9, Priority.LOW), delay_s=FAR_DELAY_S)
        await take(queue)
        await queue.dead_letter(await take(queue), "gone")
        assert await queue.depth() == {
            "high": 0, "normal": 1, "low": 1, "delayed": 1, "in_flight": 1, "dead": 1,
        }  # fmt: skip


class TestOldestAge:
    async def test_the_age_is_how_long_the_first_ready_job_of_each_priority_waited(
        self, queue: Queue
    ) -> None:
        """It grows while the job waits, drops to the next job's when it is taken, and is
        0 for a priority with nothing ready; a job in flight or delayed is not waiting."""
        assert await queue.oldest_age_s() == {"high": 0, "normal": 0, "low": 0}
        began = time.monotonic()
        await queue.enqueue(make_job(1, Priority.NORMAL))
        await queue.enqueue(make_job(2, Priority.LOW), delay_s=FAR_DELAY_S)

        async def aged() -> float:
            # Polled: the age moves with the clock alone, there is nothing to wait on.
            while (age := (await queue.oldest_age_s())["normal"]) < SHORT_DELAY_S:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return age

        first_age = await within(aged())
        # Redis counts whole milliseconds: the bound has one of slack.
        assert first_age <= time.monotonic() - began + 0.002
        await queue.enqueue(make_job(3, Priority.NORMAL))
        taken = await take(queue)
        assert taken.job.payload["n"] == 1
        ages = await queue.oldest_age_s()
        assert ages["normal"] < first_age, "the second job waited less than the first"
        assert ages["high"] == ages["low"] == 0
        await take(queue)
        assert await queue.oldest_age_s() == {"high": 0, "normal": 0, "low": 0}


class TestClose:
    async def test_close_wakes_a_waiting_consumer_with_QueueClosed(self, queue: Queue) -> None:
        """Every consumer blocked in dequeue gets QueueClosed when the queue closes."""
        consumers = [asyncio.create_task(queue.dequeue()) for _ in range(2)]
        await settle_into_waiting(*consumers)
        await queue.close()
        for consumer in consumers:
            with pytest.raises(QueueClosed):
                await within(consumer)

    async def test_dequeue_after_close_raises_even_with_jobs_left(self, queue: Queue) -> None:
        """A closed queue hands out nothing more; the jobs are the database's to recover."""
        await queue.enqueue(make_job())
        await queue.close()
        with pytest.raises(QueueClosed):
            await within(queue.dequeue())

    async def test_deliveries_in_flight_can_be_settled_after_close(self, queue: Queue) -> None:
        """Shutdown lets running work finish: ack and dead-letter still take effect."""
        for n in range(2):
            await queue.enqueue(make_job(n))
        done, failed = await take(queue), await take(queue)
        await queue.close()
        await queue.ack(done)
        await queue.dead_letter(failed, "shutdown")
        assert await queue.depth() == EMPTY_DEPTH | {"dead": 1}


class TestConcurrency:
    PRODUCERS: Final = 8
    CONSUMERS: Final = 8
    JOBS_PER_PRODUCER: Final = 250

    async def _run(
        self, queue: Queue, settle: Callable[[Delivery], Awaitable[bool]]
    ) -> Counter[tuple[int, int]]:
        """Producers and consumers at once, until `settle` (True: acked) has acked every job;
        (job n, attempt) of every delivery, counted."""
        total = self.PRODUCERS * self.JOBS_PER_PRODUCER
        seen: Counter[tuple[int, int]] = Counter()
        acked: set[int] = set()
        all_acked = asyncio.Event()
        priorities = list(Priority)

        async def produce(p: int) -> None:
            for i in range(self.JOBS_PER_PRODUCER):
                n = p * self.JOBS_PER_PRODUCER + i
                await queue.enqueue(make_job(n, priorities[n % len(priorities)]))
                if i % 16 == 0:
                    await asyncio.sleep(0)  # interleave with the consumers

        async def consume() -> None:
            while True:
                try:
                    delivery = await queue.dequeue()
                except QueueClosed:
                    return
                seen[(delivery.job.payload["n"], delivery.attempt)] += 1
                await asyncio.sleep(0)
                if await settle(delivery):
                    acked.add(delivery.job.payload["n"])
                if len(acked) == total:
                    all_acked.set()

        async with asyncio.TaskGroup() as group:
            for _ in range(self.CONSUMERS):
                group.create_task(consume())
            for p in range(self.PRODUCERS):
                group.create_task(produce(p))
            await within(all_acked.wait())
            await queue.close()
        return seen

    async def test_every_job_is_delivered_exactly_once_when_all_are_acked(
        self, queue: Queue
    ) -> None:
        """Many producers and consumers: each of the 2,000 jobs is delivered once, as attempt 1."""

        async def ack(delivery: Delivery) -> bool:
            await queue.ack(delivery)
            return True

        seen = await self._run(queue, ack)
        total = self.PRODUCERS * self.JOBS_PER_PRODUCER
        assert seen == Counter({(n, 1): 1 for n in range(total)})
        assert await queue.depth() == EMPTY_DEPTH

    async def test_every_nacked_job_comes_back_exactly_once(self, queue: Queue) -> None:
        """Each job nacked at attempt 1 and acked at attempt 2 is delivered exactly twice."""

        async def nack_first_ack_second(delivery: Delivery) -> bool:
            if delivery.attempt == 1:
                await queue.nack(delivery, delay_s=0.0)
                return False
            await queue.ack(delivery)
            return True

        seen = await self._run(queue, nack_first_ack_second)
        total = self.PRODUCERS * self.JOBS_PER_PRODUCER
        assert seen == Counter({(n, a): 1 for n in range(total) for a in (1, 2)})
        assert await queue.depth() == EMPTY_DEPTH
