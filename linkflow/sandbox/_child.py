"""The sandboxed side of the code runner: a zygote that forks one process per request.

One file, because the pool starts it as one script, with no package around it.

The pool starts this file as `python -I -S <this file> <config json>`, under
bubblewrap (where it alone is mounted, at /opt/linkflow/child.py) or bare, in
the unsandboxed mode, so it imports nothing but the standard library: the
project's site-packages are not even mounted.

Protocol: frames of a 4-byte big-endian length and a body. Requests arrive on
fd 0, responses leave on fd 1. The zygote first writes a hello frame
(`{"ready": true, "checks": {...}}`) and exits when fd 0 reaches its end. A
request is two frames: a control frame (`timeout_s`, `cpu_s`, `memory_mb`:
no user data) and the payload (the code and the items, as JSON). A response
is two frames too: the request process's result (empty when it produced
none), then a status frame from the zygote: `{"complete": true}` when the
result is whole, else the error document (`{"ok": false, "error": ...}`)
that replaces it.

Why a zygote: the zygote never runs user code, and never holds user data.
For each request it forks a process that lowers its own limits (no new
processes or threads, address space, CPU time, file size), runs the code in
fresh globals, writes its result into a pipe and exits. So requests never
see each other's state (a patched module, a file in /tmp, a leftover thread),
the zygote keeps the right to fork, and a request that hits a limit costs one
process, not the warm worker. The zygote enforces the wall-clock timeout
itself and kills the process; the pool kills the whole worker only when the
zygote itself stops answering. Each process is forked ahead of its request
(a "spare", warmed up by running trivial code), so that forking is not on the
request's path.

No user data in the zygote (the invariant that keeps tenants apart): every
request process is a copy of the zygote's memory, freed buffers included, so
whatever the zygote ever read would be readable by every later request, of
whichever workspace. So the payload and the result never pass through the
zygote's memory: `os.splice` moves them between pipes inside the kernel (the
host's pipe to the request process's, the request process's to the host's),
and the work directory is emptied by a throwaway process forked for it (file
names are the code's data too). The zygote reads only the control frame and
the result's length.

Privileges: when started as root the zygote drops to `drop_uid`/`drop_gid`
(65534, nobody) before anything else, because the kernel never applies
RLIMIT_NPROC to uid 0; it then marks itself non-dumpable, so the request
process (same uid) cannot ptrace it, and sets no_new_privs. Under bubblewrap
a seccomp filter (see `_seccomp.py`) is in force from the zygote's start.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import json
import math
import os
import resource
import select
import shutil
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from typing import Any

_HEADER = struct.Struct(">I")
_MAX_REQUEST_BYTES = 1 << 30
_MAX_RESULT_BYTES = 64 << 20
"""A result larger than this is refused: the engine keeps node outputs in memory."""
_MAX_LOG_CHARS = 64 << 10
"""Printed output beyond this is dropped (one line says how much)."""
_MAX_OPEN_FILES = 64
_MAX_FILE_BYTES = 16 << 20
_INT_RANGE = (-(1 << 63), (1 << 64) - 1)
"""Integers the engine's JSON codec (orjson) keeps exact."""
_MAX_DEPTH = 200
"""Deeper results are refused (a list that contains itself is infinitely deep)."""
_FILENAME = "<code>"
_PRELOAD_WHEN_DROPPING_ROOT = (
    "base64", "collections", "copy", "datetime", "decimal", "functools", "hashlib",
    "itertools", "operator", "random", "re", "socket", "statistics", "string", "textwrap",
    "unicodedata", "urllib.parse", "uuid", "zoneinfo",
)  # fmt: skip
"""Imported before dropping root when the interpreter is not mounted for the sandbox's uid
(the unsandboxed mode, with an interpreter under /root): afterwards nothing else imports.

Not preloaded otherwise: every module loaded in the zygote makes each fork slower
(about 0.6 ms for these), which costs every request more than an import costs the few
that need it."""
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWUSER = 0x10000000
_NO_PROCESSES_HINT = "; code nodes may not start processes or threads"
_SPLICE_CHUNK = 1 << 20
_PADDING = bytes(64 << 10)
"""Fills the rest of a result cut short (the zygote cannot take back what it passed on)."""


# --- frames -------------------------------------------------------------------------------


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> bytes | None:
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_REQUEST_BYTES:
        raise ValueError("request frame too large")
    return _read_exact(fd, size)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_frame(fd: int, body: bytes) -> None:
    _write_all(fd, _HEADER.pack(len(body)) + body)


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_encode = _ENCODER.encode  # bound now: code that patches `json` only spoils its own result


def _dumps(value: Any) -> bytes:
    return _encode(value).encode()


# --- start-up -----------------------------------------------------------------------------


_libc: Any = None


def _c_library() -> Any:
    """libc through ctypes, loaded once per process; raises `OSError` or `ImportError`."""
    global _libc  # one handle on libc per process
    if _libc is None:
        import ctypes  # here: only `_start` and request processes need it

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _prctl(option: int, value: int) -> bool:
    try:
        return int(_c_library().prctl(option, value, 0, 0, 0)) == 0
    except (ImportError, OSError, AttributeError):
        return False


def _drop_privileges(config: dict[str, Any]) -> None:
    uid, gid = config.get("drop_uid"), config.get("drop_gid")
    if os.geteuid() != 0 or uid is None or gid is None:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def _start(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Preload, drop privileges, harden; return the work directory and the self-checks."""
    _prctl(_PR_SET_DUMPABLE, 1)  # loads ctypes while it can still be read
    for name in _PRELOAD_WHEN_DROPPING_ROOT if config.get("preload") else ():
        with contextlib.suppress(ImportError):
            __import__(name)
    _drop_privileges(config)
    no_new_privs = _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    non_dumpable = _prctl(_PR_SET_DUMPABLE, 0)
    os.environ.clear()  # noqa: TID251 - bwrap's --setenv (LD_LIBRARY_PATH) must not reach code
    workdir = config.get("workdir") or tempfile.mkdtemp(prefix="linkflow-code-")
    os.chdir(workdir)
    checks = {
        "uid": os.getuid(),
        "environment_empty": not os.environ,  # noqa: TID251 - a self-check
        "no_new_privs": no_new_privs,
        "non_dumpable": non_dumpable,
        "visible_paths": [path for path in config.get("hidden_paths", ()) if os.path.exists(path)],
        **_checks_of_a_request_process(),
    }
    return workdir, checks


def _checks_of_a_request_process() -> dict[str, Any]:
    """What a forked process with a request's limits sees: can it fork? which networks?

    Runs in a child so that the zygote stays small (what it loads, every fork copies).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
            blocked = True
            with contextlib.suppress(OSError):
                if os.fork() == 0:
                    os._exit(0)
                blocked = False
            checks = {"processes_blocked": blocked, "interfaces": _interfaces(),
                      "seccomp": _seccomp_mode(),
                      # Last: should it succeed, this process is in a user namespace of its own.
                      "user_namespaces_blocked": not _can_unshare(_CLONE_NEWUSER)}  # fmt: skip
            _write_all(write_fd, _dumps(checks))
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as result:
        data = result.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data)) if data else {"processes_blocked": False, "interfaces": []}


def _seccomp_mode() -> int:
    """0: no filter; 2: a seccomp filter is in force (the `Seccomp:` line of our status)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0


def _can_unshare(flags: int) -> bool:
    try:
        return int(_c_library().unshare(flags)) == 0
    except (ImportError, OSError, AttributeError):
        return False


def _interfaces() -> list[str]:
    try:
        import socket  # here: only the checking child needs it

        return sorted(name for _, name in socket.if_nameindex())
    except (ImportError, OSError):
        return []


# --- the zygote loop ----------------------------------------------------------------------


class _Spare:
    """A request process forked ahead of its request, warmed up and waiting for it.

    Forking, and the copy-on-write faults of a fresh process, cost more than running
    small code does; a spare takes them off the request's path.
    """

    __slots__ = ("pid", "request_fd", "result_fd", "status")

    def __init__(self) -> None:
        request_read, self.request_fd = os.pipe()
        self.result_fd, result_write = os.pipe()
        self.status: int | None = None
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self.request_fd)
                os.close(self.result_fd)
                _request_process(request_read, result_write)
            finally:
                os._exit(70)
        os.close(request_read)
        os.close(result_write)

    def waiting(self) -> bool:
        """Whether the spare is still there (not killed from outside while it waited)."""
        found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return found is None

    def send(self, size: int) -> None:
        """Move the `size`-byte payload from fd 0 into the spare, inside the kernel.

        Raises `OSError` when the spare dies meanwhile or fd 0 ends: the payload is
        then half gone, and the zygote cannot answer for it (the pool replaces it).
        """
        try:
            _write_all(self.request_fd, _HEADER.pack(size))
            _splice_exactly(0, self.request_fd, size)
        finally:
            self._close_request()

    def _close_request(self) -> None:
        if self.request_fd >= 0:
            os.close(self.request_fd)
            self.request_fd = -1

    def end(self, deadline: float | None = None) -> int:
        """Wait until the process exits (at most until `deadline`), kill it, reap it."""
        if self.status is not None:
            return self.status
        if deadline is not None:
            _wait_exit(self.pid, deadline)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        _, self.status = os.waitpid(self.pid, 0)
        self._close_request()
        os.close(self.result_fd)
        return self.status


def _splice_exactly(source: int, target: int, size: int) -> None:
    """Move `size` bytes from `source` to `target` (one of them a pipe) without reading them."""
    while size:
        moved = os.splice(source, target, min(size, _SPLICE_CHUNK))
        if not moved:
            raise EOFError("the input ended inside a frame")
        size -= moved


def serve(config: dict[str, Any]) -> None:
    workdir, checks = _start(config)
    _write_frame(1, _dumps({"ready": True, "checks": checks}))
    empty_size = _empty_size(workdir)
    spare = _Spare()
    cleaner: int | None = None
    try:
        while True:
            control = _read_frame(0)
            if control is None:
                return
            header = _read_exact(0, _HEADER.size)
            if header is None:
                return
            if cleaner is not None:  # the previous request's files are gone before this one
                os.waitpid(cleaner, 0)
                cleaner = None
            spare = _handle(spare, json.loads(control), _HEADER.unpack(header)[0])
            # After answering: the host is not kept waiting for the clean-up.
            spare.end()
            if empty_size is None or os.stat(workdir).st_size != empty_size:
                cleaner = _clean(workdir)
            spare = _Spare()
    finally:
        spare.end()
        if cleaner is not None:
            os.waitpid(cleaner, 0)
        if not config.get("workdir"):
            shutil.rmtree(workdir, ignore_errors=True)


def _empty_size(workdir: str) -> int | None:
    """The work directory's size when empty, if its size counts its entries, else None.

    On tmpfs (the sandbox's /tmp) a directory grows by a fixed amount per entry, so an
    unchanged size proves that the code left nothing, and saves forking a cleaner: most
    code writes no file. Elsewhere (ext4's directories are whole blocks) always clean.
    """
    before = os.stat(workdir).st_size
    probe = os.path.join(workdir, ".linkflow-size-probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        with_one = os.stat(workdir).st_size
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    after = os.stat(workdir).st_size
    return before if with_one > before and after == before else None


def _clean(workdir: str) -> int:
    """Fork a process that empties the work directory; its pid (the zygote reaps it).

    Not in the zygote: the names of the files are the code's data, and whatever the
    zygote reads, every later request process inherits.
    """
    pid = os.fork()
    if pid == 0:
        try:
            _wipe(workdir)
        finally:
            os._exit(0)
    return pid


def _wipe(directory: str) -> None:
    """Empty `directory`, so files never pass from one request to the next."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.chmod(entry.path, 0o700)  # the code may have locked itself out of it
                _wipe(entry.path)
            with contextlib.suppress(OSError):
                os.rmdir(entry.path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _handle(spare: _Spare, control: dict[str, Any], size: int) -> _Spare:
    """Run one request in the spare and write both response frames; the spare that ran it."""
    if not spare.waiting():  # the spare was killed from outside while it waited
        spare.end()
        spare = _Spare()
    spare.send(size)
    deadline = time.monotonic() + float(control["timeout_s"])
    reason = _relay(spare.result_fd, deadline)
    if reason == "complete":
        _write_frame(1, b'{"complete":true}')
        return spare
    status = spare.end(deadline if reason is None else None)
    _write_frame(1, _dumps({"ok": False, "logs": [], "error": _death(control, status, reason)}))
    return spare


def _relay(fd: int, deadline: float) -> str | None:
    """Pass the request process's result frame on to fd 1, or an empty frame when it has none.

    Returns "complete", or why the result is missing: "timeout", "size", or None when
    the process closed its pipe early. A result cut short is padded to the length
    already announced (the status frame then tells the host to ignore it).
    """
    header = bytearray()
    while len(header) < _HEADER.size:
        if not _readable(fd, deadline):
            _write_frame(1, b"")
            return "timeout"
        chunk = os.read(fd, _HEADER.size - len(header))
        if not chunk:
            _write_frame(1, b"")
            return None
        header += chunk
    (size,) = _HEADER.unpack(header)
    if size > _MAX_RESULT_BYTES:
        _write_frame(1, b"")
        return "size"
    _write_all(1, bytes(header))
    remaining = size
    reason: str | None = "complete"
    while remaining:
        if not _readable(fd, deadline):
            reason = "timeout"
            break
        moved = os.splice(fd, 1, min(remaining, _SPLICE_CHUNK))
        if not moved:
            reason = None
            break
        remaining -= moved
    while remaining:
        padding = min(remaining, len(_PADDING))
        _write_all(1, _PADDING[:padding])
        remaining -= padding
    return reason


def _readable(fd: int, deadline: float) -> bool:
    remaining = deadline - time.monotonic()
    return remaining > 0 and bool(select.select([fd], [], [], remaining)[0])


def _wait_exit(pid: int, deadline: float) -> None:
    """Return when process `pid` has exited or at `deadline`, without reaping it."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        # No pidfd (old kernel): poll; only a process that closed its pipe and lingers waits.
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
            time.sleep(0.005)
        return
    try:
        select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
    finally:
        os.close(pidfd)


def _death(request: dict[str, Any], status: int, reason: str | None) -> dict[str, Any]:
    """The error for a request process that did not return a result."""
    memory = f"{request['memory_mb']} MB"
    if reason == "timeout":
        return {"message": f"the code timed out after {request['timeout_s']:g} s", "limit": "time"}
    if reason == "size":
        return {"message": f"the result is larger than {_MAX_RESULT_BYTES >> 20} MiB",
                "limit": "size"}  # fmt: skip
    code = os.waitstatus_to_exitcode(status)
    if code == -signal.SIGXCPU:
        return {"message": f"the code used more than {request['cpu_s']} s of CPU time",
                "limit": "time"}  # fmt: skip
    if code < 0:
        name = signal.Signals(-code).name
        return {"message": f"the code was killed by {name}; it may have exceeded the memory "
                           f"limit of {memory}", "limit": "crash"}  # fmt: skip
    return {"message": f"the code ended its process (exit status {code}) before returning "
                       "a result", "limit": "crash"}  # fmt: skip


# --- one request (in a spare process) -----------------------------------------------------


def _limit(request: dict[str, Any]) -> None:
    memory = int(request["memory_mb"]) << 20
    cpu = int(request["cpu_s"])
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE_BYTES, _MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (_MAX_OPEN_FILES, _MAX_OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _request_process(request_fd: int, result_fd: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # the zygote's protocol pipes stay out of the code's reach
        os.dup2(null, fd)
    os.close(null)
    _dumps(run_code(_WARM_UP, _Capture()))  # touch now what running code touches
    raw = _read_frame(request_fd)
    if raw is None:
        os._exit(0)
    os.close(request_fd)
    request = json.loads(raw)
    _limit(request)
    capture = _Capture()
    sys.stdout = sys.stderr = capture
    response = run_code(request, capture)
    try:
        body = _dumps(response)
    except (TypeError, ValueError, RecursionError):
        error = {"message": "the result could not be encoded as JSON"}
        body = _dumps({"ok": False, "logs": response.get("logs", []), "error": error})
    _write_frame(result_fd, body)
    os._exit(0)


_WARM_UP = {"code": "return [{'n': len(items)}]", "mode": "all_items", "items": [{}],
            "memory_mb": 0}  # fmt: skip


class _Capture(io.TextIOBase):
    """Collects what the code prints, up to `_MAX_LOG_CHARS`."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = _MAX_LOG_CHARS - self._size
        if room > 0:
            self._parts.append(text[:room])
            self._size += min(room, len(text))
        self._dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def lines(self) -> list[str]:
        lines = "".join(self._parts).splitlines()
        if self._dropped:
            lines.append(f"... {self._dropped} more characters of output were dropped")
        return lines


def run_code(request: dict[str, Any], capture: _Capture) -> dict[str, Any]:
    """Run the request's code; the response: `{"ok", "value" | "error", "logs"}`."""
    each = request["mode"] == "each_item"
    try:
        main = _compile(str(request["code"]), ("item", "item_index") if each else ("items",))
    except SyntaxError as error:
        where = f" (line {error.lineno})" if error.lineno else ""
        message = f"{type(error).__name__}: {error.msg}{where}"
        return {"ok": False, "logs": capture.lines(), "error": {"message": message}}
    items = request["items"]
    outcome = _each_item(main, items, request) if each else _all_items(main, items, request)
    if "error" in outcome:
        return {"ok": False, "logs": capture.lines(), "error": outcome["error"]}
    return {"ok": True, "logs": capture.lines(), "value": outcome["value"]}


def _compile(source: str, params: tuple[str, ...]) -> Any:
    """The code as the body of `def main(<params>)`, keeping its own line numbers.

    Parsing first and compiling afterwards allows a top-level `return`: the
    parser accepts it, only the compiler would refuse it outside a function.
    """
    body = ast.parse(source, filename=_FILENAME).body
    wrapper = ast.parse(f"def main({', '.join(params)}):\n    pass\n", filename=_FILENAME)
    function = wrapper.body[0]
    assert isinstance(function, ast.FunctionDef)
    function.body = body or function.body
    namespace: dict[str, Any] = {"__name__": "__code__", "__builtins__": builtins}
    code = compile(wrapper, _FILENAME, "exec", dont_inherit=True)  # no __future__ of ours
    exec(code, namespace)  # noqa: S102 - the sandbox's purpose
    return namespace["main"]


def _all_items(main: Any, items: list[Any], request: dict[str, Any]) -> dict[str, Any]:
    try:
        value = main(items)
        if isinstance(value, Iterator):
            value = list(value)  # a generator: the code used `yield`
    except BaseException as error:  # noqa: BLE001 - whatever the code raises is reported
        return {"error": _user_error(error, request)}
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list | tuple):
        what = "nothing (None)" if value is None else f"a value of type {type(value).__name__}"
        return {"error": {"message": f"the code must return a list of items; it returned {what}"}}
    problem = _json_problem(value, "result")
    if problem is not None:
        return {"error": {"message": f"the result is not JSON: {problem}"}}
    return {"value": list(value)}


def _each_item(main: Any, items: list[Any], request: dict[str, Any]) -> dict[str, Any]:
    values = []
    for index, item in enumerate(items):
        try:
            value = main(item, index)
        except BaseException as error:  # noqa: BLE001 - whatever the code raises is reported
            return {"error": {**_user_error(error, request), "item_index": index}}
        if value is None:
            message = "the code must return an object for each item; it returned nothing (None)"
            return {"error": {"message": message, "item_index": index}}
        problem = _json_problem(value, "result")
        if problem is not None:
            return {"error": {"message": f"the result is not JSON: {problem}",
                              "item_index": index}}  # fmt: skip
        values.append(value)
    return {"value": values}


def _user_error(error: BaseException, request: dict[str, Any]) -> dict[str, Any]:
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == _FILENAME:
            line = frame.lineno
    name = type(error).__name__
    detail = str(error)
    if isinstance(error, MemoryError):
        detail = f"the code ran out of memory (limit {request['memory_mb']} MB)"
    message = f"{name}: {detail}" if detail else name
    if line is not None:
        message += f" (line {line})"
    if isinstance(error, BlockingIOError) or "can't start new thread" in detail:
        message += _NO_PROCESSES_HINT
    result: dict[str, Any] = {"message": message}
    if line is not None:
        result["line"] = line
    return result


def _json_problem(value: Any, path: str, depth: int = 0) -> str | None:  # noqa: C901
    """Why `value` cannot cross to the engine as JSON, naming where; None when it can."""
    if depth > _MAX_DEPTH:
        return f"it is nested more than {_MAX_DEPTH} levels deep (or contains itself)"
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, int):
        if _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return None
        return f"{path} is an integer beyond 64 bits (use a string)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, not a JSON number"
    if isinstance(value, list | tuple):
        for index, element in enumerate(value):
            problem = _json_problem(element, f"{path}[{index}]", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, dict):
        for key, element in value.items():
            if not isinstance(key, str):
                return f"{path} has a key that is not a string: {key!r}"
            problem = _json_problem(element, f"{path}[{key!r}]", depth + 1)
            if problem is not None:
                return problem
        return None
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    return f"{path} is a {kind} (convert it, e.g. with str())"


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {})
