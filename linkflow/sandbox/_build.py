"""Build the code runner from settings: the one place the sandbox reads configuration."""

from __future__ import annotations

from pathlib import Path

from linkflow.config import Settings
from linkflow.sandbox._pool import CodePool
from linkflow.sandbox._protection import SandboxMode

__all__ = ["build_runner"]


def build_runner(settings: Settings) -> CodePool:
    """A `CodePool` (a `CodeRunner`) configured by `LINKFLOW_CODE_*`; nothing starts yet.

    The probe checks that the data dir, the working directory and home
    directories are invisible to code.
    """
    hidden = (settings.data_dir.resolve(), Path.cwd(), Path("/root"), Path("/home"))
    return CodePool(
        workers=settings.code_workers,
        timeout_s=settings.code_timeout_s,
        memory_mb=settings.code_memory_mb,
        sandbox=SandboxMode(settings.code_sandbox),
        allow_unsandboxed=settings.code_allow_unsandboxed,
        hidden_paths=hidden,
    )
