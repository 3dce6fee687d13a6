"""The Redis plane's processes for end-to-end tests: `linkflow api`, `linkflow worker`
and `linkflow scheduler`, each a real process on one PostgreSQL and one Redis, as a
deployment runs them (deploy/compose.yaml and deploy/kubernetes declare the same
commands; docs/deploy.md)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import redis

from tests._http_server import Recorded, Reply, TestServer
from tests.e2e._serve import ADA, Client, free_port, poll, register

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


class Gate:
    """`/gate` answers only once opened; counts who called."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.server: TestServer | None = None

    def route(self, _request: Recorded) -> Reply:
        self.opened.wait(60)
        return Reply.json({"passed": True})

    @property
    def calls(self) -> int:
        assert self.server is not None
        return len(self.server.hits("/gate"))

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url("/gate")


def client_of(plane: Cluster) -> Client:
    api = next(p for p in plane.processes if p.command[0] == "api")
    client = Client(api)  # type: ignore[arg-type]  # duck-typed: it needs only `url`
    try:
        register(client)
    except AssertionError:  # a second test on the same database: the account exists
        client.token = client.ok("POST", "/api/v1/auth/login", json=ADA)["access_token"]
    return client


def gated_flow(gate_url: str, name: str = "gated") -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "before", "type": "set", "parameters": {"fields": {"n": 1}}},
            {"id": "gate", "type": "http_request", "parameters": {"url": gate_url}},
            {"id": "after", "type": "set", "parameters": {"fields": {"done": True}}},
        ],
        "connections": [{"from": "start", "to": "before"}, {"from": "before", "to": "gate"},
                        {"from": "gate", "to": "after"}],
    }  # fmt: skip


def completions(client: Client, execution_id: str) -> Counter[str]:
    events = client.listed(f"/api/v1/executions/{execution_id}/logs")
    ends = [e["type"] for e in events if e["type"] in
            {"execution.completed", "execution.failed", "execution.cancelled"}]  # fmt: skip
    assert ends == ["execution.completed"], (execution_id, ends)
    return Counter(e["node_id"] for e in events if e["type"] == "node.completed")


def holder_pid(pg_url: str, execution_id: str) -> int | None:
    rows = query(pg_url, "SELECT owner FROM execution_leases WHERE execution_id = $1 "
                 "AND expires_at > now()", uuid.UUID(execution_id))  # fmt: skip
    return int(rows[0]["owner"].split(":")[1]) if rows else None


def leader_pid(redis_url: str) -> int | None:
    with redis.Redis.from_url(redis_url) as raw:
        token = raw.get("linkflow:scheduler:leader")
    return int(token.decode().split(":")[1]) if token else None
