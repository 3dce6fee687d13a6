"""Escape attempts against the code sandbox, with real bubblewrap and real processes.

Each attempt must fail with a clear `NodeError`, and the pool must serve a
normal request afterwards. The module's pool is told that a data dir (holding
a real SQLite file and key file) must stay invisible, and the parent process
carries a fake `LINKFLOW_SECRET_KEY` that the code must not see. `TestTenants`
and `TestSeccomp` use the runner that `linkflow serve` builds (`build_runner`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyseccomp
import pytest
from structlog.testing import capture_logs

from linkflow.config import Settings
from linkflow.nodes.sdk import CodeMode, CodeRequest, CodeResult, NodeError
from linkflow.sandbox import CodePool, SandboxMode, build_runner
from tests._sandbox_probes import (
    LEAVE_MARKERS,
    SCAN_OWN_MEMORY,
    UNSHARE_USER_NAMESPACE,
    derived,
    marker,
)

FAKE_SECRET = "fake-secret-key-for-the-sandbox-test-0123456789"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the sandbox's own tmpfs, not the host's
MEMORY_MB = 256


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir like LinkFlow's: a SQLite database and a key file."""
    directory = tmp_path_factory.mktemp("data") / ".linkflow"
    directory.mkdir()
    with sqlite3.connect(directory / "linkflow.db") as db:
        db.execute("CREATE TABLE secrets (value TEXT)")
        db.execute("INSERT INTO secrets VALUES ('top secret')")
    db.close()
    (directory / "secret_key").write_text(FAKE_SECRET)
    (directory / "secret_key").chmod(0o600)
    return directory


@pytest.fixture(scope="module")
def secret_in_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LINKFLOW_SECRET_KEY", FAKE_SECRET)
        yield


@pytest.fixture(scope="module")
async def pool(data_dir: Path, secret_in_environment: None) -> AsyncIterator[CodePool]:
    runner = CodePool(
        workers=2, timeout_s=10.0, memory_mb=MEMORY_MB,
        sandbox=SandboxMode.BUBBLEWRAP, hidden_paths=(data_dir, Path.cwd()),
    )  # fmt: skip
    await runner.start()
    yield runner
    await runner.close()


def children() -> set[int]:
    """The pids of this process's children (bwrap, or the worker when unsandboxed)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[1]) == os.getpid():
            found.add(int(stat.parent.name))
    return found


async def run(pool: CodePool, code: str, *, timeout_s: float = 10.0) -> CodeResult:
    return await pool.run(
        CodeRequest(code=code, mode=CodeMode.ALL_ITEMS, items=[{"n": 1}], timeout_s=timeout_s)
    )


async def refused(pool: CodePool, code: str, *, timeout_s: float = 10.0) -> NodeError:
    """The error the code fails with; also checks that the pool still serves afterwards."""
    with pytest.raises(NodeError) as caught:
        await run(pool, code, timeout_s=timeout_s)
    assert (await run(pool, "return [{'after': items[0]['n'] + 1}]")).value == [{"after": 2}]
    return caught.value


class TestProtections:
    async def test_the_probe_verifies_every_protection(self, pool: CodePool) -> None:
        """Network, environment, file system, processes, unprivileged uid: all in force."""
        protections = pool.protections
        assert protections is not None
        assert protections.sandbox == "bubblewrap"
        assert protections.uid == 65534
        assert protections.network_isolated
        assert protections.environment_empty
        assert protections.filesystem_restricted
        assert protections.processes_blocked
        assert protections.no_new_privs
        assert protections.seccomp
        assert protections.user_namespaces_blocked
        assert protections.visible_paths == ()

    async def test_the_protections_are_logged_at_start(self) -> None:
        """One info line lists what is in force."""
        runner = CodePool(workers=1, sandbox=SandboxMode.BUBBLEWRAP)
        with capture_logs() as logs:
            await runner.start()
        await runner.close()
        [line] = [log for log in logs if log["event"] == "code_sandbox.protections"]
        assert line["log_level"] == "info"
        assert line["sandbox"] == "bubblewrap"
        assert line["processes_blocked"] is True
        assert line["network_isolated"] is True
        assert line["seccomp"] is True
        assert line["user_namespaces_blocked"] is True

    async def test_code_runs_as_nobody_with_a_minimal_file_system(self, pool: CodePool) -> None:
        """Only the interpreter's and the system's libraries, read-only, and a private /tmp."""
        code = (
            "import os\n"
            "return [{'uid': os.getuid(), 'root': sorted(os.listdir('/')),"
            " 'cwd': os.getcwd()}]"
        )
        [seen] = (await run(pool, code)).value
        assert seen["uid"] == 65534
        assert set(seen["root"]) <= {"usr", "lib", "lib64", "opt", "etc", "proc", "dev", "tmp"}
        assert seen["cwd"] == SANDBOX_TMP

    async def test_only_tmp_is_writable(self, pool: CodePool) -> None:
        """Not the root, /dev, /etc, the libraries, nor the interpreter's own files."""
        code = (
            "import os\nwritable = []\n"
            "for path in ['/x', '/dev/x', '/dev/shm/x', '/etc/x', '/usr/lib/x', os.__file__,"
            " '/tmp/x']:\n"
            "    try:\n        open(path, 'a').close()\n    except OSError:\n        continue\n"
            "    writable.append(path)\n"
            "return [{'writable': writable}]"
        )
        assert (await run(pool, code)).value == [{"writable": [f"{SANDBOX_TMP}/x"]}]


class TestEscapes:
    async def test_no_network_even_to_a_listening_local_server(self, pool: CodePool) -> None:
        """A server on the host's 127.0.0.1 is reachable from the host, not from the code."""
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            socket.create_connection(("127.0.0.1", port), timeout=1).close()  # the host can
            code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)"
            error = await refused(pool, code)
        assert error.message.startswith("ConnectionRefusedError")
        assert error.message.endswith("(line 2)")

    async def test_no_network_to_the_outside(self, pool: CodePool) -> None:
        """No route anywhere: the network namespace holds only its own loopback."""
        code = "import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=1)"
        error = await refused(pool, code)
        assert "Network is unreachable" in error.message

    async def test_the_environment_is_empty(self, pool: CodePool) -> None:
        """The engine's LINKFLOW_SECRET_KEY (set in this process) is not inherited."""
        code = "import os\nreturn [{'env': dict(os.environ)}]"
        assert (await run(pool, code)).value == [{"env": {}}]

    @pytest.mark.parametrize("name", ["linkflow.db", "secret_key"])
    async def test_the_data_dir_cannot_be_read(
        self, pool: CodePool, data_dir: Path, name: str
    ) -> None:
        """The database and the key file do not exist inside the sandbox."""
        path = data_dir / name
        assert path.read_bytes()  # the host can
        error = await refused(pool, f"return [{{'x': open({str(path)!r}, 'rb').read().hex()}}]")
        assert error.message.startswith("FileNotFoundError")

    async def test_the_project_cannot_be_read(self, pool: CodePool) -> None:
        """Neither LinkFlow's sources nor its virtualenv are mounted."""
        error = await refused(pool, f"open({__file__!r})")
        assert error.message.startswith("FileNotFoundError")

    async def test_a_fork_bomb_fails_and_the_host_is_fine(self, pool: CodePool) -> None:
        """The first fork already fails: RLIMIT_NPROC is 0 for an unprivileged uid."""
        error = await refused(pool, "import os\nwhile True:\n    os.fork()")
        assert error.message == (
            "BlockingIOError: [Errno 11] Resource temporarily unavailable (line 3); "
            "code nodes may not start processes or threads"
        )
        host = await asyncio.create_subprocess_exec("true")
        assert await host.wait() == 0

    async def test_subprocesses_and_threads_fail(self, pool: CodePool) -> None:
        """`subprocess` and `threading` need new tasks too."""
        code = "import subprocess\nsubprocess.run(['/opt/python/bin/python3'])"
        error = await refused(pool, code)
        assert error.message.endswith("code nodes may not start processes or threads")
        error = await refused(pool, "import threading\nthreading.Thread(target=print).start()")
        assert error.message == (
            "RuntimeError: can't start new thread (line 2); "
            "code nodes may not start processes or threads"
        )

    async def test_allocating_4_gb_is_a_memory_error(self, pool: CodePool) -> None:
        """The address-space limit (`memory_mb`) turns it into a clear error."""
        error = await refused(pool, "data = bytearray(4 * 1024**3)")
        assert error.message == (
            f"MemoryError: the code ran out of memory (limit {MEMORY_MB} MB) (line 1)"
        )
        assert not error.retryable

    async def test_an_endless_loop_is_stopped_at_the_timeout(self, pool: CodePool) -> None:
        """The wall-clock timeout kills the request's process; the worker lives on."""
        started = time.monotonic()
        error = await refused(pool, "while True:\n    pass", timeout_s=1.0)
        assert error.message == "the code timed out after 1 s"
        assert time.monotonic() - started < 5

    async def test_sleeping_is_stopped_at_the_timeout_too(self, pool: CodePool) -> None:
        """Wall time, not CPU time."""
        error = await refused(pool, "import time\ntime.sleep(60)", timeout_s=0.5)
        assert error.message == "the code timed out after 0.5 s"

    async def test_files_do_not_pass_from_one_request_to_the_next(self, pool: CodePool) -> None:
        """The sandbox's temporary directory is emptied after each request."""
        for _ in range(3):  # both workers, whichever serves
            [seen] = (await run(pool, "import os\nopen('left', 'w').write('x')\n"
                                      "return [{'files': os.listdir('/tmp')}]")).value  # fmt: skip
            assert seen == {"files": ["left"]}

    async def test_a_directory_locked_by_the_code_is_emptied_too(self, pool: CodePool) -> None:
        """A directory the code made unreadable (mode 000) goes as well, with what it holds."""
        locked = ("import os\nos.makedirs('d/e')\nopen('d/e/f', 'w').close()\n"
                  "os.chmod('d/e', 0)\nos.chmod('d', 0)\nreturn []")  # fmt: skip
        for _ in range(3):  # both workers, whichever serves
            await run(pool, locked)
            [seen] = (await run(pool, "import os\nreturn [{'files': os.listdir('/tmp')}]")).value
            assert seen == {"files": []}

    async def test_module_changes_do_not_pass_to_the_next_request(self, pool: CodePool) -> None:
        """Each request runs in a fresh process: patching a module affects only itself."""
        for _ in range(2):  # both workers, whichever serves
            await run(pool, "import math, json\nmath.pi = 3\njson.loads = None\nreturn []")
        code = "import math, json\nreturn [{'pi': math.pi, 'x': json.loads('1')}]"
        assert (await run(pool, code)).value == [{"pi": 3.141592653589793, "x": 1}]


FIND_THE_RESULT_PIPE = """import fcntl, os, stat
def result_pipe():
    for fd in range(3, 64):
        try:
            mode, flags = os.fstat(fd).st_mode, fcntl.fcntl(fd, fcntl.F_GETFL)
        except OSError:
            continue
        if stat.S_ISFIFO(mode) and flags & os.O_ACCMODE == os.O_WRONLY:
            return fd
fd = result_pipe()
"""
"""The request process's own end of its result pipe (the code may write to it)."""


class TestCutShortResults:
    """The result frame passes through the zygote untouched, so the zygote cannot take back
    what it passed on; a result cut short must still end as an error, not a broken worker."""

    async def test_a_result_cut_short_is_an_error_and_the_worker_lives_on(
        self, pool: CodePool
    ) -> None:
        """A frame announcing 1000 bytes, then 10 and an exit: the code's crash, reported."""
        code = FIND_THE_RESULT_PIPE + (
            "os.write(fd, (1000).to_bytes(4, 'big') + b'0123456789')\nos._exit(0)"
        )
        error = await refused(pool, code)
        assert error.message == (
            "the code ended its process (exit status 0) before returning a result"
        )
        assert not error.retryable

    async def test_a_result_that_stalls_is_stopped_at_the_timeout(self, pool: CodePool) -> None:
        """Half a frame, then nothing: the wall-clock timeout still applies."""
        code = FIND_THE_RESULT_PIPE + (
            "os.write(fd, (1000).to_bytes(4, 'big') + b'{')\nimport time\ntime.sleep(60)"
        )
        error = await refused(pool, code, timeout_s=0.5)
        assert error.message == "the code timed out after 0.5 s"


async def served_runner(data_dir: Path, sandbox: str) -> CodePool:
    """The runner `linkflow serve` builds, with one worker (so every request meets the
    previous one's worker), started; unsandboxed only when `sandbox` says so."""
    settings = Settings(
        data_dir=data_dir, code_workers=1, code_sandbox=sandbox,
        code_allow_unsandboxed=sandbox == "none",
    )  # fmt: skip
    runner = build_runner(settings)
    protections = await runner.start()
    assert protections is not None
    assert protections.sandbox == sandbox
    return runner


@pytest.fixture(scope="module", params=["bubblewrap", "none"])
async def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CodePool]:
    """`linkflow serve`'s runner, sandboxed and (allowed explicitly) unsandboxed."""
    runner = await served_runner(tmp_path_factory.mktemp("serve"), request.param)
    yield runner
    await runner.close()


@pytest.fixture(scope="module")
async def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CodePool]:
    """`linkflow serve`'s runner under bubblewrap (the seccomp filter is bubblewrap's)."""
    runner = await served_runner(tmp_path_factory.mktemp("serve"), "bubblewrap")
    yield runner
    await runner.close()


class TestTenants:
    async def test_a_run_finds_nothing_of_an_earlier_run_in_its_own_memory(
        self, served: CodePool
    ) -> None:
        """Regression (issue 13): a code node scanning its memory found the items and values
        of code run earlier in another workspace, on the same worker. The scan finds its own
        item's marker (so it does read memory), and none of the earlier run's."""
        earlier = marker()
        left = await served.run(
            CodeRequest(code=LEAVE_MARKERS, mode=CodeMode.ALL_ITEMS, items=[{"marker": earlier}])
        )
        returned, file_name = derived(earlier)
        assert left.value == [{"secret": returned}]
        own = marker()
        scan = CodeRequest(code=SCAN_OWN_MEMORY, mode=CodeMode.ALL_ITEMS, items=[{"mine": own}])
        [seen] = (await served.run(scan)).value
        assert own in seen["found"]
        assert {earlier, returned, file_name} & set(seen["found"]) == set()


SECCOMP_PROBE = """import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
answers = {}
for name, number, args in CALLS:
    ctypes.set_errno(0)
    answer = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
    answers[name] = [answer, ctypes.get_errno()]
return [answers]
"""
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17
REFUSED_CALLS = {
    # name: arguments that would be harmless (or an error other than EPERM) without a filter
    "unshare": (CLONE_NEWUSER,), "clone": (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "setns": (-1, 0), "mount": (0, 0, 0, 0, 0), "umount2": (0, 0), "pivot_root": (0, 0),
    "ptrace": (0, 0, 0, 0), "process_vm_readv": (os.getpid(), 0, 0, 0, 0, 0),
    "process_vm_writev": (os.getpid(), 0, 0, 0, 0, 0), "keyctl": (0, -1, 0),
    "add_key": (0, 0, 0, 0, 0), "request_key": (0, 0, 0, 0), "bpf": (0, 0, 0),
    "perf_event_open": (0, 0, -1, -1, 0), "userfaultfd": (0,), "io_uring_setup": (0, 0),
    "kexec_load": (0, 0, 0, 0), "kexec_file_load": (-1, -1, 0, 0, 0),
    "init_module": (0, 0, 0), "finit_module": (-1, 0, 0), "delete_module": (0, 0),
    "reboot": (0, 0, 0, 0), "swapon": (0, 0), "swapoff": (0,),
}  # fmt: skip


class TestSeccomp:
    async def test_namespaces_mounts_tracing_and_kernel_facilities_are_refused(
        self, sandboxed: CodePool
    ) -> None:
        """Each call answers EPERM; without the filter, many would succeed or fail
        differently (EINVAL, EFAULT, EBADF...) for the arguments given."""
        calls = [(name, pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name), list(args))
                 for name, args in REFUSED_CALLS.items()]  # fmt: skip
        code = f"CALLS = {calls!r}\n" + SECCOMP_PROBE
        [answers] = (await run(sandboxed, code)).value
        assert answers == {name: [-1, errno.EPERM] for name in REFUSED_CALLS}

    async def test_a_user_namespace_is_a_clear_permission_error(
        self, sandboxed: CodePool
    ) -> None:
        """Regression (issue 13): as root, `os.unshare(os.CLONE_NEWUSER)` succeeded, and
        mounts after it."""
        error = await refused(sandboxed, UNSHARE_USER_NAMESPACE)
        assert error.message.startswith("PermissionError: [Errno 1] Operation not permitted")
        assert not error.retryable

    async def test_the_unsandboxed_mode_reports_that_it_has_no_filter(self) -> None:
        """Without bubblewrap (allowed explicitly), today's protections: rlimits only, and the
        probe says so rather than claiming a filter."""
        runner = CodePool(workers=1, sandbox=SandboxMode.NONE)
        try:
            protections = await runner.start()
            assert protections is not None
            assert not protections.seccomp
        finally:
            await runner.close()


class TestPool:
    async def test_a_crashed_worker_is_replaced(self, pool: CodePool) -> None:
        """Killing the worker fails that request as retryable; the next ones are served."""
        error = await refused(pool, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
        assert error.retryable
        assert error.message.startswith("the code sandbox crashed")
        for _ in range(3):
            assert (await run(pool, "return items")).value == [{"n": 1}]

    async def test_a_worker_that_stops_answering_is_killed(self) -> None:
        """A stopped worker cannot report the timeout: the pool's own deadline does."""
        runner = CodePool(workers=1, sandbox=SandboxMode.BUBBLEWRAP)
        try:
            code = "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nreturn []"
            error = await refused(runner, code, timeout_s=0.2)
            assert error.message == "the code timed out after 0.2 s"
        finally:
            await runner.close()

    async def test_a_cancelled_request_kills_its_worker_and_the_pool_recovers(
        self, pool: CodePool
    ) -> None:
        """Cancellation propagates (the engine's node timeout); the worker is replaced."""
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run(pool, "while True:\n    pass"), timeout=0.5)
        for _ in range(3):
            assert (await run(pool, "return items")).value == [{"n": 1}]

    async def test_requests_queue_for_a_free_worker(self, pool: CodePool) -> None:
        """Four requests on two workers: two at a time."""
        started = time.monotonic()
        results = await asyncio.gather(
            *(run(pool, f"import time\ntime.sleep(0.4)\nreturn [{{'i': {i}}}]") for i in range(4))
        )
        assert [result.value for result in results] == [[{"i": i}] for i in range(4)]
        assert time.monotonic() - started >= 0.8

    async def test_a_closed_pool_refuses_requests_and_leaves_no_process(self) -> None:
        """After `close()` every worker is gone and `run` fails."""
        before = children()
        runner = CodePool(workers=2, sandbox=SandboxMode.BUBBLEWRAP)
        assert (await run(runner, "return items")).value == [{"n": 1}]
        assert len(children() - before) == 2
        await runner.close()
        assert children() - before == set()
        with pytest.raises(NodeError, match="closed"):
            await run(runner, "return items")


class TestRefusal:
    async def test_without_a_sandbox_code_is_refused(self) -> None:
        """No bubblewrap and no permission to run unsandboxed: a clear error."""
        runner = CodePool(workers=1, bwrap="/nonexistent/bwrap")
        with capture_logs() as logs, pytest.raises(NodeError) as caught:
            await run(runner, "return items")
        await runner.close()
        assert caught.value.message.startswith("code nodes cannot run: bubblewrap does not work")
        assert "LINKFLOW_CODE_ALLOW_UNSANDBOXED" in caught.value.message
        assert [log["event"] for log in logs] == ["code_sandbox.refused"]

    async def test_required_bubblewrap_is_never_replaced(self) -> None:
        """`sandbox: bubblewrap` refuses even when unsandboxed code is allowed."""
        runner = CodePool(
            workers=1, bwrap="/nonexistent/bwrap", sandbox=SandboxMode.BUBBLEWRAP,
            allow_unsandboxed=True,
        )  # fmt: skip
        with pytest.raises(NodeError, match="LINKFLOW_CODE_SANDBOX is 'bubblewrap'"):
            await run(runner, "return items")
        await runner.close()

    async def test_allowed_unsandboxed_mode_keeps_the_limits(
        self, secret_in_environment: None
    ) -> None:
        """Falling back is logged as a warning; rlimits and the empty environment remain."""
        runner = CodePool(workers=1, bwrap="/nonexistent/bwrap", allow_unsandboxed=True)
        with capture_logs() as logs:
            await runner.start()
        try:
            assert runner.protections is not None
            assert runner.protections.sandbox == "none"
            assert runner.protections.processes_blocked
            assert not runner.protections.network_isolated
            assert {log["event"] for log in logs} >= {
                "code_sandbox.fallback", "code_sandbox.unsandboxed",
            }  # fmt: skip
            code = "import os\nreturn [{'env': dict(os.environ)}]"
            assert (await run(runner, code)).value == [{"env": {}}]
            error = await refused(runner, "import os\nos.fork()")
            assert error.message.endswith("code nodes may not start processes or threads")
        finally:
            await runner.close()


def test_build_runner_reads_the_code_settings(tmp_path: Path) -> None:
    """Wiring's entry point: workers, limits and sandbox mode come from `Settings`."""
    settings = Settings(
        data_dir=tmp_path, code_workers=3, code_timeout_s=7.5, code_memory_mb=128,
        code_sandbox="none", code_allow_unsandboxed=True,
    )  # fmt: skip
    runner = build_runner(settings)
    assert isinstance(runner, CodePool)
    assert runner.protections is None  # nothing starts before the first run

