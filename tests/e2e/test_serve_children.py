"""Sub-workflows and error workflows under `linkflow serve`: a real process, its public
API, SIGKILL while a parent waits for its child."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.e2e._serve import (
    ADA,
    Client,
    Serve,
    execution_of,
    poll,
    register,
    started,
    workflow,
)


def doubler() -> dict[str, Any]:
    return {
        "name": "double",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "double", "type": "set",
             "parameters": {"fields": {"twice": "{{ json.n * 2 }}"}}},
        ],
        "connections": [{"from": "start", "to": "double"}],
    }  # fmt: skip


def caller(child_id: str, **parameters: Any) -> dict[str, Any]:
    return {
        "name": "call double",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "call", "type": "execute_workflow",
             "parameters": {"workflow_id": child_id, **parameters}},
            {"id": "after", "type": "set", "parameters": {"fields": {"seen": True}}},
        ],
        "connections": [{"from": "start", "to": "call"}, {"from": "call", "to": "after"}],
    }  # fmt: skip


def history(client: Client, execution_id: str) -> list[dict[str, Any]]:
    return list(client.listed(f"/api/v1/executions/{execution_id}/logs"))


def runs_of(client: Client, workflow_id: str) -> list[dict[str, Any]]:
    body = client.ok("GET", "/api/v1/executions", params={"workflow_id": workflow_id})
    return list(body["data"])


def completions(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["node_id"] for e in events if e["type"] == "node.completed")


def test_a_sub_workflow_runs_as_a_child_and_its_output_comes_back(server: Serve) -> None:
    """The parent waits for its child without holding a worker (`execution.waiting` with
    the child), the child's end resumes it, and the child's items come out of the node."""
    client = Client(server)
    register(client)
    child = workflow(client, doubler())
    parent = workflow(client, caller(child["id"]))
    queued = client.ok("POST", f"/api/v1/workflows/{parent['id']}/execute", 202,
                       json={"input": {"n": 21}})  # fmt: skip
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["output"] == [{"n": 21, "twice": 42, "seen": True}]

    (run,) = runs_of(client, child["id"])
    assert run["trigger_type"] == "subworkflow"
    assert run["parent_execution_id"] == queued["id"]
    assert execution_of(client, run["id"], "completed")["output"] == [{"n": 21, "twice": 42}]
    events = history(client, queued["id"])
    waits = [e for e in events if e["type"] == "execution.waiting"]
    assert [w["data"]["children"] for w in waits] == [[run["id"]]]
    resumed = [e for e in events if e["type"] == "execution.resumed"]
    assert [r["data"]["by"] for r in resumed] == ["children"]
    assert completions(events) == {"start": 1, "call": 1, "after": 1}


def test_one_child_per_item_all_waited_for(server: Serve) -> None:
    """`mode: each_item` starts one child per item; the parent resumes when all ended."""
    client = Client(server)
    register(client)
    child = workflow(client, doubler())
    parent = workflow(client, caller(child["id"], mode="each_item"))
    queued = client.ok("POST", f"/api/v1/workflows/{parent['id']}/execute", 202,
                       json={"input": [{"n": 1}, {"n": 2}, {"n": 3}]})  # fmt: skip
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert sorted(item["twice"] for item in done["output"]) == [2, 4, 6]
    assert len(runs_of(client, child["id"])) == 3
    assert completions(history(client, queued["id"]))["call"] == 1


def test_without_wait_the_parent_goes_on_and_the_child_still_runs(server: Serve) -> None:
    client = Client(server)
    register(client)
    child = workflow(client, doubler())
    parent = workflow(client, caller(child["id"], wait=False))
    queued = client.ok("POST", f"/api/v1/workflows/{parent['id']}/execute", 202,
                       json={"input": {"n": 5}})  # fmt: skip
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["output"] == [{"n": 5, "seen": True}]
    assert not [e for e in history(client, queued["id"]) if e["type"] == "execution.waiting"]
    (run,) = poll(lambda: runs_of(client, child["id"]), "the child execution")
    assert execution_of(client, run["id"], "completed")["output"] == [{"n": 5, "twice": 10}]


def test_a_failing_child_fails_the_node_that_called_it(server: Serve) -> None:
    client = Client(server)
    register(client)
    broken = workflow(client, {
        "name": "broken",
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "stop", "type": "stop_and_error", "parameters": {"message": "no stock"}}],
        "connections": [{"from": "start", "to": "stop"}],
    })  # fmt: skip
    parent = workflow(client, caller(broken["id"]))
    queued = client.ok("POST", f"/api/v1/workflows/{parent['id']}/execute", 202, json={})
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "failed"
    assert done["error"]["node_id"] == "call"
    assert "no stock" in done["error"]["message"]


def test_another_workspaces_workflow_is_not_found(server: Serve) -> None:
    """A workflow id of another tenant is "not found": nothing of it runs."""
    mallory = Client(server)
    mallory.token = mallory.ok("POST", "/api/v1/auth/register", 201, json={
        "email": "mallory@example.com", "password": "correct horse battery"})["access_token"]
    secret = workflow(mallory, doubler())
    client = Client(server)
    register(client)
    parent = workflow(client, caller(secret["id"]))
    queued = client.ok("POST", f"/api/v1/workflows/{parent['id']}/execute", 202, json={})
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "failed"
    assert "was not found" in done["error"]["message"]
    assert runs_of(mallory, secret["id"]) == []


def test_a_failed_execution_starts_its_error_workflow_once(server: Serve) -> None:
    """The error workflow starts from its `error` trigger with the failure, linked to the
    failed execution; a retry that fails again starts another (one per failure)."""
    client = Client(server)
    register(client)
    report = workflow(client, {
        "name": "report",
        "nodes": [{"id": "failure", "type": "error"},
                  {"id": "note", "type": "set",
                   "parameters": {"fields": {"failed": "{{ json.execution.id }}",
                                             "why": "{{ json.error.message }}"}}}],
        "connections": [{"from": "failure", "to": "note"}],
    })  # fmt: skip
    failing = workflow(client, {
        "name": "import",
        "nodes": [{"id": "start", "type": "manual"},
                  {"id": "stop", "type": "stop_and_error", "parameters": {"message": "no orders"}}],
        "connections": [{"from": "start", "to": "stop"}],
        "settings": {"error_workflow": report["id"]},
    })  # fmt: skip
    queued = client.ok("POST", f"/api/v1/workflows/{failing['id']}/execute", 202, json={})
    assert execution_of(client, queued["id"], "completed", "failed")["status"] == "failed"
    (run,) = poll(lambda: runs_of(client, report["id"]), "the error workflow to start")
    assert run["trigger_type"] == "error"
    assert run["parent_execution_id"] == queued["id"]
    done = execution_of(client, run["id"], "completed", "failed")
    assert done["output"] == [{**done["output"][0], "failed": queued["id"], "why": "no orders"}]
    assert len(runs_of(client, report["id"])) == 1


def test_sigkill_while_the_parent_waits_for_its_child(server: Serve) -> None:
    """serve is killed while the child runs its slow node and the parent waits; after a
    restart the child is resumed from its history, its end resumes the parent, and each
    node of either is recorded as completed once; there is still one child."""
    client = Client(server)
    register(client)
    child = workflow(client, {
        "name": "slow child",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "slow", "type": "code",
             "parameters": {"code": "import time\ntime.sleep(1.5)\nreturn items"}},
            {"id": "mark", "type": "set", "parameters": {"fields": {"child": True}}},
        ],
        "connections": [{"from": "start", "to": "slow"}, {"from": "slow", "to": "mark"}],
    })  # fmt: skip
    parent = workflow(client, caller(child["id"]))
    queued = client.ok("POST", f"/api/v1/workflows/{parent['id']}/execute", 202, json={})
    (run,) = poll(lambda: runs_of(client, child["id"]), "the child execution")
    poll(lambda: started(client, run["id"], "slow"), "the child's slow node to start")
    assert client.ok("GET", f"/api/v1/executions/{queued['id']}")["status"] == "waiting"
    server.kill()
    server.start()
    client.token = client.ok("POST", "/api/v1/auth/login", 200, json=ADA)["access_token"]
    done = execution_of(client, queued["id"], "completed", "failed")
    assert done["status"] == "completed", done
    assert done["output"] == [{"child": True, "seen": True}]
    assert [r["id"] for r in runs_of(client, child["id"])] == [run["id"]]
    assert completions(history(client, run["id"])) == {"start": 1, "slow": 1, "mark": 1}
    assert completions(history(client, queued["id"])) == {"start": 1, "call": 1, "after": 1}
