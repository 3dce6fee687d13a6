"""Liveness and readiness as an orchestrator probes them: `linkflow serve`'s, and those of
`linkflow api`, `worker` and `scheduler` (the last two on their metrics port), while the
database stops taking writes or Redis goes away, and after."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._services import RedisServer, start_redis
from tests.e2e._cluster import cluster, cluster_settings
from tests.e2e._serve import Serve, free_port, poll

LIVE = {"status": "ok", "checks": {}}


def probe(url: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(url, timeout=10)
    return response.status_code, response.json()


def not_ready(url: str, part: str) -> dict[str, Any] | None:
    """The 503 problem of `url` once `part` is reported failing, else None."""
    status, body = probe(url)
    if status == 503 and body.get("checks", {}).get(part, "ok") != "ok":
        return body
    return None


def ready(url: str) -> dict[str, Any] | None:
    """The 200 body of `url`, else None."""
    status, body = probe(url)
    return body if status == 200 else None


def test_serve_is_not_ready_while_its_writer_cannot_commit_and_ready_again_after(
    server: Serve,
) -> None:
    """Another connection holds SQLite's write lock: the writer's probe batch cannot
    commit, so /health/ready answers 503 naming the writer (the database itself still
    answers reads), /health/live stays 200; released, ready is 200 again."""
    status, body = probe(f"{server.url}/health/ready")
    assert status == 200, body
    assert body["checks"] == {"database": "ok", "writer": "ok"}
    blocker = sqlite3.connect(server.data_dir / "linkflow.db", timeout=1)
    blocker.isolation_level = None
    blocker.execute("BEGIN IMMEDIATE")
    try:
        body = poll(lambda: not_ready(f"{server.url}/health/ready", "writer"),
                    "readiness to name the writer")  # fmt: skip
        assert body["code"] == "not_ready"
        assert body["checks"]["database"] == "ok"
        assert "writer" in body["detail"]
        assert probe(f"{server.url}/health/live") == (200, LIVE)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    poll(lambda: probe(f"{server.url}/health/ready")[0] == 200, "readiness to come back")


@pytest.fixture
def own_redis() -> Iterator[list[RedisServer]]:
    """A redis-server for this test alone (it is stopped); every one started, stopped after."""
    servers = [start_redis()]
    yield servers
    for running in servers:
        running.stop()


def test_api_worker_and_scheduler_answer_probes_and_name_redis_while_it_is_away(
    tmp_path: Path, pg_url: str, own_redis: list[RedisServer]
) -> None:
    """Each process is live and ready with database, Redis and writer (and the worker's
    loop) ok; with Redis stopped each is live and not ready, naming Redis, with
    Retry-After; with Redis back, each is ready again by itself. /metrics still answers
    on the workers' and schedulers' port."""
    redis = own_redis[0]
    worker_port, scheduler_port = free_port(), free_port()
    with cluster(tmp_path, cluster_settings(pg_url, redis.url())) as plane:
        api = plane.start("api")
        plane.start("worker", "--metrics-port", str(worker_port))
        plane.start("scheduler", "--metrics-port", str(scheduler_port))
        worker = f"http://127.0.0.1:{worker_port}"
        scheduler = f"http://127.0.0.1:{scheduler_port}"
        expected = {
            f"{api.url}/health/ready": {"database", "redis", "writer"},
            f"{worker}/health/ready": {"database", "redis", "writer", "worker"},
            f"{scheduler}/health/ready": {"database", "redis", "writer"},
        }
        for url, parts in expected.items():
            body = poll(partial(ready, url), f"{url} to be ready")
            assert body["checks"] == dict.fromkeys(parts, "ok"), (url, body)
        for base in (worker, scheduler):
            assert probe(f"{base}/health/live") == (200, LIVE)
            assert "linkflow_" in httpx.get(f"{base}/metrics", timeout=10).text

        redis.stop()
        for url in expected:
            body = poll(partial(not_ready, url, "redis"), f"{url} to name Redis")
            assert body["code"] == "not_ready", body
            assert body["checks"]["database"] == "ok", body
            assert httpx.get(url, timeout=10).headers["retry-after"] == "5"
        for base in (api.url, worker, scheduler):
            assert probe(f"{base}/health/live") == (200, LIVE)

        own_redis.append(start_redis(port=redis.port))
        for url in expected:
            poll(partial(ready, url), f"{url} to be ready again")
