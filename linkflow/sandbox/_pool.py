"""The pre-forked worker pool: runs code nodes' Python outside the engine's process.

`CodePool` implements the SDK's `CodeRunner`. It starts lazily (on the first
`run`, or an explicit `start()`): it probes the isolation available, logs the
protections in force, and starts `workers` warm workers. Each request takes a
free worker (requests queue for one; concurrency is the number of workers),
sends it the code and the items as JSON, and turns its answer into a
`CodeResult` or a `NodeError`.

Tenants: a worker serves requests of any workspace, one at a time, but no
request runs where another ran: each runs in a process forked for it alone
from the worker's zygote, which never holds a request's data (see
`_child.py`), and which exits after its one request.

Errors: the code's own failures (an exception, a syntax error, a result that
is not JSON, a limit it hit) are `NodeError(retryable=False)`; a worker that
crashed or stopped answering is killed, replaced in the background, and its
request fails with `NodeError(retryable=True)`. Nothing else escapes `run`,
except cancellation, which kills the worker mid-request and propagates.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson

from linkflow.nodes.sdk import CodeMode, CodeRequest, CodeResult, NodeError
from linkflow.observability.logging import get_logger
from linkflow.sandbox._protection import (
    Launch,
    Protections,
    SandboxMode,
    bubblewrap_launch,
    find_bubblewrap,
    probe,
    unsandboxed_launch,
)
from linkflow.sandbox._seccomp import SeccompUnavailable
from linkflow.sandbox._worker import Worker, WorkerDied, WorkerStuck

__all__ = ["CodePool"]

GRACE_S = 5.0
"""Beyond the code's timeout, how long the worker may take to report it before it is killed."""
PRINTED_LINES_IN_ERRORS = 20
"""How many of the last printed lines an error's description repeats."""

_log = get_logger("linkflow.sandbox")


class CodePool:
    """Pre-forked sandboxed Python workers; a `CodeRunner`.

    `timeout_s` is the longest a request may run (a request may ask for less);
    `memory_mb` is each request's address-space limit. `hidden_paths` are paths
    the start-up probe checks the code cannot see (the data dir, the project).
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
        sandbox: SandboxMode = SandboxMode.AUTO,
        allow_unsandboxed: bool = False,
        hidden_paths: Sequence[Path] = (),
        bwrap: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._size = workers
        self._timeout_s = timeout_s
        self._memory_mb = memory_mb
        self._mode = SandboxMode(sandbox)
        self._allow_unsandboxed = allow_unsandboxed
        self._hidden_paths = tuple(hidden_paths)
        self._bwrap = bwrap
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._launch: Launch | None = None
        self._refusal: str | None = None
        self._protections: Protections | None = None
        self._idle: asyncio.Queue[Worker | None] = asyncio.Queue()
        self._busy: set[Worker] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def protections(self) -> Protections | None:
        """What the probe verified; None before `start()` or when code is refused."""
        return self._protections

    @property
    def refusal(self) -> str | None:
        """Why code cannot run here (no usable sandbox and none allowed), else None."""
        return self._refusal

    async def start(self) -> Protections | None:
        """Probe the isolation, log it, start the workers. Idempotent."""
        async with self._lock:
            if self._started or self._closed:
                return self._protections
            launch, protections, refusal = await self._choose()
            self._started = True
            if refusal is not None or launch is None:
                self._refusal = refusal
                _log.error("code_sandbox.refused", reason=refusal)
                return None
            self._launch, self._protections = launch, protections
            if protections is not None and protections.sandboxed:
                _log.info("code_sandbox.protections", **protections.as_fields())
            elif protections is not None:
                _log.warning("code_sandbox.unsandboxed", **protections.as_fields())
            started = await asyncio.gather(
                *(Worker.start(launch) for _ in range(self._size)), return_exceptions=True
            )
            for worker in started:
                if isinstance(worker, BaseException):
                    _log.warning("code_sandbox.worker_failed", error=str(worker))
                    self._idle.put_nowait(None)
                else:
                    self._idle.put_nowait(worker)
            return protections

    async def _choose(self) -> tuple[Launch | None, Protections | None, str | None]:
        """The launch command to use and its probed protections, or why code may not run."""
        if self._mode is SandboxMode.NONE:
            return await _unsandboxed(self._hidden_paths)
        bwrap = self._bwrap or find_bubblewrap()
        if bwrap is None:
            reason = "bubblewrap (bwrap) is not installed"
        else:
            try:
                launch, protections, problem = await _probed(
                    bubblewrap_launch(bwrap, self._hidden_paths)
                )
            except SeccompUnavailable as error:
                launch, protections, problem = None, None, str(error)
            if problem is None:
                return launch, protections, None
            reason = f"bubblewrap does not work here ({problem})"
        if self._mode is SandboxMode.AUTO and self._allow_unsandboxed:
            _log.warning("code_sandbox.fallback", reason=reason)
            return await _unsandboxed(self._hidden_paths)
        if self._mode is SandboxMode.BUBBLEWRAP:
            return None, None, (
                f"code nodes cannot run: {reason}, and LINKFLOW_CODE_SANDBOX is 'bubblewrap'"
            )
        return None, None, (
            f"code nodes cannot run: {reason}. Install bubblewrap, or set "
            "LINKFLOW_CODE_ALLOW_UNSANDBOXED=true to run code with resource limits only"
        )

    async def run(self, request: CodeRequest) -> CodeResult:
        """Run the request's code in a free worker; raises `NodeError` on any failure."""
        if self._closed:
            raise NodeError("the code runner is closed", retryable=True)
        if not self._started:
            await self.start()
        if self._refusal is not None:
            raise NodeError(self._refusal)
        timeout_s = self._timeout_for(request)
        control, payload = self._encode(request, timeout_s)
        worker = await self._acquire()
        try:
            data = await worker.call(control, payload, timeout_s + GRACE_S)
        except WorkerStuck:
            raise NodeError(f"the code timed out after {timeout_s:g} s") from None
        except WorkerDied as error:
            raise NodeError(f"the code sandbox crashed: {error}", retryable=True) from None
        finally:
            self._release(worker)
        return _decode(data)

    def _timeout_for(self, request: CodeRequest) -> float:
        requested = request.timeout_s
        if requested is None:
            return self._timeout_s
        if not requested > 0:  # also refuses NaN
            raise NodeError("timeout_s must be a positive number of seconds")
        return min(requested, self._timeout_s)

    def _encode(self, request: CodeRequest, timeout_s: float) -> tuple[bytes, bytes]:
        """The control frame (limits only: the zygote reads it) and the payload (the
        code and the items: only the request process reads it)."""
        limits = {"timeout_s": timeout_s, "cpu_s": math.ceil(timeout_s) + 1,
                  "memory_mb": self._memory_mb}  # fmt: skip
        payload = {"code": request.code, "mode": CodeMode(request.mode).value,
                   "items": list(request.items), **limits}  # fmt: skip
        try:
            return orjson.dumps(limits), orjson.dumps(payload)
        except TypeError as error:
            raise NodeError(f"the items could not be passed to the code: {error}") from None

    async def _acquire(self) -> Worker:
        if self._closed:
            raise NodeError("the code runner is closed", retryable=True)
        worker = await self._idle.get()
        if self._closed:
            self._idle.put_nowait(worker)  # wakes the next waiter, which fails the same way
            raise NodeError("the code runner is closed", retryable=True)
        if worker is not None and worker.alive:
            self._busy.add(worker)
            return worker
        if worker is not None:
            self._track(worker.dispose())
        assert self._launch is not None
        try:
            worker = await Worker.start(self._launch)
        except BaseException as error:
            self._idle.put_nowait(None)
            if isinstance(error, RuntimeError | OSError):
                message = f"the code sandbox did not start: {error}"
                raise NodeError(message, retryable=True) from None
            raise
        self._busy.add(worker)
        return worker

    def _release(self, worker: Worker) -> None:
        self._busy.discard(worker)
        if self._closed:
            if worker.alive:  # close() disposed of the workers busy at the time
                self._track(worker.dispose())
        elif worker.alive:
            self._idle.put_nowait(worker)
        else:
            self._track(self._replace(worker))

    async def _replace(self, old: Worker) -> None:
        """Reap a killed worker and start its successor, keeping the pool warm."""
        await old.dispose()
        assert self._launch is not None
        try:
            new: Worker | None = await Worker.start(self._launch)
        except (RuntimeError, OSError) as error:
            _log.warning("code_sandbox.worker_failed", error=str(error))
            new = None
        if self._closed:
            if new is not None:
                await new.stop()
            return
        self._idle.put_nowait(new)

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop every worker; requests in flight fail, later ones are refused."""
        self._closed = True
        stopping = [worker.dispose() for worker in self._busy]
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            if worker is not None:
                stopping.append(worker.stop())
        self._idle.put_nowait(None)  # wakes requests waiting for a worker
        await asyncio.gather(*stopping)
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


async def _unsandboxed(
    hidden_paths: Sequence[Path],
) -> tuple[Launch | None, Protections | None, str | None]:
    launch, protections, problem = await _probed(unsandboxed_launch(hidden_paths))
    if problem is not None:
        return None, None, f"code nodes cannot run: the unsandboxed worker failed ({problem})"
    return launch, protections, None


async def _probed(launch: Launch) -> tuple[Launch | None, Protections | None, str | None]:
    try:
        return launch, await probe(launch), None
    except (RuntimeError, OSError) as error:
        return None, None, str(error)


def _decode(data: bytes) -> CodeResult:
    try:
        response = orjson.loads(data)
    except orjson.JSONDecodeError:
        response = None
    if not isinstance(response, dict):
        raise NodeError("the code's result could not be read")
    logs = tuple(str(line) for line in response.get("logs") or ())
    if response.get("ok") is True:
        return CodeResult(value=response.get("value"), logs=logs)
    error = response.get("error")
    error = error if isinstance(error, dict) else {}
    index = error.get("item_index")
    description = None
    if logs:
        description = "printed before the error:\n" + "\n".join(logs[-PRINTED_LINES_IN_ERRORS:])
    raise NodeError(
        str(error.get("message") or "the code failed"),
        retryable=False,
        item_index=index if isinstance(index, int) else None,
        description=description,
    )
