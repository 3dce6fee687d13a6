"""What the Redis Streams queue adds to the contract (tests/unit/queue/test_contract.py runs
the contract itself against it): several consumers on one Redis, a consumer that vanished,
a Redis that lost its data, keys kept under the deployment's prefix, the pass-over rule,
reads sized to the consumers' free slots, and pipelined enqueues and acks; entries that
hold no job, lanes read, the hand-back at closing, and Redis going away and back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from linkflow.queue import Delivery, Job, Priority
from linkflow.queue.local import PASS_OVER_LIMIT
from linkflow.queue.redis_streams import READ_BATCH, RedisStreamsQueue
from tests._services import start_redis
from tests.api._support import eventually
from tests.unit.queue._support import make_job, settle_into_waiting, take, within

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


async def _calls(redis_url: str) -> dict[str, int]:
    """Commands Redis ran since its statistics were last reset, by name, and under
    "connections" the connections it accepted (this question's own included)."""
    async with aioredis.Redis.from_url(redis_url) as client:
        commands = await client.info("commandstats")
        connections = (await client.info("stats"))["total_connections_received"]
    calls = {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in commands.items()}
    return calls | {"connections": int(connections)}


async def _reset_calls(redis_url: str) -> None:
    async with aioredis.Redis.from_url(redis_url) as client:
        await client.config_resetstat()


@pytest.mark.parametrize("read_batch", [1, READ_BATCH])
class TestPassOverRule:
    """`queue.local`'s starvation policy, kept by the Redis queue whatever its reads' size."""

    async def test_under_a_flood_of_high_jobs_normal_and_low_still_come_out(
        self, redis_url: str, read_batch: int
    ) -> None:
        """40 high jobs ahead of one normal and one low: normal is the 17th out, low the 18th."""
        queue = RedisStreamsQueue.from_url(redis_url, read_batch=read_batch)
        try:
            for n in range(40):
                await queue.enqueue(make_job(n, Priority.HIGH))
            await queue.enqueue(make_job(100, Priority.NORMAL))
            await queue.enqueue(make_job(200, Priority.LOW))
            taken = [await take(queue) for _ in range(42)]
            for delivery in taken:
                await queue.ack(delivery)
            lanes = [d.job.queue for d in taken]
            assert lanes.index(Priority.NORMAL) == PASS_OVER_LIMIT
            assert lanes.index(Priority.LOW) == PASS_OVER_LIMIT + 1
            assert [d.job.payload["n"] for d in taken if d.job.queue is Priority.HIGH] == list(
                range(40)
            )
        finally:
            await queue.aclose()

    async def test_with_every_lane_full_high_keeps_all_but_two_of_each_cycle(
        self, redis_url: str, read_batch: int
    ) -> None:
        """With consumers settling together, the pattern is still 16 high, 1 normal, 1 low."""
        queue = RedisStreamsQueue.from_url(redis_url, read_batch=read_batch)
        try:
            for n in range(60):
                for priority in (Priority.HIGH, Priority.NORMAL, Priority.LOW):
                    await queue.enqueue(make_job(n, priority))
            cycle = [Priority.HIGH] * PASS_OVER_LIMIT + [Priority.NORMAL, Priority.LOW]
            lanes: list[Priority] = []
            while len(lanes) < 3 * len(cycle):
                batch = await within(asyncio.gather(*(queue.dequeue() for _ in range(6))))
                lanes += [d.job.queue for d in batch]
                await asyncio.gather(*(queue.ack(d) for d in batch))
            assert lanes == cycle * 3
        finally:
            await queue.aclose()


class TestReadsSizedToFreeSlots:
    async def test_a_read_takes_only_what_the_waiting_consumers_can_start(
        self, queues: tuple[RedisStreamsQueue, RedisStreamsQueue]
    ) -> None:
        """Three consumers waiting get three jobs of ten; the other seven stay ready for
        another worker, not hoarded by this one."""
        ours, other = queues
        consumers = [asyncio.create_task(ours.dequeue()) for _ in range(3)]
        await settle_into_waiting(*consumers)
        await asyncio.gather(*(ours.enqueue(make_job(n)) for n in range(10)))
        got = await within(asyncio.gather(*consumers))
        assert sorted(d.job.payload["n"] for d in got) == [0, 1, 2]
        assert await other.depth() == {"high": 0, "normal": 7, "low": 0, "delayed": 0,
                                       "in_flight": 3, "dead": 0}  # fmt: skip
        rest = [await take(other) for _ in range(7)]
        assert [d.job.payload["n"] for d in rest] == list(range(3, 10))

    async def test_entries_read_ahead_are_in_flight_and_reclaimed_only_when_idle(
        self, queues: tuple[RedisStreamsQueue, RedisStreamsQueue]
    ) -> None:
        """A consumer that ran four at once reads four for its next ask: the three not yet
        handed out count as in flight, survive a reclaim of older deliveries, and a reclaim
        of everything takes them back (attempt 2) like the handed-out ones, none twice."""
        queue, _ = queues
        for n in range(4):
            await queue.enqueue(make_job(n))
        first = await within(asyncio.gather(*(queue.dequeue() for _ in range(4))))
        await asyncio.gather(*(queue.ack(d) for d in first))
        for n in range(4, 8):
            await queue.enqueue(make_job(n))
        handed = await take(queue)
        assert handed.job.payload["n"] == 4
        assert (await queue.depth())["in_flight"] == 4
        assert await queue.reclaim(3600) == 0
        assert [(d.job.payload["n"], d.attempt) for d in [await take(queue)]] == [(5, 1)]
        assert await queue.reclaim(0.0) == 4
        again = [await take(queue) for _ in range(4)]
        assert sorted((d.job.payload["n"], d.attempt) for d in again) == [
            (n, 2) for n in range(4, 8)
        ]


class TestPipelining:
    async def test_concurrent_enqueues_go_in_one_round_trip_and_each_is_confirmed(
        self, queues: tuple[RedisStreamsQueue, RedisStreamsQueue], redis_url: str
    ) -> None:
        """A burst of 100 enqueues (an API's requests) is one pipeline on the one connection
        the producer has (not one connection per call in flight); each returns with its job
        in Redis, in order."""
        producer, consumer = queues
        await producer.depth()  # its first connection is open
        await _reset_calls(redis_url)
        await asyncio.gather(*(producer.enqueue(make_job(n)) for n in range(100)))
        calls = await _calls(redis_url)
        assert (calls["xadd"], calls["connections"]) == (100, 1)
        assert "exec" not in calls  # a plain pipeline, not a transaction
        assert (await consumer.depth())["normal"] == 100
        assert [(await take(consumer)).job.payload["n"] for _ in range(100)] == list(range(100))

    async def test_acks_settled_together_are_one_xack_and_never_delivered_again(
        self, queues: tuple[RedisStreamsQueue, RedisStreamsQueue], redis_url: str
    ) -> None:
        """Fifty acks from fifty tasks are one XACK and one XDEL; once they returned, nothing
        is in flight and no reclaim brings a job back."""
        queue, other = queues
        await asyncio.gather(*(queue.enqueue(make_job(n)) for n in range(50)))
        deliveries = [await take(queue) for _ in range(50)]
        await _reset_calls(redis_url)
        await asyncio.gather(*(queue.ack(d) for d in deliveries))
        calls = await _calls(redis_url)
        assert (calls["xack"], calls["xdel"]) == (1, 1)
        assert (await other.depth())["in_flight"] == 0
        assert await other.reclaim(0.0) == 0

    async def test_an_ack_or_enqueue_redis_did_not_confirm_raises_to_its_caller(self) -> None:
        """With Redis unreachable, enqueue, dequeue and ack fail; none returns as if done."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        queue = RedisStreamsQueue.from_url(f"redis://127.0.0.1:{port}/0")
        delivery = Delivery(job=make_job(), attempt=1, receipt="linkflow:queue:normal 1-0",
                            delivered_at=0.0)  # fmt: skip
        try:
            with pytest.raises(RedisConnectionError):
                await within(queue.enqueue(make_job()))
            with pytest.raises(RedisConnectionError):
                await within(queue.dequeue())
            with pytest.raises(RedisConnectionError):
                await within(queue.ack(delivery))
        finally:
            await queue.aclose()


def _envelope(**changes: object) -> bytes:
    """A valid job envelope as stored, with `changes` (None: the field removed)."""
    raw = make_job(99).to_json(attempts=1) | changes
    return orjson.dumps({key: value for key, value in raw.items() if value is not None})


BAD_ENTRIES = [
    ({"job": b"\xff\xfe not json", "attempt": b"1"}, "the job is not JSON"),
    ({"job": b'{"id": "x", "type": "notification"}', "attempt": b"1"},
     "the job lacks queue, payload, max_attempts, timeout, created_at"),
    ({"job": _envelope(type="sms"), "attempt": b"1"}, "unknown job type 'sms'"),
    ({"job": _envelope(queue="urgent"), "attempt": b"1"}, "unknown priority 'urgent'"),
    ({"nothing": b"here"}, "the entry has no job field"),
    ({"job": _envelope(), "attempt": b"soon"}, "the entry's attempt is not a positive integer"),
]  # fmt: skip


@pytest.mark.parametrize("read_batch", [1, READ_BATCH])
class TestUndecodableEntries:
    """Entries no job can be made of (a foreign producer's, a newer version's) go to the
    dead letters with the reason and their raw text; the jobs around them are served."""

    async def test_bad_entries_between_good_jobs_are_dead_letters_and_the_good_ones_run(
        self, redis_url: str, read_batch: int
    ) -> None:
        queue = RedisStreamsQueue.from_url(redis_url, read_batch=read_batch)
        stream = queue.keys.stream(Priority.NORMAL)
        try:
            async with aioredis.Redis.from_url(redis_url) as raw:
                for n, (fields, _) in enumerate(BAD_ENTRIES):
                    await queue.enqueue(make_job(n))
                    await raw.xadd(stream, fields)  # type: ignore[arg-type]
                await queue.enqueue(make_job(len(BAD_ENTRIES)))
            taken = [await take(queue) for _ in range(len(BAD_ENTRIES) + 1)]
            assert [d.job.payload["n"] for d in taken] == list(range(len(BAD_ENTRIES) + 1))
            letters = await queue.dead_letters()
            for letter, (fields, reason) in zip(reversed(letters), BAD_ENTRIES, strict=True):
                assert letter.reason.startswith(f"the job cannot be decoded: {reason}")
                kept = fields.get("job")
                if kept is None:
                    assert orjson.loads(letter.raw or "") == {"nothing": "here"}
                elif fields["attempt"] == b"soon":  # the job itself is fine, and listed
                    assert (letter.job, letter.raw) == (Job.from_json(orjson.loads(kept)), None)
                else:
                    assert letter.job is None
                    assert letter.raw == kept.decode(errors="backslashreplace")
            depth = await queue.depth()
            assert (depth["dead"], depth["in_flight"], depth["normal"]) == (6, 7, 0)
            await asyncio.gather(*(queue.ack(d) for d in taken))
            await queue.enqueue(make_job(100))  # the consumer goes on as before
            assert (await take(queue)).job.payload["n"] == 100
        finally:
            await queue.aclose()

    async def test_a_bad_entry_arriving_while_consumers_wait_does_not_reach_them(
        self, redis_url: str, read_batch: int
    ) -> None:
        """The blocking read's path: consumers already waiting get the good job after a
        bad one, and none of them sees an error."""
        queue = RedisStreamsQueue.from_url(redis_url, read_batch=read_batch)
        try:
            consumers = [asyncio.create_task(queue.dequeue()) for _ in range(2)]
            await settle_into_waiting(*consumers)
            async with aioredis.Redis.from_url(redis_url) as raw:
                await raw.xadd(queue.keys.stream(Priority.LOW), {"job": b"garbage"})
            await queue.enqueue(make_job(1, Priority.LOW))
            done, waiting = await within(asyncio.wait(consumers, return_when="FIRST_COMPLETED"))
            assert [t.result().job.payload["n"] for t in done] == [1]
            assert not any(t.done() for t in waiting)
            for task in waiting:
                task.cancel()
            [letter] = await queue.dead_letters()
            assert (letter.job, letter.raw, letter.attempts) == (None, "garbage", 0)
            assert letter.reason.startswith("the job cannot be decoded: the job is not JSON")
        finally:
            await queue.aclose()


async def test_a_delayed_member_that_cannot_be_decoded_is_a_dead_letter(redis_url: str) -> None:
    """Garbage in the delayed set, once due, would fail every read: it goes to the dead
    letters, and the due job beside it is served."""
    queue = RedisStreamsQueue.from_url(redis_url)
    try:
        async with aioredis.Redis.from_url(redis_url) as raw:
            await raw.zadd(queue.keys.delayed, {b"{not a member": 0, b'{"p": 7, "j": "x"}': 0})
        await queue.enqueue(make_job(5), delay_s=0.001)
        assert (await take(queue)).job.payload["n"] == 5
        letters = await queue.dead_letters()
        assert sorted(letter.raw or "" for letter in letters) == ['{"p": 7, "j": "x"}',
                                                                  "{not a member"]  # fmt: skip
        assert {letter.reason for letter in letters} == {"the delayed entry cannot be decoded"}
    finally:
        await queue.aclose()


async def test_an_undecodable_entry_a_vanished_consumer_held_is_buried_by_reclaim(
    queues: tuple[RedisStreamsQueue, RedisStreamsQueue], redis_url: str
) -> None:
    queue, _ = queues
    await queue.depth()  # the groups exist
    stream = queue.keys.stream(Priority.HIGH)
    async with aioredis.Redis.from_url(redis_url) as raw:
        await raw.xadd(stream, {"job": b"[1, 2]", "attempt": b"2"})
        await raw.xreadgroup("workers", "ghost", {stream: ">"})
    assert await queue.reclaim(0.0) == 0
    [letter] = await queue.dead_letters()
    assert (letter.raw, letter.attempts) == ("[1, 2]", 2)
    assert letter.reason == "the job cannot be decoded: the job is not a JSON object"
    assert (await queue.depth())["in_flight"] == 0


class TestLanes:
    """`lanes`: what `linkflow worker --queues` gives its queue."""

    async def test_a_queue_reading_high_only_leaves_normal_and_low_queued(
        self, redis_url: str
    ) -> None:
        high_only = RedisStreamsQueue.from_url(redis_url, lanes=[Priority.HIGH])
        other = RedisStreamsQueue.from_url(redis_url)
        try:
            await high_only.enqueue(make_job(1, Priority.NORMAL))
            await high_only.enqueue(make_job(2, Priority.LOW))
            await high_only.enqueue(make_job(3, Priority.HIGH))
            assert (await take(high_only)).job.payload["n"] == 3
            await _reset_calls(redis_url)
            waiting = asyncio.create_task(high_only.dequeue())
            # Two blocking reads of the high stream came back empty: normal and low were
            # ready all along, and were not taken.
            await within(_until(lambda calls: calls.get("xreadgroup", 0) >= 2, redis_url))
            assert not waiting.done()
            depth = await other.depth()
            assert (depth["normal"], depth["low"], depth["in_flight"]) == (1, 1, 1)
            await other.enqueue(make_job(4, Priority.HIGH))
            assert (await within(waiting)).job.payload["n"] == 4
            assert [(await take(other)).job.payload["n"] for _ in range(2)] == [1, 2]
        finally:
            await high_only.aclose()
            await other.aclose()

    async def test_the_pass_over_rule_holds_among_the_lanes_read(self, redis_url: str) -> None:
        """High and low read, normal not: low still comes out 17th under a flood of high."""
        queue = RedisStreamsQueue.from_url(redis_url, lanes=[Priority.LOW, Priority.HIGH])
        try:
            for n in range(40):
                await queue.enqueue(make_job(n, Priority.HIGH))
            await queue.enqueue(make_job(100, Priority.NORMAL))
            await queue.enqueue(make_job(200, Priority.LOW))
            taken = [await take(queue) for _ in range(41)]
            lanes = [d.job.queue for d in taken]
            assert lanes.index(Priority.LOW) == PASS_OVER_LIMIT
            assert Priority.NORMAL not in lanes
        finally:
            await queue.aclose()

    def test_no_lane_or_an_unknown_one_is_refused(self, redis_url: str) -> None:
        with pytest.raises(ValueError, match="lanes must be some of"):
            RedisStreamsQueue.from_url(redis_url, lanes=[])


async def _until(done: Callable[[dict[str, int]], bool], redis_url: str) -> None:
    async def check() -> bool | None:
        return True if done(await _calls(redis_url)) else None

    await eventually(check, what="Redis to have run those commands")


async def test_closing_hands_back_at_once_what_was_read_ahead(
    queues: tuple[RedisStreamsQueue, RedisStreamsQueue],
) -> None:
    """Three entries read for this process and not handed out are ready for another worker
    as soon as `close` returns (not a visibility timeout later), still at attempt 1; the
    one handed out stays in flight and its ack still works."""
    queue, other = queues
    for n in range(4):
        await queue.enqueue(make_job(n))
    first = await within(asyncio.gather(*(queue.dequeue() for _ in range(4))))
    await asyncio.gather(*(queue.ack(d) for d in first))
    for n in range(4, 8):
        await queue.enqueue(make_job(n))
    handed = await take(queue)
    assert (await other.depth())["in_flight"] == 4
    await queue.close()
    assert (await other.depth())["normal"] == 3
    assert (await other.depth())["in_flight"] == 1
    again = [await take(other) for _ in range(3)]
    assert [(d.job.payload["n"], d.attempt) for d in again] == [(5, 1), (6, 1), (7, 1)]
    await queue.ack(handed)
    assert (await other.depth())["in_flight"] == 3


async def test_a_queue_says_redis_is_unreachable_and_then_back_without_a_restart() -> None:
    """Redis stopped: the failed enqueue raises and the queue is not `reachable`; started
    again on its port: the queue is reachable again on its own and delivers."""
    server = start_redis()
    queue = RedisStreamsQueue.from_url(server.url())
    restarted = None
    try:
        await queue.enqueue(make_job(1))
        assert queue.reachable
        server.stop()
        with pytest.raises(RedisConnectionError):
            await within(queue.enqueue(make_job(2)))
        assert not queue.reachable
        restarted = start_redis(port=server.port)
        await within(_reachable(queue))
        await queue.enqueue(make_job(3))
        assert (await take(queue)).job.payload["n"] == 3  # Redis came back empty
    finally:
        await queue.aclose()
        server.stop()
        if restarted is not None:
            restarted.stop()


async def _reachable(queue: RedisStreamsQueue) -> None:
    async def check() -> bool | None:
        return True if queue.reachable else None

    await eventually(check, what="the queue to find Redis again")
