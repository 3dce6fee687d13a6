"""Billing end to end on `linkflow serve` (SQLite), with Stripe on loopback: the free
plan's limit refuses the sixth active workflow, a Stripe subscription to pro lifts it,
Stripe's signed webhook event changes the plan once and survives a restart, and the
first account (the instance admin) reads the workspace and suspends a user."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, fake_stripe, signed_event
from tests.e2e._serve import Client, Serve, register, workflow


@pytest.fixture
def stripe_server() -> Iterator[FakeStripe]:
    with fake_stripe() as server:
        yield server


@pytest.fixture
def billing_server(tmp_path: Path, stripe_server: FakeStripe) -> Iterator[Serve]:
    running = Serve(tmp_path, LINKFLOW_STRIPE_API_KEY=API_KEY,
                    LINKFLOW_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
                    LINKFLOW_STRIPE_API_BASE=stripe_server.url)  # fmt: skip
    running.start()
    yield running
    running.stop()


def _hook(n: int) -> dict[str, object]:
    return {
        "name": f"hook {n}",
        "nodes": [
            {"id": "hook", "type": "webhook", "parameters": {"path": f"p{n}", "method": "POST"}}
        ],
    }


def test_limits_a_subscription_a_webhook_event_and_a_suspension_on_serve(
    billing_server: Serve, stripe_server: FakeStripe
) -> None:
    ada = Client(billing_server)
    register(ada)
    workspace_id = ada.ok("GET", "/api/v1/workspaces/current")["id"]
    ids = [workflow(ada, _hook(n))["id"] for n in range(6)]
    for workflow_id in ids[:5]:
        ada.ok("POST", f"/api/v1/workflows/{workflow_id}/activate")
    refused = ada.call("POST", f"/api/v1/workflows/{ids[5]}/activate")
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (refused.json()["code"], refused.json()["value"]) == ("plan_limit", 5)

    sub = ada.ok("POST", "/api/v1/billing/subscription", 201, json={"plan": "pro"})
    assert (sub["plan"], sub["status"]) == ("pro", "active")
    ada.ok("POST", f"/api/v1/workflows/{ids[5]}/activate")

    stored = stripe_server.subscriptions[sub["external_id"]]
    business = next(p for p in stripe_server.prices.values() if p["lookup_key"] == "business")
    changed = {**stored, "items": {"object": "list", "data": [{"id": "si_x", "price": business}]}}
    body, headers = signed_event(
        "customer.subscription.updated", changed, created=int(time.time()) + 1
    )
    for _ in range(2):
        answer = httpx.post(
            f"{billing_server.url}/api/v1/billing/webhook",
            content=body,
            headers=headers,
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "duplicate"

    billing_server.stop()
    billing_server.start()
    standing = ada.ok("GET", "/api/v1/billing/subscription")
    assert (standing["plan"]["code"], standing["limits"]["team_members"]) == ("business", 25)

    detail = ada.ok("GET", f"/api/v1/admin/workspaces/{workspace_id}")
    assert detail["usage"]["active_workflows"] == {"used": 6, "limit": None}
    bob = Client(billing_server)
    bob.token = ada.ok(
        "POST",
        "/api/v1/auth/register",
        201,
        json={"email": "bob@example.com", "password": "correct horse battery"},
    )["access_token"]
    bob_id = bob.ok("GET", "/api/v1/users/me")["id"]
    ada.ok("POST", f"/api/v1/admin/users/{bob_id}/suspend")
    assert bob.call("GET", "/api/v1/users/me").status_code == 401
    assert ada.call("GET", "/api/v1/admin/stats").status_code == 200
    assert bob.call("GET", "/api/v1/admin/stats").status_code == 401
