"""Commands of one event-loop iteration, sent to Redis as one pipeline (`Pipeliner`).

The Redis queue's enqueues and settles go through it: many callers at once (a producer's
burst, a worker's settling tasks) cost one round trip, and each caller still returns only
once Redis answered its own command, with that reply or that error.

Invariants:
- One pipeline in flight at a time; what callers add meanwhile goes in the next one
  (group commit: the busier, the bigger the batch, never a wait when idle).
- Commands run in the order they were added. Acks added one after another are merged:
  one `XACK` and one `XDEL` per stream carry all their entry ids (both idempotent, so a
  stale id among them changes nothing).
- A script is sent by its SHA (`EVALSHA`); if Redis forgot the scripts (restarted), they
  are loaded and the commands that found none are sent again: those did not run.
- The pipeline is not a transaction: each command (each script) is atomic on its own,
  as it would be sent alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from linkflow.queue.redis_keys import GROUP

__all__ = ["Pipeliner"]


@dataclass(slots=True)
class _Command:
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Acks:
    """Acks added one after another: sent as one `XACK` and one `XDEL` per stream."""

    entry_ids: dict[str, list[str]] = field(default_factory=dict)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        for stream, entry_ids in self.entry_ids.items():
            commands += [("XACK", stream, GROUP, *entry_ids), ("XDEL", stream, *entry_ids)]
        return commands


class Pipeliner:
    """Coalesces commands into one pipeline per loop iteration (see the module's doc)."""

    def __init__(self, redis: Redis, scripts: Iterable[AsyncScript]) -> None:
        self.redis = redis
        self._scripts = tuple(scripts)
        self._batch: list[_Command | _Acks] = []
        self._flusher: asyncio.Task[None] | None = None

    async def command(self, *args: Any) -> Any:
        """Send `args` (`"XADD", key, ...`) in the next pipeline; its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append(_Command(args, future))
        self._start()
        return await future

    async def script(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        """Run `script` in the next pipeline; its reply."""
        return await self.command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def ack(self, stream: str, entry_id: str) -> None:
        """`XACK` then `XDEL` the entry, merged with the acks added just before it (a command
        between them keeps its place: what a caller issued first runs first)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        last = self._batch[-1] if self._batch else None
        if not isinstance(last, _Acks):
            last = _Acks()
            self._batch.append(last)
        last.entry_ids.setdefault(stream, []).append(entry_id)
        last.futures.append(future)
        self._start()
        await future

    async def drain(self) -> None:
        """Wait until everything added so far was sent and answered."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    def _start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="redis-pipeline")

    async def _flush(self) -> None:
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                await self._send(batch)
        finally:
            self._flusher = None

    async def _send(self, batch: list[_Command | _Acks]) -> None:
        commands = [
            command for item in batch
            for command in ((item.args,) if isinstance(item, _Command) else item.commands)
        ]  # fmt: skip
        try:
            replies = await self._execute(commands)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                for script in self._scripts:
                    await self.redis.script_load(script.script)
                again = await self._execute([commands[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except Exception as error:  # noqa: BLE001 - handed to every caller of the batch
            replies = [error] * len(commands)
        at = 0
        for item in batch:
            if isinstance(item, _Command):
                _settle(item.future, replies[at])
                at += 1
                continue
            count = 2 * len(item.entry_ids)
            failed = [reply for reply in replies[at : at + count] if isinstance(reply, Exception)]
            at += count
            for future in item.futures:
                _settle(future, failed[0] if failed else None)

    async def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for args in commands:
                pipe.execute_command(*args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies


def _settle(future: asyncio.Future[Any], reply: Any) -> None:
    """Hand `reply` (a reply, or the command's error) to its caller, if still waiting."""
    if future.done():
        return  # its caller was cancelled
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)
