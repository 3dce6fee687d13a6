"""The Redis plane under faults, end to end: `linkflow api`, `linkflow worker` and
`linkflow scheduler` processes on PostgreSQL and on a redis-server of the test's own,
which it kills and starts again on the same port; and workers pinned to priorities
(`linkflow worker --queues`)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests._services import RedisServer, start_redis
from tests.e2e._cluster import (
    Gate,
    client_of,
    cluster,
    cluster_settings,
    completions,
    gated_flow,
    leader_pid,
)
from tests.e2e._serve import Client, execution_of, poll, workflow

pytestmark = pytest.mark.timeout(240)

QUICK = {"name": "quick", "nodes": [
    {"id": "start", "type": "manual"},
    {"id": "mark", "type": "set", "parameters": {"fields": {"ok": True}}},
], "connections": [{"from": "start", "to": "mark"}]}  # fmt: skip


@pytest.fixture
def own_redis() -> Iterator[list[RedisServer]]:
    """A redis-server for this test alone (it is killed); every one started, stopped after."""
    servers = [start_redis()]
    yield servers
    for server in servers:
        server.stop()


def start(client: Client, flow: dict[str, Any], **body: Any) -> httpx.Response:
    return client.call("POST", f"/api/v1/workflows/{flow['id']}/execute", json=body)


def test_redis_killed_and_back_the_api_refuses_starts_serves_reads_and_all_complete(
    tmp_path: Path, pg_url: str, own_redis: list[RedisServer], gate: Gate
) -> None:
    """Redis SIGKILLed while a run holds a worker: a manual run gets 503 queue_unavailable
    with Retry-After (one that raced the outage's discovery is stored and answered 202),
    the lists and details still answer, the held run completes; Redis started again on its
    port (empty): without a restart of any process, new runs and those stored during the
    outage complete, the scheduler leads again, and the worker logged the outage once."""
    first = own_redis[0]
    settings = cluster_settings(pg_url, first.url(), LINKFLOW_HTTP_ALLOW_PRIVATE="true",
                                LINKFLOW_SCHEDULER_LOCK_TTL_S="3")  # fmt: skip
    with cluster(tmp_path, settings) as plane:
        plane.start("api")
        worker = plane.start("worker", "--concurrency", "4")
        scheduler = plane.start("scheduler")
        client = client_of(plane)
        quick = workflow(client, QUICK)
        gated = workflow(client, gated_flow(gate.url))
        held = client.ok("POST", f"/api/v1/workflows/{gated['id']}/execute", 202, json={})
        poll(lambda: gate.calls == 1, "the gated node to run")
        poll(lambda: leader_pid(first.url()) == scheduler.pid, "the scheduler to lead")

        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        stored: list[str] = []

        def refused() -> httpx.Response | None:
            answer = start(client, quick)
            if answer.status_code == 202:  # the outage was not known yet: stored, queued later
                stored.append(answer.json()["id"])
                return None
            return answer

        answer = poll(refused, "a start to be refused")
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "queue_unavailable"
        assert int(answer.headers["Retry-After"]) > 0
        assert len(stored) <= 1, stored
        executions = client.ok("GET", "/api/v1/executions")["data"]
        assert held["id"] in {e["id"] for e in executions}
        assert client.ok("GET", f"/api/v1/executions/{held['id']}")["status"] == "running"
        client.ok("GET", f"/api/v1/executions/{held['id']}/logs")
        gate.opened.set()  # the run the worker holds goes on: it needs the database only
        assert execution_of(client, held["id"], "completed", "failed")["status"] == "completed"
        poll(lambda: b"unreachable" in worker.log.read_bytes(), "the worker to see the outage")
        poll(lambda: b"not leading" in scheduler.log.read_bytes(), "the scheduler to stand down")
        assert start(client, quick).status_code == 503

        own_redis.append(start_redis(port=first.port))
        later = poll(lambda: start(client, quick).json().get("id"), "a start to be accepted")
        for execution_id in [later, *stored]:
            assert execution_of(client, execution_id, "completed", "failed")["status"] == (
                "completed"
            )
        assert completions(client, held["id"]) == {"start": 1, "before": 1, "gate": 1,
                                                   "after": 1}  # fmt: skip
        poll(lambda: leader_pid(first.url()) == scheduler.pid, "the scheduler to lead again")
        poll(lambda: b"reachable again" in worker.log.read_bytes(), "the worker to say so")
        log = worker.log.read_text()
        assert log.count("unreachable") == 1, log[-3000:]
        assert worker.process is not None
        assert worker.process.poll() is None  # alive all along: never restarted


def test_a_worker_pinned_to_high_runs_high_jobs_and_leaves_normal_ones_queued(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    with cluster(tmp_path, cluster_settings(pg_url, redis_url)) as plane:
        plane.start("api")
        plane.start("worker", "--concurrency", "2", "--queues", "high")
        client = client_of(plane)
        quick = workflow(client, QUICK)
        normal = client.ok("POST", f"/api/v1/workflows/{quick['id']}/execute", 202, json={})
        for _ in range(2):  # high runs queued after the normal one still come first
            high = client.ok("POST", f"/api/v1/workflows/{quick['id']}/execute", 202,
                             json={"priority": "high"})  # fmt: skip
            assert execution_of(client, high["id"], "completed", "failed")["status"] == (
                "completed"
            )
        assert client.ok("GET", f"/api/v1/executions/{normal['id']}")["status"] == "queued"
        with redis.Redis.from_url(redis_url) as raw:
            assert raw.xlen("linkflow:queue:normal") == 1
            assert raw.xpending("linkflow:queue:normal", "workers")["pending"] == 0
        plane.start("worker", "--queues", "normal,low")
        assert execution_of(client, normal["id"], "completed", "failed")["status"] == "completed"


def test_an_unknown_priority_in_queues_is_a_clear_cli_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "linkflow", "worker", "--queues", "high,urgent"],
        capture_output=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done
    message = done.stderr.decode()
    assert "--queues" in message
    assert "'urgent'" in message
    assert "high, normal, low" in message
