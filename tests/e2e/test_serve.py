"""`linkflow serve` as a user runs it: a real process, real HTTP, SIGKILL and restart."""

from __future__ import annotations

import json
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.e2e._serve import (
    ADA,
    EXAMPLES,
    Client,
    Serve,
    alive,
    children,
    execution_of,
    poll,
    register,
    started,
    workflow,
)


def test_webhook_to_answer_to_execution_details(server: Serve) -> None:
    """Register, create, activate, call the webhook, get the answer, read the execution."""
    client = Client(server)
    register(client)
    greet = workflow(client, json.loads((EXAMPLES / "greet-adults.json").read_text()),
                     activate=True)  # fmt: skip
    (hook,) = greet["webhooks"]
    assert hook["method"] == "POST"
    answer = httpx.post(hook["url"], json={"name": "Ada", "age": 36}, timeout=30)
    assert answer.status_code == 200
    assert answer.json() == {"msg": "Welcome Ada"}
    listed = client.ok("GET", "/api/v1/executions", params={"workflow_id": greet["id"]})
    (run,) = listed["data"]
    detail = client.ok("GET", f"/api/v1/executions/{run['id']}")
    assert detail["status"] == "completed"
    assert detail["trigger_type"] == "webhook"
    assert [(n["node_id"], n["status"]) for n in detail["nodes"]] == [
        ("hook", "completed"), ("check", "completed"), ("adult", "completed"),
        ("join", "completed"), ("minor", "skipped"),
    ]  # fmt: skip
    events = client.listed(f"/api/v1/executions/{run['id']}/logs")
    assert events[0]["type"] == "execution.queued"
    assert events[-1]["type"] == "execution.completed"
    wrong = httpx.get(hook["url"], timeout=30)
    assert wrong.status_code == 405


def test_retry_from_the_failed_node_reuses_what_completed(server: Serve) -> None:
    """Fix the cause (a variable), retry from_failed: earlier nodes are not run again."""
    client = Client(server)
    register(client)
    variable = client.ok("POST", "/api/v1/variables", 201, json={"key": "divisor", "value": "0"})
    doc = {
        "name": "divide",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "prep", "type": "set", "parameters": {"fields": {"at": "{{ now }}"}}},
            {"id": "divide", "type": "set",
             "parameters": {"fields": {"q": "{{ 10 / (vars.divisor | int) }}"}}},
        ],
        "connections": [{"from": "start", "to": "prep"}, {"from": "prep", "to": "divide"}],
    }  # fmt: skip
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={"input": {}})
    failed = execution_of(client, queued["id"], "failed", "completed")
    assert failed["status"] == "failed"
    assert failed["error"]["node_id"] == "divide"
    client.ok("PUT", f"/api/v1/variables/{variable['id']}", json={"key": "divisor", "value": "2"})
    retried = client.ok("POST", f"/api/v1/executions/{queued['id']}/retry", 202,
                        json={"from_failed": True})  # fmt: skip
    done = execution_of(client, retried["id"], "completed", "failed")
    assert done["status"] == "completed"
    assert done["parent_execution_id"] == queued["id"]
    assert done["output"][0]["q"] == 5
    assert done["output"][0]["at"] == failed_prep_time(client, queued["id"])


def failed_prep_time(client: Client, execution_id: str) -> str:
    """`prep`'s output in the failed run: the retry must carry it over unchanged."""
    for event in client.listed(f"/api/v1/executions/{execution_id}/logs"):
        if event["type"] == "node.completed" and event["node_id"] == "prep":
            return str(event["data"]["outputs"]["main"][0]["json"]["at"])
    raise AssertionError("prep did not complete")


def test_a_schedule_fires_on_time(server: Serve) -> None:
    """An active workflow with a 1 s interval schedule runs by itself."""
    client = Client(server)
    register(client)
    doc = {
        "name": "tick",
        "nodes": [{"id": "every", "type": "schedule", "parameters": {"interval_s": 1}},
                  {"id": "mark", "type": "set", "parameters": {"fields": {"ticked": True}}}],
        "connections": [{"from": "every", "to": "mark"}],
    }  # fmt: skip
    flow = workflow(client, doc, activate=True)

    def fired() -> list[dict[str, Any]]:
        runs = client.ok("GET", "/api/v1/executions", params={"workflow_id": flow["id"]})["data"]
        return [r for r in runs if r["status"] == "completed" and r["trigger_type"] == "schedule"]

    (first, *_) = poll(fired, "a scheduled execution")
    detail = client.ok("GET", f"/api/v1/executions/{first['id']}")  # lists hold summaries
    assert detail["output"][0]["ticked"] is True


def test_sigkill_during_a_run_then_restart_completes_the_execution(server: Serve) -> None:
    """Kill -9 while a node runs; after a restart the execution finishes by itself."""
    client = Client(server)
    register(client)
    doc = {
        "name": "slow",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "slow", "type": "code",
             "parameters": {"code": "import time\ntime.sleep(2)\nreturn items"}},
            {"id": "after", "type": "set", "parameters": {"fields": {"survived": True}}},
        ],
        "connections": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "after"}],
    }  # fmt: skip
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202,
                       json={"input": {"n": 1}})  # fmt: skip

    poll(lambda: started(client, queued["id"], "slow"), "the slow node to start")
    helpers = children(server)
    assert helpers, "serve runs its SQLite writer in a child process"
    server.kill()
    poll(lambda: not any(alive(pid) for pid in helpers), "serve's children to exit with it")
    server.start()
    client.token = ""
    body = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)
    client.token = body["access_token"]
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["output"] == [{"n": 1, "survived": True}]


def test_schedules_can_be_read_paused_changed_resumed_and_deleted(server: Serve) -> None:
    """Activation creates the schedule; its API pauses, retimes, resumes and deletes it."""
    client = Client(server)
    register(client)
    doc = {
        "name": "daily",
        "nodes": [{"id": "daily", "type": "schedule",
                   "parameters": {"cron": "0 9 * * *", "timezone": "Europe/Paris"}},
                  {"id": "mark", "type": "noop"}],
        "connections": [{"from": "daily", "to": "mark"}],
    }  # fmt: skip
    flow = workflow(client, doc, activate=True)
    poll(lambda: client.ok("GET", "/api/v1/schedules", params={"workflow_id": flow["id"]})["data"],
         "the activation's schedule")  # fmt: skip
    (schedule,) = client.ok("GET", "/api/v1/schedules", params={"workflow_id": flow["id"]})["data"]
    assert schedule["cron"] == "0 9 * * *"
    assert schedule["timezone"] == "Europe/Paris"
    sid = schedule["id"]
    paused = client.ok("POST", f"/api/v1/schedules/{sid}/pause")
    assert paused["status"] == "paused"
    assert paused["next_run_at"] is None
    bad = client.call("PUT", f"/api/v1/schedules/{sid}", json={"cron": "every day at nine"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.cron"
    changed = client.ok("PUT", f"/api/v1/schedules/{sid}",
                        json={"cron": "30 6 * * 1-5", "input": {"report": "weekly"}})  # fmt: skip
    assert changed["input"] == {"report": "weekly"}
    resumed = client.ok("POST", f"/api/v1/schedules/{sid}/resume")
    assert resumed["status"] == "active"
    assert resumed["next_run_at"] is not None
    again = client.call(
        "POST",
        "/api/v1/schedules",
        json={"workflow_id": flow["id"], "node_id": "daily", "interval_s": 60},
    )
    assert again.status_code == 409
    client.ok("DELETE", f"/api/v1/schedules/{sid}", 204)
    assert client.call("GET", f"/api/v1/schedules/{sid}").status_code == 404
    created = client.ok(
        "POST",
        "/api/v1/schedules",
        201,
        json={"workflow_id": flow["id"], "node_id": "daily", "interval_s": 3600},
    )
    assert created["next_run_at"] is not None


def test_a_test_url_serves_an_inactive_workflow_once(server: Serve) -> None:
    """The test webhook runs the draft workflow for the next call only; then 404."""
    client = Client(server)
    register(client)
    draft = workflow(client, json.loads((EXAMPLES / "greet-adults.json").read_text()))
    assert draft["status"] == "draft"
    (test_url,) = client.ok("POST", f"/api/v1/workflows/{draft['id']}/test-webhook")
    first = httpx.post(test_url["url"], json={"name": "Tim", "age": 9}, timeout=30)
    assert first.status_code == 200
    assert first.json() == {"msg": "Sorry"}
    second = httpx.post(test_url["url"], json={"name": "Tim", "age": 9}, timeout=30)
    assert second.status_code == 404


def test_a_slow_webhook_gets_202_with_the_execution_id(tmp_path: Path) -> None:
    """Past LINKFLOW_WEBHOOK_ANSWER_TIMEOUT_S, the caller gets the id and the run goes on."""
    server = Serve(tmp_path, LINKFLOW_WEBHOOK_ANSWER_TIMEOUT_S="0.5")
    server.start()
    try:
        client = Client(server)
        register(client)
        doc = {
            "name": "slow hook",
            "nodes": [
                {"id": "hook", "type": "webhook",
                 "parameters": {"path": "slow", "response_mode": "last_node"}},
                {"id": "slow", "type": "code",
                 "parameters": {"code": "import time\ntime.sleep(1.5)\nreturn items"}},
            ],
            "connections": [{"from": "hook", "to": "slow"}],
        }  # fmt: skip
        flow = workflow(client, doc, activate=True)
        answer = httpx.post(flow["webhooks"][0]["url"], json={}, timeout=30)
        assert answer.status_code == 202
        assert answer.json()["status"] == "running"
        execution_id = answer.json()["execution_id"]
        done = execution_of(client, execution_id, "completed")
        assert done["trigger_type"] == "webhook"
    finally:
        server.stop()


def test_sigterm_lets_a_running_execution_finish_before_exiting(server: Serve) -> None:
    """Graceful shutdown: the node in progress completes and is not run again later."""
    client = Client(server)
    register(client)
    doc = {
        "name": "slow",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "slow", "type": "code",
             "parameters": {"code": "import time\ntime.sleep(1.5)\nreturn items"}},
        ],
        "connections": [{"from": "start", "to": "slow"}],
    }  # fmt: skip
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})

    poll(lambda: started(client, queued["id"], "slow"), "the slow node to start")
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    server.start()
    body = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)
    client.token = body["access_token"]
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed"
    events = client.listed(f"/api/v1/executions/{queued['id']}/logs")
    starts = [e for e in events if e["type"] == "node.started" and e["node_id"] == "slow"]
    assert len(starts) == 1, "the node ran again after the restart"


def test_a_wait_is_resumed_through_its_resume_url(server: Serve) -> None:
    """`execution.resume_url` (known before the wait) resumes it; the caller's body arrives."""
    client = Client(server)
    register(client)
    doc = {
        "name": "approval",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "link", "type": "set",
             "parameters": {"fields": {"url": "{{ execution.resume_url }}"}}},
            {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
            {"id": "after", "type": "set",
             "parameters": {"fields": {"approved": "{{ json.resume.body.ok }}"}}},
        ],
        "connections": [{"from": "start", "to": "link"}, {"from": "link", "to": "approval"},
                        {"from": "approval", "to": "after"}],
    }  # fmt: skip
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    execution_of(client, queued["id"], "waiting")
    events = client.listed(f"/api/v1/executions/{queued['id']}/logs")
    link = next(e for e in events if e["type"] == "node.completed" and e["node_id"] == "link")
    url = link["data"]["outputs"]["main"][0]["json"]["url"]
    assert url.startswith(f"{server.url}/webhooks/resume/{queued['id']}/")
    forged = httpx.post(url[:-4] + "0000", json={"ok": True}, timeout=30)
    assert forged.status_code == 404
    resumed = httpx.post(url, json={"ok": True}, timeout=30)
    assert resumed.status_code == 202
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["output"][0]["approved"] is True
    again = httpx.post(url, json={"ok": True}, timeout=30)
    assert again.status_code == 409


def test_a_resume_link_clicked_twenty_times_at_once_resumes_once_and_survives_sigkill(
    server: Serve,
) -> None:
    """Twenty concurrent calls of the resume URL: one 202, nineteen 409 not_waiting. serve
    is then killed while the resumed run is in flight; after a restart the execution
    completes with the accepted payload, each node recorded as completed once."""
    client = Client(server)
    register(client)
    doc = {
        "name": "approve twice",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "link", "type": "set",
             "parameters": {"fields": {"url": "{{ execution.resume_url }}"}}},
            {"id": "approval", "type": "wait", "parameters": {"resume": "webhook"}},
            {"id": "slow", "type": "code",
             "parameters": {"code": "import time\ntime.sleep(1.5)\nreturn items"}},
            {"id": "after", "type": "set",
             "parameters": {"fields": {"call": "{{ node['approval'].json.resume.body.call }}"}}},
        ],
        "connections": [{"from": "start", "to": "link"}, {"from": "link", "to": "approval"},
                        {"from": "approval", "to": "slow"}, {"from": "slow", "to": "after"}],
    }  # fmt: skip
    flow = workflow(client, doc)
    queued = client.ok("POST", f"/api/v1/workflows/{flow['id']}/execute", 202, json={})
    execution_of(client, queued["id"], "waiting")
    events = client.listed(f"/api/v1/executions/{queued['id']}/logs")
    link = next(e for e in events if e["type"] == "node.completed" and e["node_id"] == "link")
    url = link["data"]["outputs"]["main"][0]["json"]["url"]

    def call(index: int) -> httpx.Response:
        return httpx.post(url, json={"call": index}, timeout=30)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(call, range(20)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [409] * 19, statuses
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"not_waiting"}
    accepted = next(i for i, answer in enumerate(answers) if answer.status_code == 202)

    poll(lambda: started(client, queued["id"], "slow"), "the resumed run to reach the slow node")
    server.kill()
    server.start()
    client.token = ""
    client.token = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)["access_token"]
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["output"][0]["call"] == accepted
    history = client.listed(f"/api/v1/executions/{queued['id']}/logs")
    completed = Counter(e["node_id"] for e in history if e["type"] == "node.completed")
    assert completed == {"start": 1, "link": 1, "approval": 1, "slow": 1, "after": 1}
    types = [e["type"] for e in history]
    assert types.count("execution.resumed") == 1
    assert types.count("execution.completed") == 1
