"""The seccomp filter of the bubblewrap sandbox: the system calls code may never make.

Bubblewrap loads it (`--seccomp FD`, a compiled BPF program) into the sandbox's
first process just before it starts the interpreter, so the zygote and every
request process run under it. The program is built here by libseccomp
(through `pyseccomp`, a ctypes binding) once per pool.

What it refuses, with EPERM so that code gets an ordinary `PermissionError`
rather than a dead process: creating or entering namespaces (`unshare`,
`setns`, and `clone` with any `CLONE_NEW*` flag), mounting and changing the
root, tracing and reading other processes' memory, the kernel keyring, eBPF,
perf events, userfaultfd, io_uring, loading kernels or modules, rebooting,
swap, accounting, quotas, handles that bypass path lookup, setting the clock,
and raw port I/O. Nothing a code node needs is among them; most were already
refused to the sandbox's unprivileged uid, and the filter keeps them refused
when a kernel bug or a user namespace would grant them (the finding this
filter answers: as root, a code node could `unshare(CLONE_NEWUSER)` and mount).

`clone3` answers ENOSYS instead: its flags are in memory a filter cannot read,
and ENOSYS makes the C library fall back to `clone`, whose flags it checks.
Every other architecture's system calls (say 32-bit ones on x86-64) kill the
process: libseccomp's default for an architecture the filter was not built for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

__all__ = ["REFUSED_SYSCALLS", "SeccompUnavailable", "build_filter"]

REFUSED_SYSCALLS = (
    # namespaces, mounts and the root directory
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # other processes: tracing, their memory, their file descriptors
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
    "kcmp",
    # kernel facilities with a record of privilege escalations
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
    # the machine itself
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "syslog", "vhangup",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm",
    "uselib", "nfsservctl", "_sysctl",
)  # fmt: skip
"""Refused with EPERM; a name the machine's architecture does not have is skipped."""

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
"""`clone` with any of these fails with EPERM (CLONE_NEWTIME only exists for `unshare`
and `clone3`; in `clone`'s flags its bit is part of the exit signal)."""

_OPTIMIZE_AS_TREE = 2
"""libseccomp's binary-tree layout: the checks a call passes grow with log(rules)."""


class SeccompUnavailable(RuntimeError):
    """libseccomp is not installed (or too old), so the filter cannot be built."""


def build_filter() -> bytes:
    """The compiled BPF program (the format `bwrap --seccomp` reads); raises
    `SeccompUnavailable` when libseccomp cannot be loaded."""
    try:
        # Here, not at import: pyseccomp loads libseccomp when it is imported.
        import pyseccomp as seccomp  # type: ignore[import-untyped]
    except (ImportError, OSError, AttributeError) as error:
        raise SeccompUnavailable(f"libseccomp cannot be loaded: {error}") from None
    refuse = seccomp.ERRNO(errno.EPERM)
    program = seccomp.SyscallFilter(seccomp.ALLOW)
    # libseccomp < 2.5 cannot: it lays rules out in a list, slower to check, as strict.
    with contextlib.suppress(OSError):
        program.set_attr(seccomp.Attr.CTL_OPTIMIZE, _OPTIMIZE_AS_TREE)
    for name in REFUSED_SYSCALLS:
        try:
            program.add_rule(refuse, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a system call of this architecture
    for flag in CLONE_NAMESPACE_FLAGS.values():
        program.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    program.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # libseccomp writes to a file descriptor; an anonymous file keeps it off the disk.
    with tempfile.TemporaryFile() as compiled:
        program.export_bpf(compiled)
        compiled.seek(0)
        data = compiled.read()
    if not data:
        raise SeccompUnavailable("libseccomp produced an empty filter")
    return data


def filter_fd(program: bytes) -> int:
    """A pipe's read end holding `program`, for bwrap's `--seccomp FD` (caller closes it)."""
    read_fd, write_fd = os.pipe()
    try:
        # A filter is a few hundred bytes: it fits in the pipe's buffer, so this never blocks.
        os.write(write_fd, program)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd
