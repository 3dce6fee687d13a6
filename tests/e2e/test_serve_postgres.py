"""Two `linkflow serve` processes on one PostgreSQL: the second starts while the first
runs executions, and one is SIGKILLed mid-node while the other runs on."""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._serve import ADA, Client, Serve, execution_of, poll, register, started, workflow


def slow(seconds: float) -> dict[str, Any]:
    return {
        "name": "slow",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "slow", "type": "code",
             "parameters": {"code": f"import time\ntime.sleep({seconds})\nreturn items"}},
            {"id": "after", "type": "set", "parameters": {"fields": {"done": True}}},
        ],
        "connections": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "after"}],
    }  # fmt: skip


@pytest.fixture
def shared(pg_url: str) -> dict[str, str]:
    """Settings both processes share: the database, the keys, a short lease."""
    return {
        "LINKFLOW_DATABASE_URL": pg_url,
        "LINKFLOW_SECRET_KEY": "s" * 40,
        "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "LINKFLOW_LEASE_TTL_S": "2",
    }


@pytest.fixture
def pair(tmp_path: Path, shared: dict[str, str]) -> Iterator[tuple[Serve, Serve]]:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Serve(tmp_path / "a", **shared), Serve(tmp_path / "b", **shared)
    yield first, second
    first.stop()
    second.stop()


def login(server: Serve) -> Client:
    client = Client(server)
    client.token = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)["access_token"]
    return client


def each_ran_once(client: Client, execution_id: str) -> None:
    events = client.listed(f"/api/v1/executions/{execution_id}/logs")
    completed = Counter(e["node_id"] for e in events if e["type"] == "node.completed")
    assert completed == {"start": 1, "slow": 1, "after": 1}, (execution_id, completed)
    ends = [e["type"] for e in events if e["type"].startswith("execution.") and
            e["type"] in {"execution.completed", "execution.failed", "execution.cancelled"}]
    assert ends == ["execution.completed"], (execution_id, ends)


@pytest.mark.parametrize("round_", range(3))
def test_a_second_serve_started_mid_run_leaves_every_execution_completed_once(
    pair: tuple[Serve, Serve], round_: int
) -> None:
    """Twelve executions run on A; B starts on the same database meanwhile (its start-up
    recovery sees them all): every execution completes once, each node once."""
    first, second = pair
    first.start()
    client = Client(first)
    if not _registered(client):
        register(client)
    flow = workflow(client, slow(0.4))
    ids = [client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})["id"]
           for _ in range(12)]  # fmt: skip
    poll(lambda: started(client, ids[0], "slow"), "the first run to reach its slow node")
    second.start()
    other = login(second)
    for execution_id in ids:
        done = execution_of(other, execution_id, "completed", "failed", "cancelled")
        assert done["status"] == "completed", done
        each_ran_once(other, execution_id)


def test_a_serve_killed_mid_node_is_resumed_by_the_other_after_its_lease(
    pair: tuple[Serve, Serve],
) -> None:
    """A runs the slow node (3 s) and is SIGKILLed; B, running all along, resumes the execution
    from its history once A's lease expired: the slow node runs again, `start` does not."""
    first, second = pair
    first.start()
    second.start()
    client = Client(first)
    if not _registered(client):
        register(client)
    flow = workflow(client, slow(3))
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    poll(lambda: started(client, queued["id"], "slow"), "the slow node to start on A")
    first.kill()
    other = login(second)
    done = execution_of(other, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done
    events: list[dict[str, Any]] = other.listed(f"/api/v1/executions/{queued['id']}/logs")
    starts = Counter(e["node_id"] for e in events if e["type"] == "node.started")
    assert starts["start"] == 1
    assert starts["slow"] == 2  # interrupted on A, run again on B
    each_ran_once(other, queued["id"])


def _registered(client: Client) -> bool:
    """The module shares one database: Ada may exist from an earlier test."""
    response = client.call("POST", "/api/v1/auth/login", json=ADA)
    if response.status_code != 200:
        return False
    client.token = response.json()["access_token"]
    return True
