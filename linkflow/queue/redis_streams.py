"""The job queue on Redis Streams: what workers on many machines share.

One stream per priority (`redis_keys.QueueKeys`), read through one consumer group:
an entry handed to a worker stays pending (in flight, in the group's pending list)
until the worker settles it, so a worker that vanishes loses nothing: `reclaim`
(`XAUTOCLAIM`) finds entries idle past a visibility timeout and queues them again.

How it keeps the `Queue` contract (`queue.protocol`):
- Priority: `queue.local`'s pass-over rule, applied by a script as it reads: high before
  normal before low, except that a lane with ready entries that saw `PASS_OVER_LIMIT`
  takes from higher lanes in a row gets the next take (normal before low). So under a
  flood of high jobs the head of normal waits at most 16 takes, the head of low 17.
  Each process counts its own takes (as each `LocalQueue` does); FIFO within a lane.
- Receipts: an entry id. Settling is a script that first `XACK`s the entry and acts
  only if that acknowledged it (it was still pending): a stale consumer's settle,
  after a reclaim or a second settle, changes nothing. A redelivery (nack, reclaim)
  is a new entry, so a new receipt, with `attempt` one more; the old entry is
  deleted. `XACK` then `XDEL` on ack: a settled job is gone from Redis.
- Delays: jobs wait in a sorted set scored by their due time in Redis's own clock
  (`TIME`, so producers' clocks do not matter); every read first moves the due ones
  to their stream in the same script, so two workers never move one twice.
- Dead letters: a capped stream; the newest are listed first.
- Bad input: an entry that holds no job this version can decode (garbage bytes, half
  an envelope, an unknown type or priority, no `job` field: `_redis_entries`) is
  dead-lettered as it is read, with the reason and its raw text, and never handed out;
  the entries around it are served as usual. A delayed member that cannot be decoded
  goes to the dead letters too, in the read's script.
- Lanes: a queue reads the priorities it was made with (`lanes`, all by default:
  `linkflow worker --queues`), the pass-over rule applying among them; it enqueues to,
  reclaims from and counts every lane.
- Redis emptied (restarted without data): a read that finds its group gone makes it
  again; what was queued is the database's to recover (`ExecutionService.recover`).
- Redis unreachable: every call fails with redis-py's `ConnectionError` (or
  `TimeoutError`); the queue then says it is not `reachable` until a command succeeds
  again, which it checks by a `PING` every `PROBE_EVERY_S` while it is away (and only
  then: a healthy queue makes no extra round trip). Retrying is the caller's business
  (`worker.patient_queue`); refusing new work while it is away is the API's.
- Closing hands back at once what was read for this process and not handed out (see
  `close`), rather than leaving it to a reclaim after the visibility timeout.

Round trips (what makes 10,000 jobs/s possible, `bench/queues.py`):
- Reads are sized to the consumers' free slots: one read (one script call) takes as
  many entries as this process's consumers can start now, at most `read_batch`, and
  hands them out here one `dequeue` at a time, in the order the rule above chose. The
  free slots are learned, not configured: a consumer calls `dequeue` only with a slot
  free and holds it until it settles the delivery, so the most deliveries ever
  unsettled here plus callers waiting in `dequeue` is a lower bound on its slots, and
  that bound minus the deliveries unsettled now is what a read takes. Entries are
  therefore never hoarded while another worker is idle: they are read for a consumer
  that asks for them at once. One read is in flight per process; concurrent callers of
  `dequeue` share it.
- "In flight" is pending in Redis: an entry read but not yet handed out is pending to
  this consumer like a handed-out one (counted in `depth()["in_flight"]`, its idle
  time running in Redis, so another process's `reclaim` may take it back if it waits
  too long; here it then settles nothing, as any stale delivery).
- Settles and enqueues are pipelined (`_redis_pipeline.Pipeliner`): the acks, nacks,
  dead letters and enqueues of one event-loop iteration go to Redis in one pipeline
  (one `XACK` and one `XDEL` per stream for all acks; a script per nack and dead
  letter, each atomic), and each call returns only once Redis answered its own
  command: an acked job is never delivered again after `ack` returned.

A consumer waiting on empty streams blocks in `XREADGROUP` for at most `BLOCK_MS`
(and no longer than the next delayed job's due time), then looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from linkflow.queue._redis_entries import (
    Bad,
    Held,
    dead_letter_of,
    encode,
    entry_fields,
    member,
    read_entry,
    text,
)
from linkflow.queue._redis_pipeline import Pipeliner
from linkflow.queue._redis_scripts import BURY, DELAY, READ, REQUEUE
from linkflow.queue.delivery import DeadLetter, Delivery
from linkflow.queue.job import PRIORITY_ORDER, Job, Priority
from linkflow.queue.local import PASS_OVER_LIMIT
from linkflow.queue.protocol import QueueClosed
from linkflow.queue.redis_keys import GROUP, QueueKeys

_ENTRY_ID: Final = re.compile(r"\d{1,20}-\d{1,20}")
"""A stream entry id (`1700000000000-0`): anything else names no dead letter."""

__all__ = [
    "BLOCK_MS",
    "MAX_CONNECTIONS",
    "MAX_DEAD_LETTERS",
    "PROBE_EVERY_S",
    "READ_BATCH",
    "RedisStreamsQueue",
]

BLOCK_MS: Final = 100
"""Longest one blocking read waits before the consumer looks at the delayed jobs again."""
MAX_CONNECTIONS: Final = 64
"""Connections one process's queue opens to Redis at most (one per command in flight)."""
POOL_WAIT_S: Final = 10.0
"""How long a command waits for a free connection before it fails."""
MAX_DEAD_LETTERS: Final = 10_000
"""Dead letters kept (approximately: the stream is trimmed with `~`)."""
READ_BATCH: Final = 64
"""Most entries one read takes. A read takes no more than the consumers' free slots
anyway (see the module's doc), so this only caps a worker with many slots: 64 entries
are about 15 KB of no-op jobs, and beyond that the round trip saved per job is noise."""
PROBE_EVERY_S: Final = 1.0
"""How often a queue that lost Redis pings it, until it answers: new work is refused
(`reachable`) at most this long after Redis is back."""
CLOSE_WAIT_S: Final = 2.0
"""How long `close` waits for the read in flight (a blocking read lasts `BLOCK_MS`) so
that what it takes is handed back too; a read still out then is cancelled by `aclose`."""
_MOVE_BATCH: Final = 100
"""Due delayed jobs one read moves at most (the rest go at the next read)."""
_UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, OSError)
"""What a command raises when Redis cannot be reached (redis-py wraps socket errors)."""


class RedisStreamsQueue:
    """A `Queue` on Redis Streams (see the module's doc)."""

    def __init__(
        self, redis: Redis, *, keys: QueueKeys | None = None, read_batch: int = READ_BATCH,
        lanes: Sequence[Priority] = PRIORITY_ORDER,
    ) -> None:  # fmt: skip
        """`lanes`: the priorities this queue's consumers take (at least one)."""
        if not lanes or any(lane not in PRIORITY_ORDER for lane in lanes):
            raise ValueError(f"lanes must be some of {[p.value for p in PRIORITY_ORDER]}")
        self.redis = redis
        self.keys = keys or QueueKeys()
        self.read_batch = read_batch
        self.lanes = tuple(priority for priority in PRIORITY_ORDER if priority in lanes)
        self._lane_mask = "".join("1" if p in self.lanes else "0" for p in PRIORITY_ORDER)
        self._read_streams = tuple(self.keys.stream(priority) for priority in self.lanes)
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._closed = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self._groups = False
        self._held: deque[Held] = deque()
        """Entries read for this process's consumers and not handed out yet, in order."""
        self._unsettled: set[str] = set()
        """Receipts handed out here and not settled here yet."""
        self._slots = 0
        """The learned lower bound on the consumers' slots (see the module's doc)."""
        self._waiting = 0
        self._passed_over = (0, 0)
        """Takes from higher lanes in a row that normal and low saw (the pass-over rule)."""
        self._fetching: asyncio.Future[None] | None = None
        self._closed_down: asyncio.Future[None] | None = None
        """`close`'s hand-back, shared by every caller of `close`."""
        self._unreachable = False
        self._probe: asyncio.Task[None] | None = None
        self._read = redis.register_script(READ)
        self._delay = redis.register_script(DELAY)
        self._requeue = redis.register_script(REQUEUE)
        self._bury_script = redis.register_script(BURY)
        self._pipeline = Pipeliner(redis, (self._delay, self._requeue, self._bury_script))

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "linkflow", connections: int = MAX_CONNECTIONS,
        read_batch: int = READ_BATCH, lanes: Sequence[Priority] = PRIORITY_ORDER,
    ) -> RedisStreamsQueue:  # fmt: skip
        """A queue with a pool of at most `connections`, which callers beyond it wait for
        (redis-py's default pool would fail them instead: a burst of webhook calls)."""
        pool = BlockingConnectionPool.from_url(url, max_connections=connections,
                                               timeout=POOL_WAIT_S)  # fmt: skip
        # `from_pool`: the client owns the pool, so `aclose` closes its connections too.
        return cls(Redis.from_pool(pool), keys=QueueKeys(prefix), read_batch=read_batch,
                   lanes=lanes)  # fmt: skip

    # -- reachability ------------------------------------------------------------------

    @property
    def reachable(self) -> bool:
        """See `Queue.reachable` and the module's doc."""
        return not self._unreachable

    def _outcome(self, error: BaseException | None) -> None:
        """Learn from a command's outcome whether Redis answers (no round trip of its own)."""
        if error is None:
            self._unreachable = False
        elif isinstance(error, _UNREACHABLE) and not self._unreachable:
            self._unreachable = True
            if self._probe is None or self._probe.done():
                self._probe = asyncio.create_task(self._wait_for_redis(), name="redis-probe")

    async def _wait_for_redis(self) -> None:
        # The idle connections of before are dead (Redis closed them, or restarted): each
        # would fail its next command, after Redis is back, and say it is away again.
        await self.redis.connection_pool.disconnect(inuse_connections=False)
        while self._unreachable:
            await asyncio.sleep(PROBE_EVERY_S)
            try:
                await self.redis.ping()
            except _UNREACHABLE:
                continue
            except RedisError:
                pass  # it answered (an error is an answer)
            self._unreachable = False

    # -- producing ---------------------------------------------------------------------

    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        encoded = encode(job, 1)
        try:
            if delay_s <= 0:
                await self._pipeline.command("XADD", self.keys.stream(job.queue), "*",
                                             "job", encoded, "attempt", 1)  # fmt: skip
            else:
                await self._pipeline.script(self._delay, [self.keys.delayed],
                                            [_ms(delay_s), member(job, encoded, 1)])  # fmt: skip
        except Exception as error:
            self._outcome(error)
            raise
        if self._unreachable:
            self._outcome(None)

    # -- consuming ---------------------------------------------------------------------

    async def dequeue(self) -> Delivery:
        self._waiting += 1
        try:
            while True:
                if self._closed.is_set():
                    raise QueueClosed
                if self._held:
                    return self._hand_out(self._held.popleft())
                self._slots = max(self._slots, len(self._unsettled) + self._waiting)
                fetching = self._fetching
                if fetching is None or fetching.done():
                    fetching = self._fetching = asyncio.ensure_future(self._fetch())
                    fetching.add_done_callback(_retrieve)
                await asyncio.wait({fetching, self._closing_future()},
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if fetching.cancelled():
                    raise QueueClosed  # `aclose` stopped the read
                if fetching.done():
                    try:
                        fetching.result()  # the read's error, to every caller that waited
                    except Exception as error:
                        self._outcome(error)
                        raise
                    if self._unreachable:
                        self._outcome(None)
        finally:
            self._waiting -= 1

    def _closing_future(self) -> asyncio.Future[None]:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
            if self._closed.is_set():
                self._closing.set_result(None)
        return self._closing

    def _hand_out(self, entry: Held) -> Delivery:
        receipt = f"{entry.stream} {entry.entry_id}"
        self._unsettled.add(receipt)
        return Delivery(job=entry.job, attempt=entry.attempt, receipt=receipt,
                        delivered_at=time.monotonic())  # fmt: skip

    def _hold(self, stream: str, entry_id: str, job: bytes | None, attempt: bytes | None,
              bad: list[Bad]) -> None:  # fmt: skip
        """A read entry into `_held`, or into `bad` when it holds no job (see `_bury`)."""
        entry = read_entry(stream, entry_id, job, attempt)
        if isinstance(entry, Bad):
            bad.append(entry)
        else:
            self._held.append(entry)

    async def _bury(self, bad: list[Bad]) -> None:
        """Dead-letter undecodable entries at once, with their raw text and the reason: a
        retry would decode them no better, and no consumer could run them."""
        at = datetime.now(UTC).isoformat()
        await asyncio.gather(*(
            self._pipeline.script(self._bury_script, [stream, self.keys.dead],
                                  [GROUP, entry_id, MAX_DEAD_LETTERS, raw, attempt,
                                   f"the job cannot be decoded: {reason}", at])
            for stream, entry_id, raw, attempt, reason in bad
        ))  # fmt: skip

    async def _fetch(self) -> None:
        """Read for the consumers' free slots: what is ready, else wait for it a while."""
        count = max(1, min(self.read_batch, self._slots - len(self._unsettled)))
        until_next = await self._take_ready(count)
        if self._held or self._closed.is_set():
            return
        block = BLOCK_MS if until_next < 0 else max(1, min(BLOCK_MS, until_next))
        await self._wait_for_entries(count, block)

    async def move_due(self) -> None:
        """See `Queue.move_due`: the read script with nothing to take and no lane read."""
        await self._read(
            keys=[self.keys.delayed, *self.keys.streams, self.keys.dead],
            args=[GROUP, self.consumer, 0, _MOVE_BATCH, PASS_OVER_LIMIT, 0, 0, "000",
                  datetime.now(UTC).isoformat(), MAX_DEAD_LETTERS],
        )  # fmt: skip

    async def _take_ready(self, count: int) -> int:
        """Up to `count` ready entries into `_held` (one script call); the milliseconds
        until the next delayed job is due, or -1."""
        for _ in range(2):
            await self._ensure_groups()
            reply: Any = await self._read(
                keys=[self.keys.delayed, *self.keys.streams, self.keys.dead],
                args=[GROUP, self.consumer, count, _MOVE_BATCH, PASS_OVER_LIMIT,
                      *self._passed_over, self._lane_mask, datetime.now(UTC).isoformat(),
                      MAX_DEAD_LETTERS],
            )  # fmt: skip
            if int(reply[0]) == 0:
                break
            self._groups = False  # Redis lost its data: make the groups again
        else:
            return -1
        self._passed_over = (int(reply[2]), int(reply[3]))
        streams = self.keys.streams
        bad: list[Bad] = []
        for i in range(4, len(reply), 4):
            lane, entry_id, job, attempt = reply[i : i + 4]
            self._hold(streams[int(lane) - 1], text(entry_id), job, attempt, bad)
        if bad:
            await self._bury(bad)
        return int(reply[1])

    async def _wait_for_entries(self, count: int, block_ms: int) -> None:
        """A blocking read of every stream (nothing was ready), up to `count` from the one
        that gets entries first."""
        reply: Any
        try:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(self._read_streams, ">"), count=count,
                block=block_ms,
            )  # fmt: skip
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._groups = False  # Redis lost its data: make the groups again
            return
        lanes = {stream: lane for lane, stream in enumerate(self.keys.streams)}
        bad: list[Bad] = []
        for stream, entries in sorted(reply or (), key=lambda item: lanes[text(item[0])]):
            for entry_id, fields in entries:
                self._hold(text(stream), text(entry_id), *entry_fields(fields), bad)
        self._passed_over = (0, 0)  # every lane was empty: none is owed a take
        if bad:
            await self._bury(bad)

    async def _ensure_groups(self) -> None:
        if self._groups:
            return
        for stream in self.keys.streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._groups = True

    # -- settling ----------------------------------------------------------------------

    async def ack(self, delivery: Delivery) -> None:
        stream, entry_id = _receipt(delivery)
        try:
            await self._pipeline.ack(stream, entry_id)
        except Exception as error:
            self._outcome(error)
            raise
        finally:
            self._unsettled.discard(delivery.receipt)

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        try:
            await self._again(delivery, delay_s)
        except Exception as error:
            self._outcome(error)
            raise
        finally:
            self._unsettled.discard(delivery.receipt)

    async def _again(self, delivery: Delivery, delay_s: float) -> bool:
        stream, entry_id = _receipt(delivery)
        job, attempt = delivery.job, delivery.attempt + 1
        encoded = encode(job, attempt)
        done = await self._pipeline.script(
            self._requeue, [stream, self.keys.delayed],
            [GROUP, entry_id, _ms(delay_s) if delay_s > 0 else 0, encoded, attempt,
             member(job, encoded, attempt)],
        )  # fmt: skip
        return bool(done)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        stream, entry_id = _receipt(delivery)
        try:
            await self._pipeline.script(
                self._bury_script, [stream, self.keys.dead],
                [GROUP, entry_id, MAX_DEAD_LETTERS, encode(delivery.job, delivery.attempt),
                 delivery.attempt, reason, datetime.now(UTC).isoformat()],
            )  # fmt: skip
        except Exception as error:
            self._outcome(error)
            raise
        finally:
            self._unsettled.discard(delivery.receipt)

    async def reclaim(self, idle_s: float) -> int:
        await self._ensure_groups()
        reclaimed = 0
        taken: set[str] = set()
        for stream in self.keys.streams:
            cursor = "0-0"
            while True:
                cursor_raw, entries, *_ = await self.redis.xautoclaim(
                    stream, GROUP, self.consumer, min_idle_time=int(idle_s * 1000),
                    start_id=cursor, count=_MOVE_BATCH,
                )  # fmt: skip
                again = []
                bad: list[Bad] = []
                for entry_id, fields in entries:
                    if fields is None:
                        continue  # deleted meanwhile (settled): nothing to give back
                    entry_id = text(entry_id)
                    taken.add(f"{stream} {entry_id}")
                    delivery = self._reclaimed(stream, entry_id, fields, bad)
                    if delivery is not None:
                        again.append(self._again(delivery, 0.0))
                reclaimed += sum(await asyncio.gather(*again))
                if bad:
                    await self._bury(bad)
                cursor = text(cursor_raw)
                if cursor == "0-0":
                    break
        if taken:  # read here but not handed out yet: those entries are withdrawn
            self._held = deque(e for e in self._held if f"{e.stream} {e.entry_id}" not in taken)
        return reclaimed

    @staticmethod
    def _reclaimed(
        stream: str, entry_id: str, fields: dict[Any, Any], bad: list[Bad]
    ) -> Delivery | None:
        """The delivery a reclaimed entry was, or None (into `bad`) if it holds no job."""
        entry = read_entry(stream, entry_id, *entry_fields(fields))
        if isinstance(entry, Bad):
            bad.append(entry)
            return None
        return Delivery(job=entry.job, attempt=entry.attempt, receipt=f"{stream} {entry_id}",
                        delivered_at=time.monotonic())  # fmt: skip

    # -- looking -----------------------------------------------------------------------

    async def depth(self) -> dict[str, int]:
        replies: list[Any] = []
        for again in (False, True):
            await self._ensure_groups()
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in self.keys.streams:
                    pipe.xlen(stream)
                    pipe.xpending(stream, GROUP)
                pipe.zcard(self.keys.delayed)
                pipe.xlen(self.keys.dead)
                try:
                    replies = await pipe.execute()
                    break
                except ResponseError as error:
                    if again or "NOGROUP" not in str(error):
                        raise
                    self._groups = False  # Redis lost its data: make the groups again
        counts: dict[str, int] = {}
        in_flight = 0
        for index, priority in enumerate(PRIORITY_ORDER):
            length, pending = replies[2 * index], replies[2 * index + 1]
            waiting = int(pending["pending"]) if pending else 0
            counts[priority.value] = int(length) - waiting
            in_flight += waiting
        counts["delayed"] = int(replies[-2])
        counts["in_flight"] = in_flight
        counts["dead"] = int(replies[-1])
        return counts

    async def oldest_age_s(self) -> dict[str, float]:
        """See `Queue.oldest_age_s`: the first entry after its group's last delivered one,
        whose id is the Redis time (ms) it entered its stream (a retry's entry is new when
        its backoff ends), against Redis's clock. Two pipelined round trips."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.time()
            for stream in self.keys.streams:
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
        seconds, micros = replies[0]
        now_ms = seconds * 1000 + micros // 1000
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, groups in zip(self.keys.streams, replies[1:], strict=True):
                # No stream or no group yet (Redis lost its data): every entry is ready.
                last = None
                if isinstance(groups, list):
                    last = next((text(group["last-delivered-id"]) for group in groups
                                 if text(group["name"]) == GROUP), None)  # fmt: skip
                pipe.xrange(stream, f"({last}" if last else "-", "+", count=1)
            firsts = await pipe.execute(raise_on_error=False)
        ages: dict[str, float] = {}
        for priority, entries in zip(PRIORITY_ORDER, firsts, strict=True):
            age = 0.0
            if isinstance(entries, list) and entries:
                added_ms = int(text(entries[0][0]).partition("-")[0])
                age = max(now_ms - added_ms, 0) / 1000
            ages[priority.value] = age
        return ages

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        entries: Any = await self.redis.xrevrange(self.keys.dead, count=limit)
        return [dead_letter_of(entry_id, fields) for entry_id, fields in entries]

    async def take_dead_letter(self, dead_id: str) -> DeadLetter | None:
        """See `Queue.take_dead_letter`: read and delete in one MULTI, so of concurrent
        takes only the one whose XDEL removed the entry returns it."""
        if not _ENTRY_ID.fullmatch(dead_id):
            return None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xrange(self.keys.dead, dead_id, dead_id)
            pipe.xdel(self.keys.dead, dead_id)
            entries, deleted = await pipe.execute()
        if not deleted or not entries:
            return None
        entry_id, fields = entries[0]
        return dead_letter_of(entry_id, fields)

    async def close(self) -> None:
        """Stop handing out jobs; the connection stays for settling (`aclose` ends it).

        Entries read for this process and not handed out go back to their stream at once,
        for another worker: each is queued again as a new entry with the same attempt
        (it was never delivered) and the old one acked, in one script (`REQUEUE`), so
        none is lost or doubled. The read in flight is waited for (up to `CLOSE_WAIT_S`)
        so that what it takes goes back too. With Redis away they stay pending to this
        consumer, and `reclaim` (the scheduler's, after the visibility timeout) gives
        them back later."""
        self._closed.set()
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(None)
        if self._closed_down is None:
            self._closed_down = asyncio.ensure_future(self._hand_back_held())
        await asyncio.shield(self._closed_down)

    async def _hand_back_held(self) -> None:
        fetching = self._fetching
        if fetching is not None and not fetching.done():
            await asyncio.wait({fetching}, timeout=CLOSE_WAIT_S)
        held, self._held = list(self._held), deque()
        with contextlib.suppress(RedisError, OSError):  # Redis away: pending, for `reclaim`
            await asyncio.gather(*(
                self._pipeline.script(self._requeue, [e.stream, self.keys.delayed],
                                      [GROUP, e.entry_id, 0, e.raw, e.attempt, b""])
                for e in held
            ))  # fmt: skip

    async def aclose(self) -> None:
        """Close, send what is pipelined, stop the read in flight and the connections."""
        await self.close()
        await self._pipeline.drain()
        if self._fetching is not None and not self._fetching.done():
            self._fetching.cancel()
            await asyncio.gather(self._fetching, return_exceptions=True)
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)
        await self.redis.aclose()


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a read's error seen: every caller waiting for it got it already, or none is."""
    if not future.cancelled():
        future.exception()


def _receipt(delivery: Delivery) -> tuple[str, str]:
    stream, _, entry_id = delivery.receipt.rpartition(" ")
    return stream, entry_id


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
