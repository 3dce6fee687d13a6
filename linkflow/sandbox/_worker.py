"""The engine's handle on one worker process: send a request, read its response.

A request is two frames (control, payload) and so is a response (the result,
then the zygote's status, which says whether the result is whole or replaces
it with an error document); see `_child.py`.

A worker answers requests one at a time. Anything unexpected during a call
(no answer by the deadline, a closed pipe, a malformed frame, cancellation)
leaves the worker in an unknown state, so it is killed and must be replaced:
`alive` turns false and the pool disposes of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import struct

import orjson

from linkflow.sandbox._protection import Launch, read_hello, spawn

__all__ = ["Worker", "WorkerDied", "WorkerStuck"]

_HEADER = struct.Struct(">I")
MAX_RESPONSE_BYTES = (64 << 20) + (1 << 20)
"""The worker refuses results over 64 MiB; anything bigger is a broken worker."""
MAX_STATUS_BYTES = 64 << 10
"""A status is a short error document, far smaller than this."""
STOP_GRACE_S = 2.0
"""How long a worker may take to exit after its stdin closes before it is killed."""


class WorkerDied(Exception):
    """The worker's pipes closed or it wrote something that is not a frame."""


class WorkerStuck(Exception):
    """The worker did not answer by the deadline (its own timeout should have fired first)."""


class Worker:
    """One pre-forked worker process (a zygote inside the sandbox)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._broken = False

    @classmethod
    async def start(cls, launch: Launch) -> Worker:
        """Start a worker and wait for its hello; raises `RuntimeError` when it fails."""
        process = await spawn(launch)
        try:
            await read_hello(process)
        except BaseException:
            _kill_group(process)
            await process.wait()
            raise
        return cls(process)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return not self._broken and self._process.returncode is None

    async def call(self, control: bytes, payload: bytes, deadline_s: float) -> bytes:
        """Send one request, return the response document (the result, or the error).

        Raises `WorkerStuck` or `WorkerDied` (the worker is then killed); on
        cancellation the worker is killed too, since it is mid-request.
        """
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        try:
            async with asyncio.timeout(deadline_s):
                stdin.write(_HEADER.pack(len(control)) + control)
                stdin.write(_HEADER.pack(len(payload)) + payload)
                await stdin.drain()
                result = await _read_frame(stdout, MAX_RESPONSE_BYTES)
                status = await _read_frame(stdout, MAX_STATUS_BYTES)
        except TimeoutError:
            self.kill()
            raise WorkerStuck from None
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            self.kill()
            raise WorkerDied(_describe(error, self._process.returncode)) from None
        except BaseException:
            self.kill()
            raise
        try:
            complete = orjson.loads(status) == {"complete": True}
        except orjson.JSONDecodeError:
            self.kill()
            raise WorkerDied("the worker sent a status that is not JSON") from None
        return result if complete else status

    def kill(self) -> None:
        """Kill the worker and everything it started (synchronous; `dispose` reaps it)."""
        self._broken = True
        _kill_group(self._process)

    async def dispose(self) -> None:
        """Kill the worker and wait until it is gone."""
        self.kill()
        await self._process.wait()

    async def stop(self) -> None:
        """Ask the worker to exit (end of its input); kill it if it takes too long."""
        self._broken = True
        if self._process.returncode is None and self._process.stdin is not None:
            self._process.stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_GRACE_S):
                    await self._process.wait()
        await self.dispose()


async def _read_frame(stream: asyncio.StreamReader, limit: int) -> bytes:
    (size,) = _HEADER.unpack(await stream.readexactly(_HEADER.size))
    if size > limit:
        raise WorkerDied(f"the worker sent a {size}-byte frame")
    return await stream.readexactly(size)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    # The worker leads its own session; bwrap takes the sandbox's PID namespace with it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()


def _describe(error: BaseException, returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"the worker was killed by {signal.Signals(-returncode).name}"
    if returncode is not None:
        return f"the worker exited with status {returncode}"
    return f"the worker's pipe closed ({type(error).__name__})"
