"""The code-node runner: user Python in pre-forked, sandboxed worker processes.

`build_runner(settings)` gives the `CodeRunner` that wiring hands to the
engine (`NodeServices(code=...)`). Code never runs in the engine's process:
each worker is a bubblewrap sandbox (no network, empty environment, a
read-only minimal file system, an unprivileged uid, a seccomp filter) and each
request runs in a process forked for it alone, with CPU, memory, file and
process limits, from a zygote that never holds user data: nothing of one run,
of any workspace, is left in memory for the next. See `docs/operations.md`
("Code node and sandbox").
"""

from __future__ import annotations

from linkflow.sandbox._build import build_runner
from linkflow.sandbox._pool import CodePool
from linkflow.sandbox._protection import Protections, SandboxMode

__all__ = ["CodePool", "Protections", "SandboxMode", "build_runner"]
