"""The Redis bus across two processes' worth of buses on one real Redis: what one
publishes reaches the other's subscribers in order, its own subscribers once, only the
kinds they asked for, and again after the Pub/Sub connection was cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from linkflow.bus.envelope import message
from linkflow.bus.redis import RedisBus

pytestmark = pytest.mark.redis

DEADLINE_S = 10.0


@pytest.fixture
async def buses(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    """The buses of two processes (an API and a worker) on one Redis."""
    api, worker = RedisBus.from_url(redis_url), RedisBus.from_url(redis_url)
    yield api, worker
    for bus in (api, worker):
        await bus.aclose()


def event(channel: str, kind: str, n: int) -> dict[str, Any]:
    return message(channel, kind, {"n": n}, "2026-12-03T00:00:00Z")


async def test_another_process_gets_every_message_in_order(
    buses: tuple[RedisBus, RedisBus],
) -> None:
    api, worker = buses
    async with api.subscribe("execution.1") as watching:
        for n in range(50):
            worker.publish("execution.1", event("execution.1", "node.completed", n))
        got = [await watching.get(DEADLINE_S) for _ in range(50)]
    assert [m["data"]["n"] for m in got] == list(range(50))
    assert {m["channel"] for m in got} == {"execution.1"}


async def test_own_subscribers_get_a_message_once_and_at_once(
    buses: tuple[RedisBus, RedisBus],
) -> None:
    """Published and subscribed in one process: delivered locally, not again from Redis."""
    api, worker = buses
    async with api.subscribe("execution.2") as mine, worker.subscribe("execution.2") as theirs:
        api.publish("execution.2", event("execution.2", "execution.completed", 1))
        assert (await mine.get(0))["data"] == {"n": 1}  # no round trip: there already
        assert (await theirs.get(DEADLINE_S))["data"] == {"n": 1}
        api.publish("execution.2", event("execution.2", "execution.completed", 2))
        assert (await theirs.get(DEADLINE_S))["data"] == {"n": 2}
        assert (await mine.get(DEADLINE_S))["data"] == {"n": 2}  # not 1 again


async def test_only_the_kinds_asked_for_and_only_while_subscribed(
    buses: tuple[RedisBus, RedisBus],
) -> None:
    api, worker = buses
    ends = frozenset({"execution.completed"})
    async with api.subscribe("execution.3", kinds=ends) as watching:
        worker.publish("execution.3", event("execution.3", "node.started", 1))
        worker.publish("execution.3", event("execution.3", "execution.completed", 2))
        assert (await watching.get(DEADLINE_S))["data"] == {"n": 2}
    async with api.subscribe("execution.other") as other:
        worker.publish("execution.3", event("execution.3", "execution.completed", 3))
        worker.publish("execution.other", event("execution.other", "node.started", 4))
        assert (await other.get(DEADLINE_S))["data"] == {"n": 4}
    assert not api.local.has_subscribers("execution.3")


async def test_a_cut_connection_is_made_again(
    buses: tuple[RedisBus, RedisBus], redis_url: str
) -> None:
    """The subscriber's connection is killed (Redis restarted, a network cut): it comes
    back and re-subscribes; messages published after that arrive (those during the cut
    are missed, by design)."""
    api, worker = buses
    async with api.subscribe("workspace.9") as watching:
        async with aioredis.Redis.from_url(redis_url) as admin:
            assert await admin.client_kill_filter(_type="pubsub") >= 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        n = 0
        while True:
            assert loop.time() < deadline, "the subscription never came back"
            n += 1
            worker.publish("workspace.9", event("workspace.9", "execution.started", n))
            try:
                got = await watching.get(0.2)
            except TimeoutError:
                continue
            assert got["channel"] == "workspace.9"
            break
