"""Outgoing webhooks from a real `linkflow serve` process to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linkflow.services.webhook_signatures import signature
from tests._http_server import Recorded, Reply, TestServer, serve
from tests.e2e._serve import Client, Serve, execution_of, poll, register, workflow

MANUAL = {
    "name": "Reported flow",
    "nodes": [
        {"id": "start", "type": "manual"},
        {"id": "mark", "type": "set", "parameters": {"fields": {"done": True}}},
    ],
    "connections": [{"from": "start", "to": "mark"}],
}


class Receiver:
    """Answers 500 while `failures` calls remain, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lock = threading.Lock()

    def __call__(self, _request: Recorded) -> Reply:
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                return Reply(500, "try later")
        return Reply(200, "thanks")


@pytest.fixture
def receiver() -> Iterator[tuple[TestServer, Receiver]]:
    route = Receiver(2)
    with serve({"/hook": route}) as server:
        yield server, route


def started(tmp_path: Path, backoff_s: str) -> Serve:
    running = Serve(tmp_path, LINKFLOW_HTTP_ALLOW_PRIVATE="true",
                    LINKFLOW_DELIVERY_BACKOFF_S=backoff_s)  # fmt: skip
    running.start()
    return running


def delivery_of(client: Client, subscription_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = client.listed(f"/api/v1/webhook-subscriptions/{subscription_id}/deliveries")
        return found[0] if found and found[0]["status"] == status else None

    return dict(poll(reached, f"the delivery to be {status}"))


def test_serve_delivers_a_signed_event_after_the_receiver_failed_twice(
    tmp_path: Path, receiver: tuple[TestServer, Receiver]
) -> None:
    server, _ = receiver
    running = started(tmp_path, "0.05")
    try:
        client = Client(running)
        register(client)
        subscription = client.ok("POST", "/api/v1/webhook-subscriptions", 201, json={
            "url": server.url("/hook"), "events": ["execution.completed"],
        })  # fmt: skip
        flow = workflow(client, MANUAL)
        queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
        execution_of(client, queued["id"], "completed")
        delivered = delivery_of(client, subscription["id"], "succeeded")
    finally:
        running.stop()
    assert delivered["attempts"] == 3
    hits = server.hits("/hook")
    assert len(hits) == 3
    last = hits[-1]
    stamp = int(last.headers["x-linkflow-timestamp"])
    assert last.headers["x-linkflow-signature"] == signature(
        subscription["secret"].encode(), stamp, last.body
    )
    body = json.loads(last.body)
    assert body["event"] == "execution.completed"
    assert body["data"]["execution"]["id"] == queued["id"]
    assert {hit.headers["x-linkflow-delivery"] for hit in hits} == {delivered["id"]}


def test_a_delivery_being_retried_when_serve_is_killed_is_delivered_after_the_restart(
    tmp_path: Path, receiver: tuple[TestServer, Receiver]
) -> None:
    """The embedded queue dies with the process; the delivery row does not: the restarted
    server sends the event."""
    server, route = receiver
    route.failures = 10**6
    running = started(tmp_path, "0.5")
    client = Client(running)
    register(client)
    subscription = client.ok("POST", "/api/v1/webhook-subscriptions", 201, json={
        "url": server.url("/hook"), "events": ["execution.completed"],
    })  # fmt: skip
    flow = workflow(client, MANUAL)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    execution_of(client, queued["id"], "completed")
    delivery_of(client, subscription["id"], "retrying")
    running.kill()
    route.failures = 0
    again = Serve(tmp_path, LINKFLOW_HTTP_ALLOW_PRIVATE="true", LINKFLOW_DELIVERY_BACKOFF_S="0.5")
    again.port, again.url = running.port, running.url
    again.start()
    try:
        delivered = delivery_of(client, subscription["id"], "succeeded")
    finally:
        again.stop()
    assert delivered["execution_id"] == queued["id"]
    assert server.hits("/hook")[-1].headers["x-linkflow-delivery"] == delivered["id"]
