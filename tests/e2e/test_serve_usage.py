"""Usage survives a SIGKILL of `linkflow serve` (SQLite and PostgreSQL): an execution
killed mid-node and resumed by the restarted process counts once, and each of its node
runs once, in `GET /api/v1/billing/usage`."""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._cluster import Gate, gated_flow
from tests.e2e._serve import ADA, Client, Serve, execution_of, poll, register, started, workflow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Serve]:
    settings = {"LINKFLOW_HTTP_ALLOW_PRIVATE": "true", "LINKFLOW_LEASE_TTL_S": "2"}
    if request.param == "postgres":
        settings |= {
            "LINKFLOW_DATABASE_URL": request.getfixturevalue("pg_url"),
            "LINKFLOW_SECRET_KEY": "s" * 40,
            "LINKFLOW_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        }
    running = Serve(tmp_path, **settings)
    running.start()
    yield running
    running.stop()


def test_an_execution_killed_mid_run_and_resumed_counts_once(server: Serve, gate: Gate) -> None:
    client = Client(server)
    register(client)
    flow = workflow(client, gated_flow(gate.url))
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    poll(lambda: started(client, queued["id"], "gate"), "the gated node to start")
    poll(lambda: gate.calls >= 1, "the gated node to call the gate")
    server.kill()  # `start` and `before` completed and are stored; `gate` is in flight

    server.start()
    client.token = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)["access_token"]
    poll(lambda: gate.calls >= 2, "the restarted process to run the gated node again")
    gate.opened.set()
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done

    events = client.listed(f"/api/v1/executions/{queued['id']}/logs")
    completed = Counter(e["node_id"] for e in events if e["type"] == "node.completed")
    assert completed == {"start": 1, "before": 1, "gate": 1, "after": 1}
    usage = client.ok("GET", "/api/v1/billing/usage")
    assert usage["executions"]["used"] == 1
    assert usage["node_runs"]["used"] == 4, "each node run once, the killed one included"
