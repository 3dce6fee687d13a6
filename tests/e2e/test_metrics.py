"""The metrics an operator scrapes move with the work: `linkflow serve`'s `/metrics`, and
the Redis plane's processes (`linkflow api`'s `/metrics`, `linkflow worker
--metrics-port`, `linkflow scheduler --metrics-port`) after real runs.

The names checked here are those deploy/grafana and deploy/prometheus use
(tests/unit/test_deploy_monitoring.py checks that they use no other).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from tests.e2e._cluster import (
    Cluster,
    Gate,
    client_of,
    cluster,
    cluster_settings,
    gated_flow,
    query,
)
from tests.e2e._serve import (
    DEADLINE_S,
    EXAMPLES,
    Client,
    Serve,
    execution_of,
    free_port,
    poll,
    register,
    workflow,
)

pytestmark = pytest.mark.timeout(240)

QUICK = {
    "name": "quick",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ok": True}}},
    ],
    "connections": [{"from": "start", "to": "mark"}],
}
FAILING = {
    "name": "failing",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "boom", "type": "stop_and_error", "parameters": {"message": "no"}},
    ],
    "connections": [{"from": "start", "to": "boom"}],
}
WAITING = {
    "name": "waiting",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
    ],
    "connections": [{"from": "start", "to": "approval"}],
}
TICKING = {
    "name": "tick",
    "nodes": [
        {"id": "every", "type": "schedule", "parameters": {"interval_s": 1}},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ticked": True}}},
    ],
    "connections": [{"from": "every", "to": "mark"}],
}


def samples(url: str) -> dict[str, float]:
    """The samples of a /metrics page, parsed by prometheus-client's own parser, keyed
    `name{label="value",...}` with the labels sorted (no labels: the bare name)."""
    text = httpx.get(url, timeout=5).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def reaches(url: str, name: str, at_least: float = 1) -> bool:
    return samples(url).get(name, 0) >= at_least


def test_serve_counts_executions_nodes_batches_the_queue_the_scheduler_and_connections(
    server: Serve,
) -> None:
    metrics = f"{server.url}/metrics"
    client = Client(server)
    register(client)
    greet = workflow(client, json.loads((EXAMPLES / "greet-adults.json").read_text()),
                     activate=True)  # fmt: skip
    (hook,) = greet["webhooks"]
    for name in ("Ada", "Grace", "Edsger"):
        answer = httpx.post(hook["url"], json={"name": name, "age": 36}, timeout=30)
        assert answer.status_code == 200, answer.text
    failing = workflow(client, FAILING)
    run = client.ok("POST", f"/api/v1/workflows/{failing['id']}/execute", 202, json={})
    execution_of(client, run["id"], "failed")
    waiting = workflow(client, WAITING)
    held = client.ok("POST", f"/api/v1/workflows/{waiting['id']}/execute", 202, json={})
    execution_of(client, held["id"], "waiting")

    finished = 'linkflow_executions_finished_total{status="%s",trigger="%s"}'
    poll(lambda: reaches(metrics, finished % ("completed", "webhook"), 3), "3 webhook runs")
    poll(lambda: reaches(metrics, finished % ("failed", "manual")), "the failed run")
    seen = samples(metrics)
    assert seen[finished % ("completed", "webhook")] == 3
    assert seen[finished % ("failed", "manual")] == 1
    assert seen['linkflow_executions_started_total{trigger="webhook"}'] == 3
    # The failed run and the waiting one started; the waiting one has not finished.
    assert seen['linkflow_executions_started_total{trigger="manual"}'] == 2
    assert seen['linkflow_execution_duration_seconds_count{trigger="webhook"}'] == 3
    assert seen['linkflow_execution_duration_seconds_sum{trigger="webhook"}'] > 0
    # greet-adults: webhook, if, one set (adult), merge per run.
    assert seen['linkflow_node_duration_seconds_count{type="if"}'] == 3
    assert seen['linkflow_node_runs_total{status="completed",type="set"}'] == 3
    assert seen['linkflow_node_runs_total{status="failed",type="stop_and_error"}'] == 1
    assert seen["linkflow_writer_batch_ops_count"] > 0
    assert seen["linkflow_writer_batch_ops_sum"] >= seen["linkflow_writer_batch_ops_count"]
    assert seen["linkflow_writer_batch_seconds_sum"] > 0
    assert seen['linkflow_jobs_total{outcome="done",type="workflow_execution"}'] >= 5
    assert seen["linkflow_scheduler_leading"] == 1
    assert 'http_requests_total{method="POST",route="/api/v1/workflows",status="201"}' in seen
    # Read every few seconds: present once the first read is done, and nothing waits.
    poll(lambda: 'linkflow_queue_oldest_age_seconds{priority="normal"}' in samples(metrics),
         "the queue's ages")  # fmt: skip
    seen = samples(metrics)
    assert seen['linkflow_queue_oldest_age_seconds{priority="normal"}'] == 0
    assert seen['linkflow_queue_depth{state="normal"}'] == 0

    live = 'linkflow_live_connections{kind="%s"}'
    assert samples(metrics)[live % "sse"] == samples(metrics)[live % "ws"] == 0
    headers = {"Authorization": f"Bearer {client.token}"}
    with httpx.stream("GET", f"{server.url}/api/v1/executions/{held['id']}/events",
                      headers=headers, timeout=DEADLINE_S) as stream:  # fmt: skip
        chunks = stream.iter_bytes()  # kept: a dropped iterator closes the stream
        next(chunks)  # the history: the stream is open, the run still waits
        poll(lambda: samples(metrics)[live % "sse"] == 1, "the open event stream counted")
    poll(lambda: samples(metrics)[live % "sse"] == 0, "the closed event stream uncounted")
    ws_url = server.url.replace("http://", "ws://") + f"/ws?token={client.token}"
    with connect(ws_url, open_timeout=DEADLINE_S) as ws:
        ws.send('{"type": "ping"}')
        assert json.loads(ws.recv(timeout=DEADLINE_S)) == {"type": "pong"}
        poll(lambda: samples(metrics)[live % "ws"] == 1, "the open WebSocket counted")
    poll(lambda: samples(metrics)[live % "ws"] == 0, "the closed WebSocket uncounted")

    workflow(client, TICKING, activate=True)
    poll(lambda: reaches(metrics, "linkflow_scheduler_ticks_fired_total"), "a tick fired")
    poll(lambda: reaches(metrics, 'linkflow_executions_started_total{trigger="schedule"}'),
         "the tick's execution run")  # fmt: skip
    assert samples(metrics)["linkflow_scheduler_ticks_missed_total"] == 0


@pytest.fixture
def plane(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    # A catch-up window of 1 s: a scheduler away for a few seconds misses ticks.
    settings = cluster_settings(pg_url, redis_url, LINKFLOW_HTTP_ALLOW_PRIVATE="true",
                                LINKFLOW_SCHEDULER_LOCK_TTL_S="3",
                                LINKFLOW_SCHEDULE_CATCH_UP_S="1")  # fmt: skip
    with cluster(tmp_path, settings) as running:
        yield running


def test_the_redis_planes_processes_export_what_each_does(
    plane: Cluster, gate: Gate, pg_url: str
) -> None:
    """A job that waits for the only worker slot ages in the queue, then runs; the worker
    counts runs, node durations, batches and leases, the API its own batches and event
    streams, the scheduler its lead, its ticks and the ticks it missed while away."""
    worker_port = free_port()
    worker = f"http://127.0.0.1:{worker_port}/metrics"
    plane.start("api")
    api = f"{plane.processes[0].url}/metrics"
    plane.start("worker", "--concurrency", "1", "--metrics-port", str(worker_port))
    client = client_of(plane)
    gated = workflow(client, gated_flow(gate.url))
    quick = workflow(client, QUICK)
    first = client.ok("POST", f"/api/v1/workflows/{gated['id']}/execute", 202, json={})
    poll(lambda: gate.calls == 1, "the gated node to run")
    second = client.ok("POST", f"/api/v1/workflows/{quick['id']}/execute", 202, json={})
    oldest = 'linkflow_queue_oldest_age_seconds{priority="normal"}'
    poll(lambda: samples(worker).get(oldest, 0) > 0, "the waiting job's age")
    assert samples(worker)['linkflow_queue_depth{state="normal"}'] == 1
    headers = {"Authorization": f"Bearer {client.token}"}
    with httpx.stream("GET", f"{plane.processes[0].url}/api/v1/executions/{second['id']}/events",
                      headers=headers, timeout=DEADLINE_S) as stream:  # fmt: skip
        chunks = stream.iter_bytes()
        next(chunks)
        poll(lambda: samples(api)['linkflow_live_connections{kind="sse"}'] == 1, "the stream")
    gate.opened.set()
    for run in (first, second):
        execution_of(client, run["id"], "completed")
    poll(lambda: samples(worker)[oldest] == 0, "the queue's age back to 0")
    finished = 'linkflow_executions_finished_total{status="completed",trigger="manual"}'
    poll(lambda: reaches(worker, finished, 2), "both runs counted")
    seen = samples(worker)
    assert seen['linkflow_executions_started_total{trigger="manual"}'] == 2
    assert seen['linkflow_execution_duration_seconds_count{trigger="manual"}'] == 2
    # The gated node held its run while the test waited for the age: it took longest.
    assert seen['linkflow_node_duration_seconds_count{type="http_request"}'] == 1
    assert seen['linkflow_node_duration_seconds_sum{type="http_request"}'] > \
        seen['linkflow_node_duration_seconds_sum{type="set"}']  # fmt: skip
    assert seen["linkflow_writer_batch_ops_count"] > 0
    assert seen["linkflow_lease_renewals_total"] >= 1
    assert seen["linkflow_lease_losses_total"] == 0
    created = samples(api)
    assert created["linkflow_writer_batch_ops_count"] >= 2  # it created both executions
    assert created['linkflow_live_connections{kind="sse"}'] == 0

    scheduler_port = free_port()
    scheduler = f"http://127.0.0.1:{scheduler_port}/metrics"
    first_scheduler = plane.start("scheduler", "--metrics-port", str(scheduler_port))
    poll(lambda: reaches(scheduler, "linkflow_scheduler_leading"), "the scheduler to lead")
    workflow(client, TICKING, activate=True)
    poll(lambda: reaches(scheduler, "linkflow_scheduler_ticks_fired_total"), "a tick fired")
    poll(lambda: reaches(worker, 'linkflow_executions_started_total{trigger="schedule"}'),
         "the tick's execution run")  # fmt: skip
    first_scheduler.signal(signal.SIGTERM)
    assert first_scheduler.wait() == 0

    def overdue_s() -> float:
        (row,) = query(pg_url, "SELECT next_run_at FROM schedules")
        return (datetime.now(UTC) - row["next_run_at"]).total_seconds()

    # Away for 3 s past a tick, with a catch-up window of 1 s: ticks were missed.
    poll(lambda: overdue_s() > 3, "the schedule to be overdue")
    plane.start("scheduler", "--metrics-port", str(scheduler_port))
    poll(lambda: reaches(scheduler, "linkflow_scheduler_ticks_missed_total", 2),
         "the missed ticks counted")  # fmt: skip
    assert samples(scheduler)["linkflow_scheduler_leading"] == 1
