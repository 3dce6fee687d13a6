"""A `linkflow serve` process for end-to-end tests, and a client of its public API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Serve:
    """A `linkflow serve` process on a data dir that outlives it."""

    def __init__(self, data_dir: Path, **settings: str) -> None:
        self.data_dir = data_dir
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # noqa: TID251 - the child's PATH
            "LINKFLOW_DATA_DIR": str(self.data_dir),
            "LINKFLOW_RATE_LIMIT_ENABLED": "false",
            **self.settings,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "linkflow", "serve", "--port", str(self.port)],
                cwd=self.data_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        poll(lambda: _healthy(self.url), "the server to answer /health")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def children(server: Serve) -> list[int]:
    """The pids of the processes serve started (its SQLite writer, sandbox workers)."""
    assert server.process is not None
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"PPid:\t{server.process.pid}\n" in status.read_text():
                found.append(int(status.parent.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def poll(check: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Client:
    def __init__(self, server: Serve) -> None:
        self.server = server
        self.token = ""

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.request(method, f"{self.server.url}{path}", headers=headers, timeout=30,
                             **kwargs)  # fmt: skip

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def listed(self, path: str, **params: Any) -> list[Any]:
        """Every item of the list at `path` (`{data, next_cursor}`), page by page."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = self.ok("GET", path, params=query)
            items.extend(page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return items


ADA = {"email": "ada@example.com", "password": "correct horse battery"}


def register(client: Client) -> None:
    body = client.ok("POST", "/api/v1/auth/register", 201, json=ADA)
    client.token = body["access_token"]


def workflow(client: Client, doc: dict[str, Any], *, activate: bool = False) -> dict[str, Any]:
    created = client.ok("POST", "/api/v1/workflows", 201, json=doc)
    if activate:
        created = client.ok("POST", f"/api/v1/workflows/{created['id']}/activate")
    return dict(created)


def execution_of(client: Client, execution_id: str, *statuses: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.ok("GET", f"/api/v1/executions/{execution_id}")
        return body if body["status"] in statuses else None

    return dict(poll(done, f"execution {execution_id} to be {statuses}"))


def started(client: Client, execution_id: str, node_id: str) -> bool:
    """Whether the execution's history shows `node_id` started."""
    events = client.listed(f"/api/v1/executions/{execution_id}/logs")
    return any(e["type"] == "node.started" and e["node_id"] == node_id for e in events)
