"""The Redis plane end to end: `linkflow api`, `linkflow worker` and `linkflow scheduler`
as separate processes on one PostgreSQL and one Redis.

Nodes that must be caught mid-run call a gate on a loopback HTTP server the test
holds (`Gate`): the test knows a node runs when the gate sees its request, and the
node ends only when the test opens the gate, so no timing window is a node's sleep.
"""

from __future__ import annotations

import itertools
import json
import signal
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e._cluster import (
    Cluster,
    Gate,
    client_of,
    cluster,
    cluster_settings,
    completions,
    gated_flow,
    holder_pid,
    leader_pid,
    query,
)
from tests.e2e._serve import EXAMPLES, execution_of, poll, workflow

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def plane(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Cluster]:
    settings = cluster_settings(pg_url, redis_url, LINKFLOW_HTTP_ALLOW_PRIVATE="true",
                                LINKFLOW_SCHEDULER_LOCK_TTL_S="3",
                                LINKFLOW_WORKER_SHUTDOWN_GRACE_S="1")  # fmt: skip
    with cluster(tmp_path, settings) as running:
        yield running


def test_a_webhook_answered_by_a_worker_process_through_the_api(plane: Cluster) -> None:
    """The API process runs no worker: the webhook's execution runs on a worker process
    and its answer comes back over Redis; a manual run completes the same way."""
    plane.start("api")
    plane.start("worker", "--concurrency", "4")
    plane.start("worker", "--concurrency", "4")
    client = client_of(plane)
    greet = workflow(client, json.loads((EXAMPLES / "greet-adults.json").read_text()),
                     activate=True)  # fmt: skip
    (hook,) = greet["webhooks"]
    for name in ("Ada", "Grace", "Edsger"):
        answer = httpx.post(hook["url"], json={"name": name, "age": 36}, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"msg": f"Welcome {name}"}
    manual = workflow(client, {"name": "manual", "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "greet", "type": "set", "parameters": {"fields": {"greeting": "hi"}}},
    ], "connections": [{"from": "start", "to": "greet"}]})  # fmt: skip
    run = client.ok("POST", f"/api/v1/workflows/{manual['id']}/execute", 202, json={})
    done = execution_of(client, run["id"], "completed", "failed")
    assert done["status"] == "completed", done


def test_a_worker_sigkilled_mid_node_is_resumed_by_another_each_node_once(
    plane: Cluster, gate: Gate, pg_url: str
) -> None:
    plane.start("api")
    plane.start("scheduler")
    workers = [plane.start("worker", "--concurrency", "2") for _ in range(2)]
    client = client_of(plane)
    flow = workflow(client, gated_flow(gate.url))
    run = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    poll(lambda: gate.calls == 1, "the gated node to run")
    pid = poll(lambda: holder_pid(pg_url, run["id"]), "the lease's holder")
    (victim,) = [w for w in workers if w.pid == pid]
    victim.signal(signal.SIGKILL)
    victim.wait()
    poll(lambda: gate.calls == 2, "another worker to run the interrupted node again")
    survivor = poll(lambda: holder_pid(pg_url, run["id"]), "the new holder")
    assert survivor != pid
    gate.opened.set()
    done = execution_of(client, run["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert completions(client, run["id"]) == {"start": 1, "before": 1, "gate": 1, "after": 1}


def test_sigterm_hands_running_executions_back_after_the_grace_period(
    plane: Cluster, gate: Gate, pg_url: str
) -> None:
    """The worker stops taking jobs at once, waits its grace period (1 s here) for the
    gated node, then stops it, releases the lease and requeues the job: another worker
    takes it at once (not a lease later), and the stopped worker exits cleanly."""
    plane.start("api")
    first = plane.start("worker", "--concurrency", "2")
    client = client_of(plane)
    flow = workflow(client, gated_flow(gate.url))
    run = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    poll(lambda: gate.calls == 1, "the gated node to run")
    assert holder_pid(pg_url, run["id"]) == first.pid
    second = plane.start("worker", "--concurrency", "2")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0, first.log.read_text()[-3000:]
    # No scheduler runs: only the hand-back can have brought the job to the second worker.
    poll(lambda: gate.calls == 2, "the second worker to take the handed-back execution")
    assert holder_pid(pg_url, run["id"]) == second.pid
    gate.opened.set()
    done = execution_of(client, run["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert completions(client, run["id"]) == {"start": 1, "before": 1, "gate": 1, "after": 1}


def test_sigterm_lets_a_run_that_ends_within_the_grace_period_finish_where_it_is(
    plane: Cluster, gate: Gate, tmp_path: Path
) -> None:
    plane.start("api")
    only = plane.start("worker", "--concurrency", "2", LINKFLOW_WORKER_SHUTDOWN_GRACE_S="30")
    client = client_of(plane)
    flow = workflow(client, gated_flow(gate.url))
    run = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    poll(lambda: gate.calls == 1, "the gated node to run")
    only.signal(signal.SIGTERM)
    poll(lambda: b"shutting down" in only.log.read_bytes(), "the worker to start shutting down")
    later = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    gate.opened.set()
    assert only.wait() == 0
    assert client.ok("GET", f"/api/v1/executions/{run['id']}")["status"] == "completed"
    # The job queued after SIGTERM was not taken: it waits for the next worker.
    assert client.ok("GET", f"/api/v1/executions/{later['id']}")["status"] == "queued"
    assert gate.calls == 1
    plane.start("worker")
    assert execution_of(client, later["id"], "completed", "failed")["status"] == "completed"


def test_redis_emptied_while_executions_are_queued_and_waiting_all_complete(
    plane: Cluster, redis_url: str
) -> None:
    """FLUSHALL with 20 queued executions and 5 waiting on a timer, before any worker
    ran: the scheduler finds them in the database and every one completes."""
    plane.start("api")
    client = client_of(plane)
    quick = workflow(client, {"name": "quick", "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ok": True}}},
    ], "connections": [{"from": "start", "to": "mark"}]})  # fmt: skip
    waits = workflow(client, {"name": "waits", "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "pause", "type": "wait", "parameters": {"seconds": 2}},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ok": True}}},
    ], "connections": [{"from": "start", "to": "pause"},
                       {"from": "pause", "to": "mark"}]})  # fmt: skip
    plane.start("worker", "--concurrency", "8")
    waiting = [client.ok("POST", f"/api/v1/workflows/{waits['id']}/execute", 202, json={})["id"]
               for _ in range(5)]  # fmt: skip
    for execution_id in waiting:
        execution_of(client, execution_id, "waiting")
    plane.processes[-1].stop()  # no worker: what is queued now stays queued
    queued = [client.ok("POST", f"/api/v1/workflows/{quick['id']}/execute", 202, json={})["id"]
              for _ in range(20)]  # fmt: skip
    with redis.Redis.from_url(redis_url) as raw:
        assert raw.xlen("linkflow:queue:normal") >= 20
        raw.flushall()
    plane.start("scheduler")
    plane.start("worker", "--concurrency", "8")
    for execution_id in [*queued, *waiting]:
        assert execution_of(client, execution_id, "completed", "failed")["status"] == "completed"


def test_the_follower_scheduler_takes_over_and_no_tick_fires_twice_or_is_lost(
    plane: Cluster, redis_url: str, pg_url: str
) -> None:
    """A cron schedule every second; two schedulers with a 3 s lock. The leader is
    SIGKILLed: the follower leads within the lock's time (plus its next try), and the
    ticks of the gap fire late but each once: scheduled_at runs second by second, with
    no duplicate and no hole."""
    plane.start("api")
    plane.start("worker", "--concurrency", "8")
    schedulers = [plane.start("scheduler"), plane.start("scheduler")]
    client = client_of(plane)
    flow = workflow(client, {"name": "every second", "nodes": [
        {"id": "tick", "type": "schedule", "parameters": {"cron": "* * * * * *"}},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ok": True}}},
    ], "connections": [{"from": "tick", "to": "mark"}]}, activate=True)  # fmt: skip

    def ticks() -> list[str]:
        rows = query(pg_url, "SELECT input->>'scheduled_at' AS at FROM executions "
                     "WHERE workflow_id = $1", uuid.UUID(flow["id"]))  # fmt: skip
        return [row["at"] for row in rows]

    poll(lambda: len(ticks()) >= 3, "three ticks from the first leader")
    pid = leader_pid(redis_url)
    (leader,) = [s for s in schedulers if s.pid == pid]
    (follower,) = [s for s in schedulers if s.pid != pid]
    leader.signal(signal.SIGKILL)
    leader.wait()
    before = len(ticks())
    poll(lambda: leader_pid(redis_url) == follower.pid, "the follower to lead", deadline_s=6)
    poll(lambda: len(ticks()) >= before + 5, "ticks from the new leader")
    client.ok("POST", f"/api/v1/workflows/{flow['id']}/deactivate")
    fired = sorted(ticks())
    assert len(fired) == len(set(fired)), "a tick fired twice"
    seconds = [datetime.fromisoformat(at) for at in fired]
    gaps = {(later - earlier).total_seconds() for earlier, later in itertools.pairwise(seconds)}
    assert gaps == {1.0}, f"ticks missing: {fired}"


async def test_live_events_of_a_run_on_a_worker_reach_a_websocket_on_another_api(
    plane: Cluster, gate: Gate
) -> None:
    """Created through api-1, run on a worker, watched on api-2 over /ws: the events come
    in order over Redis; after a forced disconnect mid-run, a resubscription with the last
    seq seen gives every later event once, the rest of the run live."""
    from websockets.asyncio.client import connect

    from tests.e2e.test_serve_ws import frame, send, until_end, ws_url

    plane.start("api")
    second = plane.start("api")
    plane.start("worker", "--concurrency", "2")
    client = client_of(plane)
    flow = workflow(client, gated_flow(gate.url))
    watcher = second  # the process that did not create the execution
    async with connect(ws_url(watcher, client.token), open_timeout=30) as ws:  # type: ignore[arg-type]
        workspace = client.ok("GET", "/api/v1/workspaces/current")["id"]
        await send(ws, {"type": "subscribe", "channel": f"workspace.{workspace}"})
        assert (await frame(ws))["type"] == "subscribed"
        run = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
        seen = []
        while not (seen and seen[-1]["event"] == "node.started"
                   and seen[-1]["data"].get("node_id") == "gate"):  # fmt: skip
            seen.append(await frame(ws))
    last_seq = seen[-1]["data"]["seq"]
    async with connect(ws_url(watcher, client.token), open_timeout=30) as ws:  # type: ignore[arg-type]
        channel = f"execution.{run['id']}"
        await send(ws, {"type": "subscribe", "channel": channel, "after_seq": last_seq})
        assert await frame(ws) == {"type": "subscribed", "channel": channel}
        gate.opened.set()
        rest = await until_end(ws)
    seqs = [e["data"]["seq"] for e in seen] + [e["seq"] for e in rest]
    stored = client.listed(f"/api/v1/executions/{run['id']}/logs")
    # Live from execution.started (seq 2: the API stored execution.queued before the job
    # existed); the rest after the reconnection; together the whole stored history.
    assert seqs == [e["seq"] for e in stored][1:], (seqs, stored)
    assert rest[-1]["event"] == "execution.completed"


def scrape(port: int) -> dict[str, float]:
    """The samples of a /metrics page, by name with labels as Prometheus prints them."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_worker_and_scheduler_metrics_move_with_the_work(plane: Cluster, gate: Gate) -> None:
    from tests.e2e._serve import free_port

    worker_port, scheduler_port = free_port(), free_port()
    plane.start("api")
    plane.start("worker", "--concurrency", "4", "--metrics-port", str(worker_port))
    plane.start("scheduler", "--metrics-port", str(scheduler_port))
    client = client_of(plane)
    quick = workflow(client, {"name": "quick", "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "mark", "type": "set", "parameters": {"fields": {"ok": True}}},
    ], "connections": [{"from": "start", "to": "mark"}]})  # fmt: skip
    for _ in range(5):
        run = client.ok("POST", f"/api/v1/workflows/{quick['id']}/execute", 202, json={})
        execution_of(client, run["id"], "completed")
    done = 'linkflow_jobs_total{outcome="done",type="workflow_execution"}'
    poll(lambda: scrape(worker_port).get(done, 0) >= 5, "five jobs counted done")
    gated = workflow(client, gated_flow(gate.url))
    client.ok("POST", f"/api/v1/workflows/{gated['id']}/execute", 202, json={})
    poll(lambda: gate.calls == 1, "the gated node to run")
    poll(lambda: scrape(worker_port).get("linkflow_jobs_active") == 1, "one job active")
    # A 2 s lease is renewed every 2/3 s while the gate holds the run.
    poll(lambda: scrape(worker_port).get("linkflow_lease_renewals_total", 0) >= 2,
         "lease renewals")  # fmt: skip
    poll(lambda: 'linkflow_queue_depth{state="normal"}' in scrape(worker_port), "queue depth")
    poll(lambda: scrape(scheduler_port).get("linkflow_scheduler_leading") == 1,
         "the only scheduler to lead")  # fmt: skip
    gate.opened.set()
    poll(lambda: scrape(worker_port).get(done, 0) >= 6, "the gated job counted done")
    assert scrape(worker_port)["linkflow_jobs_active"] == 0


def test_an_execution_cancelled_while_its_job_waits_never_runs(
    plane: Cluster, gate: Gate, redis_url: str
) -> None:
    """The job of a new execution carries it (the worker starts without reading it back);
    cancelled before any worker took it, it must still not run when one does."""
    plane.start("api")
    client = client_of(plane)
    flow = workflow(client, gated_flow(gate.url))
    run = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    with redis.Redis.from_url(redis_url) as raw:
        (entry,) = raw.xrange("linkflow:queue:normal")
    assert b'"fresh"' in entry[1][b"job"]  # the job carries the new execution
    client.ok("POST", f"/api/v1/executions/{run['id']}/cancel", json={})
    assert execution_of(client, run["id"], "cancelled")["status"] == "cancelled"
    plane.start("worker")
    later = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    poll(lambda: gate.calls == 1, "the later execution to reach the gate")
    gate.opened.set()
    assert execution_of(client, later["id"], "completed")["status"] == "completed"
    assert gate.calls == 1  # the cancelled one never ran
    assert client.ok("GET", f"/api/v1/executions/{run['id']}")["status"] == "cancelled"
