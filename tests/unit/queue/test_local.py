"""LocalQueue beyond the shared contract: its starvation policy, bounds and wake-ups."""

from __future__ import annotations

import asyncio

import pytest

from linkflow.queue import LocalQueue, Priority
from linkflow.queue.local import PASS_OVER_LIMIT
from tests.unit.queue._support import make_job, settle_into_waiting, take, within


async def _drain(queue: LocalQueue, count: int) -> list[Priority]:
    deliveries = [await take(queue) for _ in range(count)]
    for delivery in deliveries:
        await queue.ack(delivery)
    return [d.job.queue for d in deliveries]


class TestStarvationPolicy:
    async def test_a_waiting_lane_gets_a_take_after_the_pass_over_limit(self) -> None:
        """Under a flood of high jobs, the waiting normal then low job come out after 16."""
        queue = LocalQueue()
        for n in range(40):
            await queue.enqueue(make_job(n, Priority.HIGH))
        await queue.enqueue(make_job(100, Priority.NORMAL))
        await queue.enqueue(make_job(200, Priority.LOW))
        taken = await _drain(queue, 42)
        assert taken.index(Priority.NORMAL) == PASS_OVER_LIMIT
        assert taken.index(Priority.LOW) == PASS_OVER_LIMIT + 1

    async def test_with_every_lane_full_high_keeps_all_but_two_of_each_cycle(self) -> None:
        """The steady pattern is 16 high, 1 normal, 1 low, over and over."""
        queue = LocalQueue()
        for n in range(60):
            for priority in (Priority.HIGH, Priority.NORMAL, Priority.LOW):
                await queue.enqueue(make_job(n, priority))
        cycle = [Priority.HIGH] * PASS_OVER_LIMIT + [Priority.NORMAL, Priority.LOW]
        assert await _drain(queue, 3 * len(cycle)) == cycle * 3

    async def test_a_lane_that_empties_starts_counting_afresh(self) -> None:
        """Pass-overs count while a lane waits; a lane that had nothing waiting owes nothing."""
        queue = LocalQueue()
        for n in range(PASS_OVER_LIMIT - 1):
            await queue.enqueue(make_job(n, Priority.HIGH))
        await _drain(queue, PASS_OVER_LIMIT - 1)  # the normal lane was empty all along
        for n in range(3):
            await queue.enqueue(make_job(n, Priority.HIGH))
        await queue.enqueue(make_job(9, Priority.NORMAL))
        assert await _drain(queue, 4) == [Priority.HIGH] * 3 + [Priority.NORMAL]


class TestBounds:
    async def test_dead_letters_beyond_the_limit_drop_the_oldest(self) -> None:
        """The in-memory dead letters are bounded; the newest stay."""
        queue = LocalQueue(dead_letter_limit=3)
        for n in range(5):
            await queue.enqueue(make_job(n))
            await queue.dead_letter(await take(queue), f"reason {n}")
        assert [d.reason for d in await queue.dead_letters()] == [
            "reason 4", "reason 3", "reason 2",
        ]  # fmt: skip
        assert (await queue.depth())["dead"] == 3

    async def test_a_negative_dead_letter_limit_is_refused(self) -> None:
        """`limit` counts letters; below zero it is a mistake."""
        with pytest.raises(ValueError, match="must not be negative"):
            await LocalQueue().dead_letters(limit=-1)


class TestReceipts:
    async def test_a_delivery_of_another_queue_settles_nothing(self) -> None:
        """Receipts differ between queues, so a delivery from one cannot ack the other's."""
        first, second = LocalQueue(), LocalQueue()
        await first.enqueue(make_job(1))
        await second.enqueue(make_job(2))
        from_first, from_second = await take(first), await take(second)
        await second.ack(from_first)
        assert (await second.depth())["in_flight"] == 1
        await second.ack(from_second)
        assert (await second.depth())["in_flight"] == 0


class TestWakeUps:
    async def test_a_consumer_cancelled_after_its_wake_up_passes_it_on(self) -> None:
        """Regression guard: a cancelled consumer must not swallow the notify meant for a job."""
        queue = LocalQueue()
        cancelled = asyncio.create_task(queue.dequeue())
        other = asyncio.create_task(queue.dequeue())
        await settle_into_waiting(cancelled, other)
        await queue.enqueue(make_job(1))  # notifies the first waiter...
        cancelled.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        delivery = await within(other)
        assert delivery.job.payload["n"] == 1

    async def test_a_consumer_cancelled_after_a_delayed_wake_up_passes_it_on(self) -> None:
        """Regression guard: the consumer left waiting learns of the delayed job and gets it."""
        queue = LocalQueue()
        cancelled = asyncio.create_task(queue.dequeue())
        other = asyncio.create_task(queue.dequeue())
        await settle_into_waiting(cancelled, other)
        await queue.enqueue(make_job(1), delay_s=0.05)  # notifies the first waiter...
        cancelled.cancel()  # ...which is cancelled before it sets its timeout
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        delivery = await within(other)
        assert delivery.job.payload["n"] == 1

    async def test_due_delayed_jobs_reach_every_waiting_consumer(self) -> None:
        """Several delayed jobs falling due together are taken by as many consumers."""
        queue = LocalQueue()
        consumers = [asyncio.create_task(queue.dequeue()) for _ in range(3)]
        await settle_into_waiting(*consumers)
        for n in range(3):
            await queue.enqueue(make_job(n), delay_s=0.05)
        deliveries = await within(asyncio.gather(*consumers))
        assert sorted(d.job.payload["n"] for d in deliveries) == [0, 1, 2]

    async def test_depth_promotes_due_delayed_jobs(self) -> None:
        """A delayed job whose time has come is counted as ready, not delayed."""
        queue = LocalQueue()
        await queue.enqueue(make_job(), delay_s=0.05)
        deadline = asyncio.get_running_loop().time() + 10.0
        while (depth := await queue.depth())["delayed"]:
            assert asyncio.get_running_loop().time() < deadline, "the job never fell due"
            await asyncio.sleep(0.01)
        assert depth["normal"] == 1
