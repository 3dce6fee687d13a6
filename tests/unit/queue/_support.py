"""Helpers shared by the queue tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final, TypeVar

from linkflow.queue import Delivery, Job, JobType, Priority, Queue

T = TypeVar("T")

HANG_GUARD_S: Final = 10.0
"""How long a test waits for something that must happen before calling it a hang.
A guard against a stuck test, not a speed claim: no test asserts it is fast."""


async def within(awaitable: Awaitable[T], timeout_s: float = HANG_GUARD_S) -> T:
    """`awaitable`, failing the test (TimeoutError) rather than hanging it."""
    return await asyncio.wait_for(awaitable, timeout_s)


async def take(queue: Queue) -> Delivery:
    """The next delivery, which the test expects to come."""
    return await within(queue.dequeue())


def make_job(n: int = 0, priority: Priority = Priority.NORMAL, *, max_attempts: int = 3) -> Job:
    """A job told apart by `payload["n"]`."""
    return Job(
        type=JobType.NOTIFICATION, payload={"n": n}, queue=priority, max_attempts=max_attempts
    )


async def settle_into_waiting(*tasks: asyncio.Task[object]) -> None:
    """Let freshly started consumers run until they block in `dequeue`.

    The behaviour under test ("a consumer that is waiting") needs them waiting;
    the loop only yields, it does not sleep, and the caller asserts they are
    still pending.
    """
    for _ in range(20):
        await asyncio.sleep(0)
    assert not any(task.done() for task in tasks), "a consumer returned with nothing queued"
