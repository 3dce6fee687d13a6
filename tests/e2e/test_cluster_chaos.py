"""Chaos on the Redis plane: 500 executions of 5 nodes (some waiting on a timer, some
calling a sub-workflow) across 3 `linkflow worker` processes; one worker is SIGKILLed
while it holds executions, another SIGTERMed while it holds executions. Every
execution completes exactly once, every node of it completed once, none is lost or
stuck. Checked on the stored histories (PostgreSQL), not on what the processes say."""

from __future__ import annotations

import itertools
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e._cluster import client_of, cluster, cluster_settings, query
from tests.e2e._serve import poll, workflow

pytestmark = pytest.mark.timeout(420)

EXECUTIONS = 500
MIX = {1: 1, 2: 2}
"""Of every ten executions, which flow (by index) runs, when not the plain one."""


def linear(name: str, middle: dict[str, Any]) -> dict[str, Any]:
    """manual → one → <middle> → three → four: five nodes."""
    nodes = [
        {"id": "start", "type": "manual"},
        {"id": "one", "type": "set", "parameters": {"fields": {"one": 1}}},
        {"id": "middle", **middle},
        {"id": "three", "type": "set", "parameters": {"fields": {"three": 3}}},
        {"id": "four", "type": "set", "parameters": {"fields": {"four": 4}}},
    ]
    ids = [node["id"] for node in nodes]
    return {"name": name, "nodes": nodes,
            "connections": [{"from": a, "to": b} for a, b in itertools.pairwise(ids)]}  # fmt: skip


def leases_of(pg_url: str, pid: int) -> int:
    rows = query(pg_url, "SELECT count(*) AS n FROM execution_leases "
                 "WHERE owner LIKE $1 AND expires_at > now()", f"%:{pid}:%")  # fmt: skip
    return int(rows[0]["n"])


def statuses(pg_url: str) -> dict[str, int]:
    rows = query(pg_url, "SELECT status::text AS status, count(*) AS n FROM executions "
                 "GROUP BY status")  # fmt: skip
    return {row["status"].lower(): int(row["n"]) for row in rows}


def test_500_executions_survive_a_sigkilled_and_a_sigtermed_worker(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    settings = cluster_settings(pg_url, redis_url, LINKFLOW_WORKER_SHUTDOWN_GRACE_S="1")
    with cluster(tmp_path, settings) as plane:
        plane.start("api")
        plane.start("scheduler")
        workers = [plane.start("worker", "--concurrency", "16") for _ in range(3)]
        client = client_of(plane)
        child = workflow(client, {"name": "child", "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "mark", "type": "set", "parameters": {"fields": {"child": True}}},
        ], "connections": [{"from": "start", "to": "mark"}]})  # fmt: skip
        flows = [
            workflow(client, linear("plain", {"type": "set", "parameters": {"fields": {"n": 2}}})),
            workflow(client, linear("waits", {"type": "wait", "parameters": {"seconds": 1}})),
            workflow(client, linear("calls", {"type": "execute_workflow",
                                              "parameters": {"workflow_id": child["id"]}})),
        ]  # fmt: skip
        started: list[str] = []

        def start_all() -> None:
            # One in ten waits, one in ten calls a child, the rest run straight through.
            for n in range(EXECUTIONS):
                flow = flows[MIX.get(n % 10, 0)]
                started.append(client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute",
                                         202, json={})["id"])  # fmt: skip

        # Started from a thread while the workers run them: the kills below land while
        # executions are being created and run, not after the workers drained them.
        starter = threading.Thread(target=start_all)
        starter.start()
        killed, stopped = workers[0], workers[1]
        poll(lambda: leases_of(pg_url, killed.pid) > 0, "the first worker to hold executions")
        killed.signal(signal.SIGKILL)
        killed.wait()
        poll(lambda: leases_of(pg_url, stopped.pid) > 0, "the second worker to hold executions")
        stopped.signal(signal.SIGTERM)
        assert stopped.wait(60) == 0, stopped.log.read_text()[-3000:]
        starter.join(timeout=120)
        assert len(started) == EXECUTIONS

        def settled() -> bool:
            counts = statuses(pg_url)
            return counts.get("completed", 0) >= EXECUTIONS and not (set(counts) - {"completed"})

        poll(settled, "every execution to complete", deadline_s=300)

        ends = query(pg_url, """
            SELECT e.id, count(*) FILTER (WHERE v.type = 'execution.completed') AS completed,
                   count(*) FILTER (WHERE v.type IN ('execution.failed', 'execution.cancelled'))
                       AS other
            FROM executions e JOIN execution_events v ON v.execution_id = e.id
            GROUP BY e.id""")  # fmt: skip
        assert {row["id"] for row in ends} >= {uuid.UUID(i) for i in started}
        assert all(row["completed"] == 1 and row["other"] == 0 for row in ends), [
            row for row in ends if row["completed"] != 1 or row["other"]][:5]  # fmt: skip
        twice = query(
            pg_url,
            """
            SELECT execution_id, node_id, count(*) AS n FROM execution_events
            WHERE type = 'node.completed' GROUP BY execution_id, node_id HAVING count(*) > 1""",
        )
        assert twice == [], twice[:5]
        nodes = query(pg_url, """
            SELECT e.workflow_id, count(DISTINCT v.node_id) AS n FROM executions e
            JOIN execution_events v ON v.execution_id = e.id AND v.type = 'node.completed'
            WHERE e.id = ANY($1::uuid[]) GROUP BY e.id, e.workflow_id""",
            [uuid.UUID(i) for i in started])  # fmt: skip
        assert {row["n"] for row in nodes} == {5}
