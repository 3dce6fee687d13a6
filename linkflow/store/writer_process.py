"""The group-commit writer's batches in a process of its own, on either backend.

Turning a batch's values into the database's (ids, times, JSON) and running the
statements is most of a busy process's work after HTTP and the engine; in a
thread it competes with them for the one interpreter lock. In a child process
it runs on another core: the parent only encodes the batch's ops as JSON (plain
tuples, by orjson: C-fast) and waits for the reply, which comes once the batch
is committed. The child writes with `SQLiteBatches` or `PostgresBatches`
(pipeline mode), by the URL's backend, exactly as the writer's thread would.

Frames on the child's stdin/stdout (pipes, or a socket pair under uvloop): a
4-byte big-endian length, then JSON. Request: a list of op tuples (see
`_encode`); ids arrive as text, times as ISO 8601 text, enums as their values,
which the writer's bind processors take as they take the objects (see
`store.bulk.processor_for`). Not pickle: pickling an id or an aware time calls
back into Python for each, which cost the parent four times what orjson does for
a whole batch. Reply: ``["ok", [refused positions], [lost leases], [notes], [limited]]`` or
``["error", message]``; an empty request asks the child to stop. The child runs
in a session of its own and ignores SIGINT/SIGTERM (the parent must still flush
through it during its graceful shutdown, so stopping it is the parent's call),
and exits when its stdin closes, so a parent killed outright never leaves it
behind. If the child dies, the batch in flight fails (its callers retry, and the
history's idempotent appends make a retry safe) and the next batch starts a new
child.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
import socket
import struct
import sys
import uuid
from collections import deque
from collections.abc import Sequence
from typing import IO, Any, Final

import orjson
from sqlalchemy.engine import make_url

from linkflow.store.batch import Outcome, Quota, WriteOp
from linkflow.store.pg_batches import PostgresBatches
from linkflow.store.repositories.events import NewEvent
from linkflow.store.sqlite_batches import SQLiteBatches

__all__ = ["WriterProcess", "WriterProcessFailed", "batches_for"]

_HEADER: Final = struct.Struct(">I")
START_TIMEOUT_S: Final = 30.0
CHANNEL_BYTES: Final = 1024 * 1024


class WriterProcessFailed(RuntimeError):
    """A batch could not be written by the writer process (it reported an error, or
    died); nothing of the batch may be assumed stored."""


def _encode(op: WriteOp) -> tuple[Any, ...]:
    event = op.event
    return (
        None if event is None else (event.execution_id, event.seq, event.type, event.node_id,
                                    event.data, event.created_at),
        op.execution_id, op.values, op.new_execution, op.replace_nodes_of, op.node_rows,
        op.webhook_called, op.lease, op.lease_action,
        None if op.quota is None else tuple(op.quota),
    )  # fmt: skip


def _id_text(value: Any) -> str:
    """What orjson does not take itself: ids of a driver's own UUID class (asyncpg's
    subclasses `uuid.UUID`; orjson takes the exact class only)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def batches_for(url: str, shard: int = 0) -> SQLiteBatches | PostgresBatches:
    """The batches of `url`'s backend, on a connection of their own (the writer's
    `shard`-th; SQLite has one)."""
    if make_url(url).get_backend_name() == "postgresql":
        return PostgresBatches(url, shard)
    return SQLiteBatches(url)


def _decode(item: tuple[Any, ...]) -> WriteOp:
    """An op as the child receives it: ids and times stay text (see the module's doc)."""
    (event, execution_id, values, new_execution, replace_nodes_of, node_rows, webhook, lease,
     lease_action, quota) = item  # fmt: skip
    return WriteOp(
        event=None if event is None else NewEvent(*event), execution_id=execution_id,
        values=values, new_execution=new_execution, replace_nodes_of=replace_nodes_of,
        node_rows=node_rows, webhook_called=webhook, lease=lease, lease_action=lease_action,
        quota=None if quota is None else Quota(*quota),
    )  # fmt: skip


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    payload = stream.read(length)
    if len(payload) < length:
        return None
    return payload


class WriterProcess:
    """The parent's side, on its event loop: `write` sends a batch to the child and
    waits for its reply. Batches may be sent while earlier ones are being written: the
    child takes them in order, and replies in order."""

    def __init__(self, url: str, shard: int = 0) -> None:
        self.url = url
        self.shard = shard
        self._child: asyncio.subprocess.Process | None = None
        self._replies: deque[asyncio.Future[Outcome]] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    async def write(self, batch: Sequence[WriteOp]) -> Outcome:
        child = await self._running()
        assert child.stdin is not None
        payload = orjson.dumps([_encode(op) for op in batch], default=_id_text)
        reply: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._replies.append(reply)
        try:
            child.stdin.write(_HEADER.pack(len(payload)) + payload)
            await child.stdin.drain()
        except OSError as error:
            self._lost(error)
        return await reply

    async def close(self) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        assert child.stdin is not None
        try:
            child.stdin.write(_HEADER.pack(0))
            await child.stdin.drain()
            child.stdin.close()
            await asyncio.wait_for(child.wait(), timeout=10)
        except (OSError, TimeoutError):
            child.kill()
            await child.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None

    async def _running(self) -> asyncio.subprocess.Process:
        async with self._starting:
            if self._child is not None and self._child.returncode is None:
                return self._child
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "linkflow.store.writer_process", self.url, str(self.shard),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                start_new_session=True,  # out of the terminal's reach: Ctrl-C is the parent's
            )  # fmt: skip
            assert child.stdout is not None
            _widen_pipe(child.stdin)
            try:
                ready = await asyncio.wait_for(_read_frame(child.stdout), START_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError):
                ready = None
            if ready != b"ready":
                child.kill()
                await child.wait()
                raise WriterProcessFailed("the writer process did not start")
            self._child = child
            self._reader = asyncio.create_task(self._read(child), name="writer-process-replies")
            return child

    async def _read(self, child: asyncio.subprocess.Process) -> None:
        assert child.stdout is not None
        while True:
            try:
                frame = await _read_frame(child.stdout)
            except (asyncio.IncompleteReadError, OSError) as error:
                if self._child is child:
                    self._child = None
                    child.kill()
                self._lost(error)
                return
            status, *value = orjson.loads(frame)
            reply = self._replies.popleft()
            if status == "ok":
                refused, lost, notes, limited = value
                reply.set_result(Outcome(frozenset(refused), frozenset(lost), tuple(notes),
                                         limited=tuple(tuple(one) for one in limited)))  # fmt: skip
            else:
                reply.set_exception(WriterProcessFailed(str(value[0])))

    def _lost(self, cause: BaseException) -> None:
        """The child is gone: every batch sent and not answered fails."""
        while self._replies:
            reply = self._replies.popleft()
            if not reply.done():
                error = WriterProcessFailed("the writer process died")
                error.__cause__ = cause
                reply.set_exception(error)


def _widen_pipe(stream: asyncio.StreamWriter | None) -> None:
    """Let a whole batch fit in the channel, so the parent's loop hands it over in one
    write instead of feeding it as the child drains it: a pipe (asyncio) grows to 1 MiB,
    a socket pair (uvloop's) gets a 1 MiB send buffer (as far as the system allows)."""
    if stream is None:
        return
    pipe = stream.get_extra_info("pipe")
    sock = stream.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):  # over the system's limit: as it is
        if pipe is not None and hasattr(fcntl, "F_SETPIPE_SZ"):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, CHANNEL_BYTES)
        elif sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BYTES)


async def _read_frame(stream: asyncio.StreamReader) -> bytes:
    (length,) = _HEADER.unpack(await stream.readexactly(_HEADER.size))
    return await stream.readexactly(length)


def _serve(url: str, shard: int, requests: IO[bytes], replies: IO[bytes]) -> None:
    """The child's loop: one batch per request, in one transaction, until stopped."""
    batches = batches_for(url, shard)
    _send(replies, b"ready")
    while (payload := _receive(requests)) is not None and payload:
        batch = [_decode(item) for item in orjson.loads(payload)]
        try:
            outcome = batches.write(batch)
        except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
            _send(replies, orjson.dumps(("error", f"{type(error).__name__}: {error}")))
        else:
            _send(replies, orjson.dumps(
                ("ok", sorted(outcome.refused), sorted(outcome.lost), outcome.notes,
                 outcome.limited)
            ))  # fmt: skip
    batches.close()


def main() -> None:
    # Nearly everything here lives for one batch: collect rarely, and never walk what
    # the imports left behind.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Replies get a private copy of stdout; whatever else would print there (a library's
    # warning) goes to stderr instead of into the frames.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, sys.stdin.buffer,
           replies)  # fmt: skip


if __name__ == "__main__":
    main()
