"""SaaS integration nodes under `linkflow serve`, with credentials stored through the API:
a workflow posts to a loopback fake of Slack's Web API (tests/_saas/slack.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from tests._saas._base import body_json
from tests._saas.slack import TOKEN, FakeSlack, fake_slack, rate_limited
from tests.e2e._serve import Client, Serve, execution_of, register, workflow

ENDED = ("completed", "failed", "cancelled", "timeout")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One serve for the module, loopback allowed (the fake is local)."""
    server = Serve(tmp_path_factory.mktemp("serve-saas"), LINKFLOW_HTTP_ALLOW_PRIVATE="true")
    server.start()
    try:
        client = Client(server)
        register(client)
        yield client
    finally:
        server.stop()


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack() as fake:
        yield fake


def store(client: Client, name: str, data: dict[str, Any]) -> dict[str, Any]:
    body = {"name": name, "type": "slack", "data": data}
    return dict(client.ok("POST", "/api/v1/credentials", 201, json=body))


def run(client: Client, node: dict[str, Any], input_: Any) -> dict[str, Any]:
    """manual → `node`; the ended execution."""
    chain = [{"id": "start", "type": "manual"}, node]
    doc = {
        "name": f"saas {node['id']}",
        "nodes": chain,
        "connections": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(chain)],
    }
    flow = workflow(client, doc)
    started = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 200,
                        json={"input": input_, "wait": True})  # fmt: skip
    return execution_of(client, started["id"], *ENDED)


def logs_text(client: Client, execution_id: str) -> str:
    return client.call("GET", f"/api/v1/executions/{execution_id}/logs").text


def post(credential: str, **fields: Any) -> dict[str, Any]:
    return {"id": "notify", "type": "slack", "credentials": {"slack": credential},
            "parameters": {"resource": "message", "operation": "post", "channel": "#general",
                           "text": "{{ 'Order ' ~ json.id ~ ' shipped' }}"}, **fields}  # fmt: skip


class TestSlack:
    def test_a_workflow_posts_one_message_per_item_with_a_stored_credential(
        self, served: Client, slack: FakeSlack
    ) -> None:
        """The credential reads back masked and tests by auth.test; each item is posted with
        the bearer token and comes out as Slack's answer; the history never holds the token."""
        credential = store(served, "team-slack", {"token": TOKEN, "base_url": f"{slack.url}/api"})
        assert credential["data"]["token"] == "••••••"
        tested = served.ok("POST", f"/api/v1/credentials/{credential['id']}/test")
        assert tested == {"ok": True, "message": "authenticated as linkflow_bot in LinkFlow"}
        done = run(served, post("team-slack"), [{"id": "A1"}, {"id": "B2"}])
        assert done["status"] == "completed", done["error"]
        sent = slack.calls("chat.postMessage")
        assert [body_json(r)["text"] for r in sent] == ["Order A1 shipped", "Order B2 shipped"]
        assert {r.headers["authorization"] for r in sent} == {f"Bearer {TOKEN}"}
        assert [item["message"]["text"] for item in done["output"]] == [
            "Order A1 shipped", "Order B2 shipped"]  # fmt: skip
        assert {item["channel"] for item in done["output"]} == {slack.channels[0]["id"]}
        assert TOKEN not in logs_text(served, done["id"])

    def test_a_429_is_retried_after_slacks_retry_after(
        self, served: Client, slack: FakeSlack
    ) -> None:
        """The engine waits Slack's Retry-After (1 s) instead of its backoff (60 s), then the
        message is posted: the retry shows in the history with Slack's delay."""
        store(served, "busy-slack", {"token": TOKEN, "base_url": f"{slack.url}/api"})
        slack.fail_next(rate_limited(1))
        node = post("busy-slack", retry={"max_attempts": 2, "backoff_s": 60})
        done = run(served, node, {"id": "C3"})
        assert done["status"] == "completed", done["error"]
        assert len(slack.calls("chat.postMessage")) == 2
        events = served.listed(f"/api/v1/executions/{done['id']}/logs")
        [retrying] = [e for e in events if e["type"] == "node.retrying"]
        assert retrying["data"]["delay_s"] == 1.0
        assert "rate limited (HTTP 429)" in retrying["data"]["error"]["message"]

    def test_a_refused_token_fails_the_execution_naming_the_operation(
        self, served: Client, slack: FakeSlack
    ) -> None:
        """Slack's invalid_auth reaches the user as a node error; neither the test result nor
        the history quotes the token."""
        wrong = "xoxb-0000-wrong-token-value"
        credential = store(served, "old-slack", {"token": wrong, "base_url": f"{slack.url}/api"})
        tested = served.ok("POST", f"/api/v1/credentials/{credential['id']}/test")
        assert tested["ok"] is False
        assert wrong not in tested["message"]
        done = run(served, post("old-slack"), {"id": "D4"})
        assert done["status"] == "failed"
        assert done["error"]["message"] == (
            "slack message post: Slack refused the token (invalid_auth)"
        )
        assert wrong not in logs_text(served, done["id"])
