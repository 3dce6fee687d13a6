"""A real `linkflow api` process on a free loopback port, for end-to-end tests.

Started from the installed console script with a private data dir; ready
when `/health/ready` answers 200 (polled against a deadline); stopped with
SIGTERM (SIGKILL if it does not stop), and told to die with the test
process if that is killed first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests._services import _die_with_parent, free_port
from tests.api._support import ENCRYPTION_KEY, SECRET_KEY

START_TIMEOUT_S = 60.0
LINKFLOW = Path(sys.executable).parent / "linkflow"

# Cheap Argon2 and limits out of the way: these processes serve tests and benchmarks.
FAST_ENV = {
    "LINKFLOW_SECRET_KEY": SECRET_KEY,
    "LINKFLOW_ENCRYPTION_KEY": ENCRYPTION_KEY,
    "LINKFLOW_PASSWORD_HASH_TIME_COST": "1",
    "LINKFLOW_PASSWORD_HASH_MEMORY_KIB": "1024",
    "LINKFLOW_PASSWORD_HASH_PARALLELISM": "1",
    "LINKFLOW_RATE_LIMIT_PER_IP": "1000000/minute",
    "LINKFLOW_RATE_LIMIT_PER_PRINCIPAL": "1000000/minute",
    "LINKFLOW_RATE_LIMIT_AUTH": "1000000/minute",
    "LINKFLOW_LOG_LEVEL": "warning",
}


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def server_env(data_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without LINKFLOW_* variables, plus the given ones."""
    inherited = {
        name: value
        for name, value in os.environ.items()  # noqa: TID251 - a child process's environment
        if not name.startswith("LINKFLOW_")
    }
    return {**inherited, "LINKFLOW_DATA_DIR": str(data_dir), **extra}


def run_cli(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINKFLOW), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


@contextmanager
def linkflow_api(
    data_dir: Path, env: Mapping[str, str] | None = None, *, args: tuple[str, ...] = ()
) -> Iterator[Server]:
    """Run `linkflow api` until the block ends."""
    port = free_port()
    log = data_dir / "api.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(LINKFLOW), "api", "--host", "127.0.0.1", "--port", str(port), *args],
            env=server_env(data_dir, {**FAST_ENV, **(env or {})}),
            cwd=data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise AssertionError(
                    f"linkflow api exited with {server.process.returncode}:\n"
                    + server.log.read_text(errors="replace")
                )
            try:
                if client.get(f"{server.url}/health/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "linkflow api was not ready in time:\n" + server.log.read_text(errors="replace")
                )
            time.sleep(0.05)
