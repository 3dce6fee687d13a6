"""How often a webhook execution under `linkflow serve` waits on PostgreSQL.

On loopback a round trip costs about 0.1 ms of waiting and as much again of the
driver's CPU; a webhook execution used to make 16 of them (every statement of its
two group-commit batches waited for its answer), which made serve on PostgreSQL
three times slower than on SQLite at one client (issue 16). The writer now sends a
batch's statements in PostgreSQL's pipeline mode: a batch waits twice (the fence's
reads, then the writes with the commit). A proxy that parses the wire protocol
counts the waits of every connection serve opens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._round_trips import RoundTripProxy, round_trip_proxy
from tests._services import PostgresServer
from tests.e2e._serve import Client, Serve, register, workflow

pytestmark = pytest.mark.postgres

CALLS = 40
MOST_WAITS_PER_EXECUTION = 6.5
"""The writer's four, with room for what else happens meanwhile: serve's background
loops (due schedules, timers, recovery: about ten waits a second when idle) and the
reloads of the webhook's, variables' and subscriptions' caches (one each a second)."""

HOOK = {
    "name": "answer",
    "nodes": [
        {"id": "hook", "type": "webhook",
         "parameters": {"path": "count", "method": "POST", "response_mode": "last_node"}},
        {"id": "shape", "type": "set",
         "parameters": {"fields": {"greeting": "Hello {{ json.body.name }}"},
                        "keep_only_set": True}},
    ],
    "connections": [{"from": "hook", "to": "shape"}],
}  # fmt: skip


@pytest.fixture
def proxy(postgres_server: PostgresServer) -> Iterator[RoundTripProxy]:
    with round_trip_proxy(postgres_server.port) as running:
        yield running


@pytest.fixture
def server(tmp_path: Path, pg_url: str, postgres_server: PostgresServer,
           proxy: RoundTripProxy) -> Iterator[Serve]:  # fmt: skip
    through_proxy = pg_url.replace(f":{postgres_server.port}/", f":{proxy.port}/")
    assert through_proxy != pg_url
    serve = Serve(tmp_path, LINKFLOW_DATABASE_URL=through_proxy)
    serve.start()
    yield serve
    serve.stop()


def test_a_webhook_execution_waits_on_postgresql_about_four_times(
    server: Serve, proxy: RoundTripProxy
) -> None:
    client = Client(server)
    register(client)
    hook_url = workflow(client, HOOK, activate=True)["webhooks"][0]["url"]
    with httpx.Client(timeout=30) as http:

        def call() -> None:
            answer = http.post(hook_url, json={"name": "Ada"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"greeting": "Hello Ada"}

        for _ in range(10):  # connections opened, statements prepared, caches filled
            call()
        proxy.reset()
        started = time.monotonic()
        for _ in range(CALLS):
            call()
        waits, seconds = proxy.waits, time.monotonic() - started
    per_execution = waits / CALLS
    assert per_execution <= MOST_WAITS_PER_EXECUTION, (
        f"{waits} waits on PostgreSQL for {CALLS} webhook executions in {seconds:.2f} s: "
        f"{per_execution:.1f} each"
    )
    # Every execution is whole: its history and its end are stored (the answer came
    # after the end's batch committed).
    listed = client.listed("/api/v1/executions", status="completed")
    assert len(listed) == CALLS + 10
