"""What isolation code nodes get here: the launch command, and a probe that verifies it.

Two ways to start a worker:

- `bubblewrap`: `bwrap` with new network, PID, IPC, UTS and cgroup namespaces
  (the network namespace has nothing in it, not even a live loopback), an
  empty environment, and a root file system that is an empty tmpfs holding
  only read-only binds of what the interpreter needs: `/usr/lib` (and
  `/usr/lib64`), the zoneinfo database, `ld.so.cache`, and the interpreter's
  own installation, mounted at `/opt/python`, and the worker's one source file,
  `_child.py`, at `/opt/linkflow/child.py`. Never the project, its virtual
  environment, the data dir, home directories or `/etc`. `/tmp` is a small
  private tmpfs. A seccomp filter (`_seccomp.py`) refuses namespaces, mounts,
  tracing, the keyring, eBPF and the like; as any user but root, bubblewrap's
  `--disable-userns` also stops the code making a user namespace of its own.
- `none`: the same worker started directly, with an empty environment and
  rlimits only. Used only when configuration allows it.

Root: the kernel never applies RLIMIT_NPROC to uid 0, and a user namespace
created by root maps the sandbox's uid back to uid 0. So when LinkFlow runs
as root, bwrap runs without a user namespace, keeps only CAP_SETUID and
CAP_SETGID, and the worker drops to uid/gid 65534 (nobody) before anything
else. As any other user, bwrap creates a user namespace (uid 65534 inside).
As root there is no user namespace for `--disable-userns` to lock, so the
seccomp filter alone refuses `unshare` and `clone` with namespace flags.

The probe starts the real launch command once, reads the worker's self-checks
(uid, environment, whether a request process can fork or make a user
namespace, whether a seccomp filter is in force, which paths and network
interfaces it sees), and `Protections` reports them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from linkflow.sandbox._seccomp import build_filter, filter_fd

__all__ = [
    "Launch",
    "Protections",
    "SandboxMode",
    "bubblewrap_launch",
    "find_bubblewrap",
    "probe",
    "read_hello",
    "spawn",
    "unsandboxed_launch",
]

NOBODY = 65534
"""The uid and gid code runs as when LinkFlow runs as root (nobody/nogroup)."""
INNER_PYTHON = "/opt/python"
"""Where the interpreter's installation is mounted inside the sandbox."""
INNER_CHILD = "/opt/linkflow/child.py"
"""Where the worker's source (`_child.py`, alone) is mounted inside the sandbox."""
TMP_BYTES = 16 << 20
"""Size of the sandbox's private /tmp (tmpfs); the same as a file's size limit."""
PROBE_TIMEOUT_S = 15.0
"""A worker that has not said hello by then is broken (a cold start takes ~50 ms)."""
_SECCOMP_FILTER = 2
"""The `Seccomp:` mode of /proc/self/status when a filter is in force."""
_HEADER = struct.Struct(">I")
_CHILD = Path(__file__).resolve().with_name("_child.py")
_NAMESPACES = (
    "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
)  # fmt: skip
_OPTIONAL_BINDS = ("/usr/lib64", "/usr/share/zoneinfo", "/etc/ld.so.cache", "/etc/localtime")


class SandboxMode(StrEnum):
    AUTO = "auto"
    """Bubblewrap when it works; otherwise unsandboxed if allowed, else refuse."""
    BUBBLEWRAP = "bubblewrap"
    """Bubblewrap, or refuse to run code."""
    NONE = "none"
    """No sandbox: a subprocess with rlimits only (explicitly chosen)."""


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one worker process."""

    sandbox: str
    """`bubblewrap` or `none`."""
    argv: tuple[str, ...]
    """The command, ending with the worker's file and its JSON configuration."""
    seccomp: bytes | None = None
    """The compiled seccomp filter handed to bwrap (`--seccomp FD`), if any."""


@dataclass(frozen=True, slots=True)
class Protections:
    """What a worker verified about its own isolation (from the probe)."""

    sandbox: str
    uid: int
    network_isolated: bool
    environment_empty: bool
    processes_blocked: bool
    filesystem_restricted: bool
    no_new_privs: bool
    seccomp: bool = False
    """A seccomp filter is in force in request processes."""
    user_namespaces_blocked: bool = False
    """A request process cannot create a user namespace (so cannot mount or own caps)."""
    rlimits: tuple[str, ...] = ("cpu", "address_space", "processes", "file_size", "open_files")
    visible_paths: tuple[str, ...] = ()

    @property
    def sandboxed(self) -> bool:
        return self.sandbox == "bubblewrap"

    def as_fields(self) -> dict[str, Any]:
        """For the start-up log line."""
        return {
            "sandbox": self.sandbox, "uid": self.uid,
            "network_isolated": self.network_isolated,
            "environment_empty": self.environment_empty,
            "processes_blocked": self.processes_blocked,
            "filesystem_restricted": self.filesystem_restricted,
            "no_new_privs": self.no_new_privs, "seccomp": self.seccomp,
            "user_namespaces_blocked": self.user_namespaces_blocked,
            "rlimits": list(self.rlimits),
        }  # fmt: skip


def _interpreter() -> tuple[Path, Path]:
    """The real interpreter binary and its installation prefix (not a virtualenv's)."""
    executable = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    prefix = Path(os.path.realpath(sys.base_prefix))
    return executable, prefix


def _worker_argv(python: str, child: str, config: dict[str, Any]) -> list[str]:
    # A file, not `-c <source>`: 27 kB of source on every worker's command line flooded `ps`.
    # -I: no PYTHON* variables, no user site, no script dir on sys.path; -S: no site-packages.
    return [python, "-I", "-S", child, orjson.dumps(config).decode()]


def _config(hidden_paths: Sequence[Path], workdir: str | None) -> dict[str, Any]:
    as_root = os.geteuid() == 0
    return {
        "drop_uid": NOBODY if as_root else None,
        "drop_gid": NOBODY if as_root else None,
        "workdir": workdir,
        "hidden_paths": [str(path) for path in hidden_paths],
        # Unsandboxed, the interpreter is where it is installed, perhaps unreadable for nobody.
        "preload": as_root and workdir is None,
    }


def bubblewrap_launch(bwrap: str, hidden_paths: Sequence[Path] = ()) -> Launch:
    """The bwrap command for a worker (see the module docstring for what it binds).

    Raises `SeccompUnavailable` when the seccomp filter cannot be built.
    """
    seccomp = build_filter()
    executable, prefix = _interpreter()
    args = [bwrap, *_NAMESPACES, "--die-with-parent", "--new-session", "--clearenv",
            "--hostname", "sandbox"]  # fmt: skip
    if os.geteuid() == 0:
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        # --disable-userns: the code cannot make a user namespace of its own inside.
        args += ["--unshare-user", "--disable-userns", "--assert-userns-disabled",
                 "--uid", str(NOBODY), "--gid", str(NOBODY)]  # fmt: skip
    # bwrap creates missing parent directories 0700, which uid 65534 could not enter.
    for directory in ("/usr", "/opt", "/opt/linkflow", "/etc", "/usr/share"):
        args += ["--perms", "0755", "--dir", directory]
    args += ["--ro-bind", "/usr/lib", "/usr/lib"]
    for path in _OPTIONAL_BINDS:
        args += ["--ro-bind-try", path, path]
    for link in ("/lib", "/lib64"):
        target = Path(link)
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), link]
        else:
            args += ["--ro-bind-try", link, link]
    if prefix == Path("/usr"):
        python = str(executable)
        args += ["--ro-bind", python, python]
    else:
        python = f"{INNER_PYTHON}/{executable.relative_to(prefix)}"
        args += ["--ro-bind", str(prefix), INNER_PYTHON,
                 # The binary's RUNPATH names the prefix's real path, which is not mounted.
                 "--setenv", "LD_LIBRARY_PATH", f"{INNER_PYTHON}/lib"]  # fmt: skip
    args += ["--ro-bind", str(_CHILD), INNER_CHILD]
    # The sandbox's own /tmp: a fresh tmpfs, nothing shared with the host's.
    tmp = "/tmp"  # noqa: S108
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES),
             "--perms", "1777", "--tmpfs", tmp, "--chdir", tmp,
             # The root and /dev tmpfs belong to the sandbox's uid when bwrap is
             # unprivileged: read-only, so that only /tmp (emptied per request) is writable.
             "--remount-ro", "/dev", "--remount-ro", "/"]  # fmt: skip
    worker = _worker_argv(python, INNER_CHILD, _config(hidden_paths, tmp))
    return Launch("bubblewrap", (*args, *worker), seccomp)


def unsandboxed_launch(hidden_paths: Sequence[Path] = ()) -> Launch:
    """A worker started directly: rlimits and an empty environment only."""
    executable, _ = _interpreter()
    argv = _worker_argv(str(executable), str(_CHILD), _config(hidden_paths, None))
    return Launch("none", tuple(argv))


def find_bubblewrap() -> str | None:
    return shutil.which("bwrap")


async def spawn(launch: Launch) -> asyncio.subprocess.Process:
    """Start a worker process (its own session, so it can be killed as a group)."""
    argv, passed = launch.argv, list[int]()
    if launch.seccomp is not None:
        passed.append(filter_fd(launch.seccomp))
        # bwrap reads the filter from that inherited descriptor before it starts the worker.
        argv = (argv[0], "--seccomp", str(passed[0]), *argv[1:])
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={},
            cwd="/",
            start_new_session=True,
            pass_fds=passed,
        )
    finally:
        for fd in passed:
            os.close(fd)


async def read_hello(process: asyncio.subprocess.Process) -> dict[str, Any]:
    """The worker's first frame; raises `RuntimeError` with its stderr when it fails."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            header = await process.stdout.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            hello = orjson.loads(await process.stdout.readexactly(size))
    except (asyncio.IncompleteReadError, TimeoutError, orjson.JSONDecodeError) as error:
        raise RuntimeError(await _failure(process, error)) from None
    if not isinstance(hello, dict) or not hello.get("ready"):
        raise RuntimeError("the worker did not say hello")
    checks: dict[str, Any] = hello.get("checks", {})
    return checks


async def _failure(process: asyncio.subprocess.Process, error: BaseException) -> str:
    if process.returncode is None:
        process.kill()
    await process.wait()
    stderr = b""
    if process.stderr is not None:
        stderr = await process.stderr.read(4096)
    detail = stderr.decode(errors="replace").strip().splitlines()
    reason = detail[-1] if detail else type(error).__name__
    return f"the worker did not start (exit status {process.returncode}): {reason}"


async def probe(launch: Launch) -> Protections:
    """Start one worker, read its self-checks, stop it. Raises `RuntimeError` on failure."""
    process = await spawn(launch)
    try:
        checks = await read_hello(process)
    finally:
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
    sandboxed = launch.sandbox == "bubblewrap"
    visible = tuple(checks.get("visible_paths", ()))
    return Protections(
        sandbox=launch.sandbox,
        uid=int(checks.get("uid", -1)),
        network_isolated=sandboxed and set(checks.get("interfaces", ())) <= {"lo"},
        environment_empty=bool(checks.get("environment_empty")),
        processes_blocked=bool(checks.get("processes_blocked")),
        filesystem_restricted=sandboxed and not visible,
        no_new_privs=bool(checks.get("no_new_privs")),
        seccomp=checks.get("seccomp") == _SECCOMP_FILTER,
        user_namespaces_blocked=bool(checks.get("user_namespaces_blocked")),
        visible_paths=visible,
    )
