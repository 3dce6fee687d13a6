"""The Redis plane's processes for end-to-end tests: `linkflow api`, `linkflow worker`
and `linkflow scheduler`, each a real process on one PostgreSQL and one Redis, as a
deployment runs them (see deploy/ and docs/deploy.md once they exist)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from tests.e2e._serve import free_port, poll

READY = {
    "worker": b"LinkFlow worker is running",
    "scheduler": b"LinkFlow scheduler is running",
}


def cluster_settings(pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """What every process of one installation shares: database, Redis, keys; short
    leases so that a dead worker's executions move on within seconds."""
    return {
        "LINKFLOW_DATABASE_URL": pg_url,
        "LINKFLOW_REDIS_URL": redis_url,
        "LINKFLOW_SECRET_KEY": "s" * 40,
        "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LINKFLOW_LEASE_TTL_S": "2",
        "LINKFLOW_RATE_LIMIT_ENABLED": "false",
        **extra,
    }


class Process:
    """One `linkflow <command>` process with the installation's settings."""

    def __init__(self, directory: Path, name: str, command: list[str], env: dict[str, str]):
        self.directory = directory
        self.name = name
        self.command = command
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / f"{name}.log"
        self.port = free_port() if command[0] == "api" else None
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Process:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - the child's PATH
               "LINKFLOW_DATA_DIR": str(self.directory), **self.env}  # fmt: skip
        args = [*self.command, *(["--port", str(self.port)] if self.port else [])]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "linkflow", *args],
                cwd=self.directory, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        poll(self.ready, f"{self.name} to start", deadline_s=60)
        return self

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
        if self.port is not None:
            import httpx

            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        return READY[self.command[0]] in self.log.read_bytes()

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class Cluster:
    """The processes of one installation, started on demand, all stopped at the end."""

    def __init__(self, directory: Path, settings: dict[str, str]) -> None:
        self.directory = directory
        self.settings = settings
        self.processes: list[Process] = []

    def start(self, command: str, *args: str, **extra: str) -> Process:
        name = f"{command}-{sum(p.command[0] == command for p in self.processes) + 1}"
        process = Process(self.directory, name, [command, *args], {**self.settings, **extra})
        self.processes.append(process)
        return process.start()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log.read_text()[-4000:]}" for p in self.processes)


@contextmanager
def cluster(directory: Path, settings: dict[str, str]) -> Iterator[Cluster]:
    running = Cluster(directory, settings)
    try:
        yield running
    finally:
        running.stop()


def query(pg_url: str, sql: str, *args: Any) -> list[Any]:
    """Rows of one SQL statement on the installation's database (what the API does not show)."""

    async def run() -> list[Any]:
        connection = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())
