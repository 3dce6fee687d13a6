"""Tracing across processes: `linkflow api` and `linkflow worker` on PostgreSQL and Redis,
exporting to one OTLP/HTTP receiver on loopback.

The trace crosses from the API process to the worker process inside the job: the job
in the Redis stream carries the `traceparent` of the API's enqueue span, and the
worker's spans continue that trace. With tracing off, the job is what it always was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests._otlp import ExportedSpan, Receiver, receiver
from tests.e2e._cluster import Cluster, Process, cluster, cluster_settings
from tests.e2e._serve import ADA, Client, execution_of, poll, workflow

pytestmark = pytest.mark.timeout(180)

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
HIGH_STREAM = "linkflow:queue:high"
"""Where a webhook's job waits (`queue.redis_keys`: webhooks run at high priority)."""
HOOKED = {
    "name": "hooked",
    "nodes": [
        {"id": "hook", "type": "webhook",
         "parameters": {"path": "in", "method": "POST", "response_mode": "immediately"}},
        {"id": "shape", "type": "set", "parameters": {"fields": {"seen": "{{ json.body.n }}"}}},
    ],
    "connections": [{"from": "hook", "to": "shape"}],
}  # fmt: skip


@pytest.fixture
def otlp() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def plane(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    settings = cluster_settings(pg_url, redis_url, LINKFLOW_LOG_FORMAT="json",
                                LINKFLOW_LOG_LEVEL="debug",
                                OTEL_BSP_SCHEDULE_DELAY="100")  # fmt: skip
    with cluster(tmp_path, settings) as running:
        yield running


def client_of(api: Process) -> Client:
    client = Client(api)  # type: ignore[arg-type]  # duck-typed: it needs only `url`
    answer = client.call("POST", "/api/v1/auth/register", json=ADA)
    if answer.status_code != 201:  # another test of this module registered first
        answer = client.call("POST", "/api/v1/auth/login", json=ADA)
    client.token = answer.json()["access_token"]
    return client


def queued_jobs(redis_url: str) -> list[dict[str, Any]]:
    connection = redis.Redis.from_url(redis_url)
    try:
        entries = connection.xrange(HIGH_STREAM)
    finally:
        connection.close()
    return [json.loads(fields[b"job"]) for _, fields in entries]


def call_hook(client: Client) -> str:
    hook = workflow(client, HOOKED, activate=True)["webhooks"][0]["url"]
    answer = httpx.post(hook, json={"n": 7}, headers={"traceparent": TRACEPARENT}, timeout=30)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


def test_the_trace_crosses_from_the_api_to_the_worker_in_the_job(
    plane: Cluster, otlp: Receiver, redis_url: str
) -> None:
    api = plane.start("api", LINKFLOW_OTLP_ENDPOINT=otlp.endpoint)
    client = client_of(api)
    execution_id = call_hook(client)
    (job,) = queued_jobs(redis_url)  # no worker yet: the job waits in Redis
    assert job["payload"]["execution_id"] == execution_id
    assert job["payload"]["traceparent"].startswith(f"00-{CALLER_TRACE}-")
    worker = plane.start("worker", LINKFLOW_OTLP_ENDPOINT=otlp.endpoint,
                         LINKFLOW_SERVICE_NAME="hooks-worker")  # fmt: skip
    done = execution_of(client, execution_id, "completed", "failed")
    assert done["status"] == "completed", done

    def complete() -> list[ExportedSpan] | None:
        spans = otlp.trace(CALLER_TRACE)
        names = [span.name for span in spans]
        # The job's span ends after its nodes' spans: it may come in a later export.
        done = sum(n.startswith("node ") for n in names) == 2 and "run workflow_execution" in names
        return spans if done else None

    spans = poll(complete, "the worker's spans to be exported")
    by_service: dict[str, set[str]] = {}
    for span in spans:
        by_service.setdefault(span.service, set()).add(span.name)
    assert by_service == {
        "linkflow-api": {"POST /webhooks/{endpoint_id}", "execution.create",
                         "enqueue workflow_execution"},
        "hooks-worker": {"run workflow_execution", "node hook", "node shape"},
    }  # fmt: skip
    enqueued = next(s for s in spans if s.kind == "producer")
    assert job["payload"]["traceparent"] == f"00-{CALLER_TRACE}-{enqueued.span_id}-01"
    ran = next(s for s in spans if s.kind == "consumer")
    assert ran.parent_id == enqueued.span_id
    assert {s.parent_id for s in spans if s.name.startswith("node ")} == {ran.span_id}
    lines = [json.loads(line) for line in worker.log.read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    ours = [line for line in lines if line.get("execution_id") == execution_id]
    assert any(line["event"] == "execution job done" for line in ours), ours
    assert {line.get("trace_id") for line in ours} == {CALLER_TRACE}


def test_without_tracing_the_job_carries_no_trace_context(
    plane: Cluster, otlp: Receiver, redis_url: str
) -> None:
    api = plane.start("api", OTEL_EXPORTER_OTLP_ENDPOINT=otlp.endpoint)
    execution_id = call_hook(client_of(api))
    (job,) = queued_jobs(redis_url)
    # The execution itself rides along (`carry_fresh`), but no trace context.
    assert set(job["payload"]) == {"execution_id", "fresh"}
    assert job["payload"]["execution_id"] == execution_id
    api.stop()  # a tracer would flush its spans now
    assert otlp.exports == []
