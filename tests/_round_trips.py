"""A TCP proxy on loopback that counts the round trips clients make to PostgreSQL.

A round trip is a wait: the client sends, then waits for the server to be ready
again. In PostgreSQL's wire protocol a client waits after a simple ``Query``
('Q') message, after a ``Sync`` ('S'), which ends each extended-protocol
exchange (asyncpg sends one after every statement; psycopg in pipeline mode one per
pipeline sync, whatever number of statements came before it), and after a ``Flush``
('H'), which psycopg sends when it needs a pipelined read's rows before the sync.
A client that waits has sent everything it had first, so a wait is counted for
each burst of bytes that ends with one of those three; a pipelining client's
bursts in between end with other messages (and the flush psycopg adds to its syncs
is in the same burst), so what it sends without waiting counts once. So the proxy parses
what clients send, message by message, and counts those two; counting TCP turns
instead would count a pipelining client's every write, since the server streams
results back before the sync.

It runs its own event loop in a thread, so a synchronous test (or a benchmark)
can put it between a `linkflow serve` process and PostgreSQL, read `waits`, and
`reset()` between phases.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RoundTripProxy", "round_trip_proxy"]

_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104
_WAITS = frozenset(b"QSH")


class _ClientStream:
    """Splits one client's bytes into protocol messages and counts its waits."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.started = False
        """Past the startup message (messages carry a type byte from then on)."""

    def feed(self, data: bytes) -> int:
        """1 when `data` ends with a message the client waits after, else 0."""
        self.buffer += data
        last = 0
        buffer = self.buffer
        while True:
            if not self.started:  # length, then the request code or protocol version
                if len(buffer) < 8:
                    break
                length, code = struct.unpack_from("!ii", buffer)
                if len(buffer) < length:
                    break
                del buffer[:length]
                # An SSL or GSS request is answered with one byte; the startup follows.
                self.started = code not in (_SSL_REQUEST, _GSS_REQUEST)
                continue
            if len(buffer) < 5:
                break
            kind = buffer[0]
            (length,) = struct.unpack_from("!i", buffer, 1)
            if len(buffer) < 1 + length:
                break
            del buffer[: 1 + length]
            last = kind
        return 1 if last in _WAITS and not buffer else 0


class RoundTripProxy:
    """Forwards 127.0.0.1:`port` to PostgreSQL on `target_port`, counting waits."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._waits = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="round-trip-proxy", daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waits(self) -> int:
        with self._lock:
            return self._waits

    def reset(self) -> None:
        with self._lock:
            self._waits = 0

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the round-trip proxy did not start")

    def stop(self) -> None:
        async def cancel() -> None:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._loop.stop()

        self._loop.call_soon_threadsafe(lambda: self._loop.create_task(cancel()))
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._loop.create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return
        stream = _ClientStream()

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if waits := stream.feed(data):
                    with self._lock:
                        self._waits += waits
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                client_out.write(data)
                await client_out.drain()
            client_out.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            server_out.close()
            client_out.close()


@contextmanager
def round_trip_proxy(target_port: int) -> Iterator[RoundTripProxy]:
    proxy = RoundTripProxy(target_port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
