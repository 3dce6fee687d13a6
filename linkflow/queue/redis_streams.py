"""The job queue on Redis Streams: what workers on many machines share.

One stream per priority (`redis_keys.QueueKeys`), read through one consumer group:
an entry handed to a worker stays pending (in flight, in the group's pending list)
until the worker settles it, so a worker that vanishes loses nothing: `reclaim`
(`XAUTOCLAIM`) finds entries idle past a visibility timeout and queues them again.

How it keeps the `Queue` contract (`queue.protocol`):
- Priority: a read takes from high, then normal, then low (each stream read alone,
  the first that has entries wins, up to `read_batch` of them, handed out by this
  process before it reads again). Strict otherwise: a steady stream of high jobs
  delays low ones; the worker's concurrency, not the queue, keeps low jobs moving.
- Receipts: an entry id. Settling is a script that first `XACK`s the entry and acts
  only if that acknowledged it (it was still pending): a stale consumer's settle,
  after a reclaim or a second settle, changes nothing. A redelivery (nack, reclaim)
  is a new entry, so a new receipt, with `attempt` one more; the old entry is
  deleted. `XACK` then `XDEL` on ack: a settled job is gone from Redis.
- Delays: jobs wait in a sorted set scored by their due time in Redis's own clock
  (`TIME`, so producers' clocks do not matter); every read first moves the due ones
  to their stream, atomically (a script), so two workers never move one twice.
- Dead letters: a capped stream; the newest are listed first.
- Redis emptied (restarted without data): a read that finds its group gone makes it
  again; what was queued is the database's to recover (`ExecutionService.recover`).

A consumer waiting on empty streams blocks in `XREADGROUP` for at most
`BLOCK_MS` (and no longer than the next delayed job's due time), then looks again.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ResponseError

from linkflow.queue.delivery import DeadLetter, Delivery
from linkflow.queue.job import PRIORITY_ORDER, Job, Priority
from linkflow.queue.protocol import QueueClosed
from linkflow.queue.redis_keys import GROUP, QueueKeys

__all__ = ["BLOCK_MS", "MAX_CONNECTIONS", "MAX_DEAD_LETTERS", "RedisStreamsQueue"]

BLOCK_MS: Final = 100
"""Longest one blocking read waits before the consumer looks at the delayed jobs again."""
MAX_CONNECTIONS: Final = 64
"""Connections one process's queue opens to Redis at most (one per command in flight)."""
POOL_WAIT_S: Final = 10.0
"""How long a command waits for a free connection before it fails."""
MAX_DEAD_LETTERS: Final = 10_000
"""Dead letters kept (approximately: the stream is trimmed with `~`)."""
READ_BATCH: Final = 1
"""Entries one read takes from a stream, by default. More (`read_batch`) saves round
trips, but the rest of a read wait in this process for its next dequeues, whatever
their priority, while another worker may be idle: right for many short jobs (a
notification sender), wrong for executions that run for seconds."""
MOVE_EVERY_S: Final = 0.01
"""How often a busy consumer moves due delayed jobs (always before it blocks)."""
_MOVE_BATCH: Final = 100

_MOVE_DUE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local entry = cjson.decode(member)
  redis.call('XADD', KEYS[entry.p + 1], '*', 'job', entry.j, 'attempt', entry.a)
  redis.call('ZREM', KEYS[1], member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next[2] then return {#due, tonumber(next[2]) - now} end
return {#due, -1}
"""
"""KEYS: delayed, then the streams in priority order. Returns (moved, ms until the next
due job or -1)."""

_DELAY: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return 1
"""
"""KEYS: delayed. ARGV: delay ms, member."""

_REQUEUE: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local delay = tonumber(ARGV[3])
if delay <= 0 then
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[4], 'attempt', ARGV[5])
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + delay, ARGV[6])
end
return 1
"""
"""Nack and reclaim. KEYS: the entry's stream, delayed. ARGV: group, entry id, delay ms,
job, next attempt, delayed member."""

_BURY: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
           'job', ARGV[4], 'attempts', ARGV[5], 'reason', ARGV[6], 'at', ARGV[7])
return 1
"""
"""Dead-letter. KEYS: the entry's stream, dead. ARGV: group, entry id, cap, job, attempts,
reason, time."""


class RedisStreamsQueue:
    """A `Queue` on Redis Streams (see the module's doc)."""

    def __init__(
        self, redis: Redis, *, keys: QueueKeys | None = None, read_batch: int = READ_BATCH
    ) -> None:
        self.redis = redis
        self.keys = keys or QueueKeys()
        self.read_batch = read_batch
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._closed = asyncio.Event()
        self._groups = False
        self._moved_at = -MOVE_EVERY_S
        self._held: dict[Priority, list[Delivery]] = {priority: [] for priority in PRIORITY_ORDER}
        """Entries a blocking read returned beyond the one it needed: pending to this
        consumer already, handed out before anything newer of their priority."""
        self._move = redis.register_script(_MOVE_DUE)
        self._delay = redis.register_script(_DELAY)
        self._requeue = redis.register_script(_REQUEUE)
        self._bury = redis.register_script(_BURY)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "linkflow", connections: int = MAX_CONNECTIONS,
        read_batch: int = READ_BATCH,
    ) -> RedisStreamsQueue:  # fmt: skip
        """A queue with a pool of at most `connections`, which callers beyond it wait for
        (redis-py's default pool would fail them instead: a burst of webhook calls)."""
        pool = BlockingConnectionPool.from_url(url, max_connections=connections,
                                               timeout=POOL_WAIT_S)  # fmt: skip
        # `from_pool`: the client owns the pool, so `aclose` closes its connections too.
        return cls(Redis.from_pool(pool), keys=QueueKeys(prefix), read_batch=read_batch)

    # -- producing ---------------------------------------------------------------------

    async def enqueue(self, job: Job, *, delay_s: float = 0.0) -> None:
        encoded = _encode(job, 1)
        if delay_s <= 0:
            await self.redis.xadd(self.keys.stream(job.queue), {"job": encoded, "attempt": 1})
            return
        await self._delay(keys=[self.keys.delayed],
                          args=[_ms(delay_s), _member(job, encoded, 1)])  # fmt: skip

    # -- consuming ---------------------------------------------------------------------

    async def dequeue(self) -> Delivery:
        while True:
            if self._closed.is_set():
                raise QueueClosed
            held = self._take_held()
            if held is not None:
                return held
            await self._ensure_groups()
            until_next = await self._move_due()
            for priority in PRIORITY_ORDER:
                found = await self._read([self.keys.stream(priority)], block_ms=None)
                if found:
                    return self._keep_rest(found)
            until_next = await self._move_due(force=True)
            block = BLOCK_MS if until_next < 0 else max(1, min(BLOCK_MS, int(until_next)))
            found = await self._wait(block)
            if found:
                return self._keep_rest(found)

    def _take_held(self) -> Delivery | None:
        for priority in PRIORITY_ORDER:
            if self._held[priority]:
                return self._held[priority].pop(0)
        return None

    async def _move_due(self, *, force: bool = False) -> int:
        """Move the due delayed jobs to their streams, at most every `MOVE_EVERY_S` unless
        forced (before a blocking read); the milliseconds until the next is due, or -1."""
        now = time.monotonic()
        if not force and now - self._moved_at < MOVE_EVERY_S:
            return -1
        self._moved_at = now
        _, until_next = await self._move(
            keys=[self.keys.delayed, *self.keys.streams], args=[_MOVE_BATCH]
        )
        return int(until_next)

    def _keep_rest(self, found: list[Delivery]) -> Delivery:
        for delivery in found:
            self._held[delivery.job.queue].append(delivery)
        best = self._take_held()
        assert best is not None
        return best

    async def _wait(self, block_ms: int) -> list[Delivery]:
        """A blocking read of every stream, given up when the queue closes."""
        read = asyncio.ensure_future(self._read(list(self.keys.streams), block_ms=block_ms))
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not read.done():
            read.cancel()
            await asyncio.gather(read, return_exceptions=True)
            raise QueueClosed
        return read.result()

    async def _read(self, streams: Sequence[str], *, block_ms: int | None) -> list[Delivery]:
        reply: Any
        try:
            reply = await self.redis.xreadgroup(
                GROUP, self.consumer, dict.fromkeys(streams, ">"), count=self.read_batch,
                block=block_ms,
            )  # fmt: skip
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._groups = False  # Redis lost its data: make the groups again
            return []
        deliveries = []
        for stream, entries in reply or ():
            for entry_id, fields in entries:
                deliveries.append(_delivery(_text(stream), _text(entry_id), fields))
        return deliveries

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
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(stream, GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def nack(self, delivery: Delivery, *, delay_s: float) -> None:
        await self._again(delivery, delay_s)

    async def _again(self, delivery: Delivery, delay_s: float) -> bool:
        stream, entry_id = _receipt(delivery)
        job, attempt = delivery.job, delivery.attempt + 1
        encoded = _encode(job, attempt)
        done = await self._requeue(
            keys=[stream, self.keys.delayed],
            args=[GROUP, entry_id, _ms(delay_s) if delay_s > 0 else 0, encoded, attempt,
                  _member(job, encoded, attempt)],
        )  # fmt: skip
        return bool(done)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        stream, entry_id = _receipt(delivery)
        await self._bury(
            keys=[stream, self.keys.dead],
            args=[GROUP, entry_id, MAX_DEAD_LETTERS, _encode(delivery.job, delivery.attempt),
                  delivery.attempt, reason, datetime.now(UTC).isoformat()],
        )  # fmt: skip

    async def reclaim(self, idle_s: float) -> int:
        await self._ensure_groups()
        reclaimed = 0
        for stream in self.keys.streams:
            cursor = "0-0"
            while True:
                cursor_raw, entries, *_ = await self.redis.xautoclaim(
                    stream, GROUP, self.consumer, min_idle_time=int(idle_s * 1000),
                    start_id=cursor, count=_MOVE_BATCH,
                )  # fmt: skip
                for entry_id, fields in entries:
                    if fields is None:
                        continue  # deleted meanwhile (settled): nothing to give back
                    delivery = _delivery(stream, _text(entry_id), fields)
                    if await self._again(delivery, 0.0):
                        reclaimed += 1
                cursor = _text(cursor_raw)
                if cursor == "0-0":
                    break
        for held in self._held.values():
            held.clear()  # pending here, so reclaimed above: those deliveries are stale
        return reclaimed

    # -- looking -----------------------------------------------------------------------

    async def depth(self) -> dict[str, int]:
        await self._ensure_groups()
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.keys.streams:
                pipe.xlen(stream)
                pipe.xpending(stream, GROUP)
            pipe.zcard(self.keys.delayed)
            pipe.xlen(self.keys.dead)
            replies = await pipe.execute()
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

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        entries: Any = await self.redis.xrevrange(self.keys.dead, count=limit)
        letters = []
        for _, fields in entries:
            field = {_text(k): v for k, v in fields.items()}
            letters.append(DeadLetter(
                job=Job.from_json(orjson.loads(field["job"])), attempts=int(field["attempts"]),
                reason=_text(field["reason"]), at=datetime.fromisoformat(_text(field["at"])),
            ))  # fmt: skip
        return letters

    async def close(self) -> None:
        """Stop handing out jobs; the connection stays for settling (`aclose` ends it)."""
        self._closed.set()

    async def aclose(self) -> None:
        await self.close()
        await self.redis.aclose()


def _encode(job: Job, attempt: int) -> bytes:
    return orjson.dumps(job.to_json(attempts=attempt))


def _member(job: Job, encoded: bytes, attempt: int) -> bytes:
    """A delayed job's member: its stream (by priority index), attempt and envelope, and a
    nonce (two delays of one job are two members)."""
    return orjson.dumps({"p": PRIORITY_ORDER.index(job.queue) + 1, "a": attempt,
                         "j": encoded.decode(), "n": secrets.token_hex(4)})  # fmt: skip


def _delivery(stream: str, entry_id: str, fields: dict[Any, Any]) -> Delivery:
    field = {_text(k): v for k, v in fields.items()}
    job = Job.from_json(orjson.loads(field["job"]))
    return Delivery(job=job, attempt=int(field["attempt"]), receipt=f"{stream} {entry_id}",
                    delivered_at=time.monotonic())  # fmt: skip


def _receipt(delivery: Delivery) -> tuple[str, str]:
    stream, _, entry_id = delivery.receipt.rpartition(" ")
    return stream, entry_id


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
