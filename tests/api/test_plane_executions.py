"""`/api/v1/workflows/{id}/execute` and `/api/v1/executions`: start, wait, list, read, history,
cancel, retry, and the live event stream (SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from linkflow.bus import Subscription
from tests.api._plane import (
    PlaneApi,
    assert_problem,
    failing_doc,
    manual_doc,
    plane_api,
    waiting_doc,
)
from tests.api._support import Account, join, team

__all__ = ["plane_api"]  # the fixture, imported for pytest

EXECUTIONS = "/api/v1/executions"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
STREAM_DEADLINE_S = 5.0
"""An event stream of these executions ends within a second or two."""
EXECUTION_KEYS = {
    "id", "workflow_id", "workflow_version", "status", "trigger_type", "input", "output",
    "error", "queued_at", "started_at", "completed_at", "nodes",
}  # fmt: skip
NODE_KEYS = {
    "node_id", "status", "attempts", "started_at", "completed_at", "duration_ms", "items_in",
    "items_out", "error",
}  # fmt: skip


def timed_wait_doc(seconds: float = 0.3) -> dict[str, Any]:
    """manual → wait `seconds` → set `{"after": true}`."""
    return {
        "name": "Timed wait",
        "nodes": [
            {"id": "start", "type": "manual"},
            {"id": "pause", "type": "wait", "parameters": {"seconds": seconds}},
            {"id": "after", "type": "set", "parameters": {"fields": {"after": True}}},
        ],
        "connections": [{"from": "start", "to": "pause"}, {"from": "pause", "to": "after"}],
    }


async def stream_events(
    plane: PlaneApi, account: Account, execution_id: str, *, deadline_s: float = STREAM_DEADLINE_S
) -> list[tuple[str, dict[str, Any]]]:
    """Read `GET /executions/{id}/events` to its end: (event line, decoded envelope) pairs.

    httpx's ASGITransport hands over the body only once the app has finished, so a stream
    that never ends fails here at the deadline.
    """
    url = f"{EXECUTIONS}/{execution_id}/events"
    try:
        async with asyncio.timeout(deadline_s):
            async with plane.client.stream("GET", url, headers=account.headers) as response:
                assert response.status_code == 200, await response.aread()
                assert response.headers["content-type"].startswith("text/event-stream")
                text = (await response.aread()).decode()
    except TimeoutError:
        pytest.fail(f"the event stream of {execution_id} did not end within {deadline_s} s")
    events = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], orjson.loads(fields["data"])))
    return events


async def until_subscribed(plane: PlaneApi, channel: str) -> None:
    """Wait (with a deadline) until something listens on `channel`."""
    deadline = asyncio.get_running_loop().time() + STREAM_DEADLINE_S
    while not plane.runtime.shared.bus.has_subscribers(channel):
        assert asyncio.get_running_loop().time() < deadline, f"nobody subscribed to {channel}"
        await asyncio.sleep(0.01)


class TestExecute:
    async def test_an_integer_beyond_64_bits_is_422_and_other_writes_go_on(
        self, plane_api: PlaneApi
    ):
        """History is stored as JSON of 64-bit integers: a larger one in the input (or a
        document) is the caller's 422, not a 500 that failed the writes batched with it;
        the largest 64-bit values still go through."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        execute = f"/api/v1/workflows/{flow['id']}/execute"
        headers = {**me.headers, "Content-Type": "application/json"}
        for number in ("18446744073709551616", "-9223372036854775809", "1" + "0" * 40):
            body = '{"input": {"n": ' + number + '}}'
            refused = await plane_api.client.post(execute, content=body, headers=headers)
            assert_problem(refused, 422, "number_out_of_range")
        doc = '{"name": "big", "nodes": [{"id": "start", "type": "manual"}, {"id": "s", ' \
              '"type": "set", "parameters": {"fields": {"x": 99999999999999999999999}}}], ' \
              '"connections": [{"from": "start", "to": "s"}]}'  # fmt: skip
        created = await plane_api.client.post("/api/v1/workflows", content=doc, headers=headers)
        assert_problem(created, 422, "number_out_of_range")
        body = '{"input": {"big": 18446744073709551615, "small": -9223372036854775808}}'
        accepted = await plane_api.client.post(execute, content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        done = await plane_api.execution(me, accepted.json()["id"])
        assert done["status"] == "completed"
        assert done["input"] == {"big": 2**64 - 1, "small": -(2**63)}

    async def test_execute_answers_202_queued_and_the_execution_completes(
        self, plane_api: PlaneApi
    ):
        """202 `{id, status: queued}`, then the execution completes with the computed output."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={"input": {"n": 1}},
            headers=me.headers,
        )  # fmt: skip
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        assert set(response.json()) == {"id", "status"}
        done = await plane_api.execution(me, response.json()["id"])
        assert done["status"] == "completed"
        assert (done["input"], done["output"]) == ({"n": 1}, [{"n": 1, "done": True}])
        assert (done["trigger_type"], done["workflow_id"]) == ("manual", flow["id"])

    async def test_execute_without_input_runs_with_an_empty_input(self, plane_api: PlaneApi):
        """`input` is optional (the contract's `input?`): omitted, the run still completes."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={}, headers=me.headers
        )
        assert response.status_code == 202, response.text
        done = await plane_api.execution(me, response.json()["id"])
        assert done["status"] == "completed"
        assert done["output"] == [{"done": True}]

    async def test_execute_without_a_body_is_accepted(self, plane_api: PlaneApi):
        """Every field of the execute body is optional, so a POST with no body queues a run."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", headers=me.headers
        )
        assert response.status_code == 202, response.text

    async def test_execute_with_wait_answers_200_with_the_finished_execution(
        self, plane_api: PlaneApi
    ):
        """`wait: true`: 200 and the finished execution, nodes and all, in one call."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute",
            json={"input": [{"n": 1}, {"n": 2}], "wait": True}, headers=me.headers,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "completed"
        assert body["output"] == [{"n": 1, "done": True}, {"n": 2, "done": True}]
        assert [n["node_id"] for n in body["nodes"]] == ["start", "mark"]

    async def test_execute_with_wait_answers_200_for_a_failed_run(self, plane_api: PlaneApi):
        """A run that fails is finished too: 200 with status failed and the error's node."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, failing_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={"input": {}, "wait": True},
            headers=me.headers,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "failed"
        assert response.json()["error"]["node_id"] == "boom"

    async def test_execute_with_wait_answers_202_when_the_run_waits(self, plane_api: PlaneApi):
        """A run that suspends (a wait node) is not finished: 202 with its id and `waiting`."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, waiting_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={"input": {}, "wait": True},
            headers=me.headers,
        )  # fmt: skip
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "waiting"
        assert set(response.json()) == {"id", "status"}

    async def test_execute_takes_a_priority_and_refuses_an_unknown_one(self, plane_api: PlaneApi):
        """`priority: high` is recorded on the execution; `urgent` is a 422."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        queued = await plane_api.execute(me, flow["id"], input={}, priority="high")
        done = await plane_api.execution(me, queued["id"])
        assert (done["status"], done["priority"]) == ("completed", "high")
        refused = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={"priority": "urgent"},
            headers=me.headers,
        )  # fmt: skip
        assert_problem(refused, 422, "validation_error")

    async def test_execute_refuses_an_input_that_is_not_an_object_or_list(
        self, plane_api: PlaneApi
    ):
        """`input: 5` is a 422 naming `body.input`."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={"input": 5}, headers=me.headers
        )
        body = assert_problem(response, 422, "validation_error")
        assert all(e["field"].startswith("body.input") for e in body["errors"])

    async def test_execute_of_an_unknown_workflow_is_404(self, plane_api: PlaneApi):
        """No such workflow: 404 workflow_not_found."""
        me = await plane_api.user()
        response = await plane_api.client.post(
            f"/api/v1/workflows/{UNKNOWN}/execute", json={"input": {}}, headers=me.headers
        )
        assert_problem(response, 404, "workflow_not_found")

    async def test_a_viewer_cannot_execute(self, plane_api: PlaneApi):
        """Viewers read executions but may not start one (403)."""
        owner, viewer = await plane_api.user(), await plane_api.user()
        workspace = await team(plane_api.client, owner)
        await join(plane_api.client, owner, viewer, workspace, "viewer")
        flow = await plane_api.workflow(owner, manual_doc(), headers=owner.in_workspace(workspace))
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/execute", json={"input": {}},
            headers=viewer.in_workspace(workspace),
        )  # fmt: skip
        assert_problem(response, 403, "insufficient_role")


class TestListAndRead:
    async def test_list_filters_by_workflow_status_and_time(self, plane_api: PlaneApi):
        """workflow_id, status and since/until (on queued_at) each narrow the list."""
        me = await plane_api.user()
        before = datetime.now(UTC) - timedelta(seconds=1)
        good = await plane_api.workflow(me, manual_doc("Good"))
        bad = await plane_api.workflow(me, failing_doc("Bad"))
        ok_run = await plane_api.run(me, good["id"], input={})
        failed_run = await plane_api.run(me, bad["id"], input={})
        after = datetime.now(UTC) + timedelta(seconds=1)

        async def ids(**params: str) -> list[str]:
            response = await plane_api.client.get(EXECUTIONS, params=params, headers=me.headers)
            assert response.status_code == 200, response.text
            return [e["id"] for e in response.json()["data"]]

        assert await ids() == [failed_run["id"], ok_run["id"]]
        assert await ids(workflow_id=good["id"]) == [ok_run["id"]]
        assert await ids(status="failed") == [failed_run["id"]]
        assert await ids(status="completed", workflow_id=bad["id"]) == []
        assert await ids(since=before.isoformat()) == [failed_run["id"], ok_run["id"]]
        assert await ids(since=after.isoformat()) == []
        assert await ids(until=before.isoformat()) == []
        assert await ids(since=before.isoformat(), until=after.isoformat()) == [
            failed_run["id"], ok_run["id"],
        ]  # fmt: skip

    async def test_list_pages_with_a_cursor(self, plane_api: PlaneApi):
        """limit=1 over two executions: one, then the other with no next cursor."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        runs = [(await plane_api.run(me, flow["id"], input={}))["id"] for _ in range(2)]
        first = (
            await plane_api.client.get(EXECUTIONS, params={"limit": 1}, headers=me.headers)
        ).json()
        second = (
            await plane_api.client.get(
                EXECUTIONS, params={"limit": 1, "cursor": first["next_cursor"]},
                headers=me.headers,
            )
        ).json()  # fmt: skip
        assert [e["id"] for e in first["data"] + second["data"]] == runs[::-1]
        assert second["next_cursor"] is None
        assert "nodes" not in first["data"][0]

    async def test_list_holds_summaries_with_sizes_not_the_data(self, plane_api: PlaneApi):
        """Regression (issue 14, item 12): lists inlined every execution's input and output
        (2.8 MB for 50 large ones). A list item has the detail's fields but the data: the
        sizes of input and output in bytes and items, and the error's headline."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc(blob="{{ json.text }}"))
        text = "x" * 50_000
        done = await plane_api.run(me, flow["id"], input=[{"text": text}, {"text": text}])
        failing = await plane_api.workflow(me, failing_doc())
        failed = await plane_api.run(me, failing["id"], input={})
        response = await plane_api.client.get(EXECUTIONS, headers=me.headers)
        assert response.status_code == 200, response.text
        assert len(response.content) < 5_000, len(response.content)
        summaries = {e["id"]: e for e in response.json()["data"]}
        summary = summaries[done["id"]]
        assert not {"input", "output", "nodes"} & summary.keys(), summary
        for key in ("id", "workflow_id", "workflow_version", "status", "trigger_type",
                    "error", "queued_at", "started_at", "completed_at"):  # fmt: skip
            assert summary[key] == done[key], key
        assert (summary["input_items"], summary["output_items"]) == (2, 2)
        assert 100_000 < summary["input_bytes"] < 101_000, summary
        assert 200_000 < summary["output_bytes"] < 202_000, summary
        headline = summaries[failed["id"]]["error"]
        assert headline["node_id"] == "boom"
        assert headline["message"] == failed["error"]["message"].split("\n", 1)[0]

    async def test_list_refuses_bad_filters(self, plane_api: PlaneApi):
        """An unknown status, a time without its offset and a bad workflow id are 422s."""
        me = await plane_api.user()
        for params in (
            {"status": "sleeping"},
            {"since": "2024-01-01T00:00:00"},
            {"until": "yesterday"},
            {"workflow_id": "nope"},
        ):
            response = await plane_api.client.get(EXECUTIONS, params=params, headers=me.headers)
            assert_problem(response, 422, "validation_error")

    async def test_get_has_the_contract_shape(self, plane_api: PlaneApi):
        """GET /executions/{id}: the contract's fields, one `nodes` entry per node run."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        done = await plane_api.run(me, flow["id"], input={"n": 1})
        assert done.keys() >= EXECUTION_KEYS
        assert done["workflow_version"] == 1
        assert done["error"] is None
        for moment in ("queued_at", "started_at", "completed_at"):
            assert datetime.fromisoformat(done[moment]).utcoffset() == timedelta(0)
        assert done["queued_at"] <= done["started_at"] <= done["completed_at"]
        assert [n["node_id"] for n in done["nodes"]] == ["start", "mark"]
        for node in done["nodes"]:
            assert node.keys() >= NODE_KEYS
            assert (node["status"], node["attempts"], node["error"]) == ("completed", 1, None)
        assert [(n["items_in"], n["items_out"]) for n in done["nodes"]] == [(0, 1), (1, 1)]

    async def test_a_failed_execution_names_the_failing_node(self, plane_api: PlaneApi):
        """error: {message, node_id}; the failed node's entry says failed with its error."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, failing_doc())
        done = await plane_api.run(me, flow["id"], input={})
        assert done["status"] == "failed"
        assert done["error"]["node_id"] == "boom"
        assert "boom" in done["error"]["message"]
        statuses = {n["node_id"]: n["status"] for n in done["nodes"]}
        assert statuses == {"start": "completed", "prep": "completed", "boom": "failed"}

    async def test_an_expression_error_names_the_field_path_item_and_expression(
        self, plane_api: PlaneApi
    ):
        """Regression (issue 14, item 4): a run-time expression error said only
        `parameter 'fields' at position 7`; it names the field path, the item and the source."""
        me = await plane_api.user()
        doc = manual_doc(total="{{ json.n / json.d }}")
        flow = await plane_api.workflow(me, doc)
        done = await plane_api.run(me, flow["id"], input=[{"n": 1, "d": 1}, {"n": 1, "d": 0}])
        assert (done["status"], done["error"]["node_id"]) == ("failed", "mark")
        message = done["error"]["message"]
        assert "parameter 'fields.total', item 1," in message, message
        assert "expression '{{ json.n / json.d }}' at position 0:" in message, message
        (node,) = [n for n in done["nodes"] if n["node_id"] == "mark"]
        assert node["error"]["item_index"] == 1, node

    async def test_logs_are_the_history_in_order_from_execution_queued(self, plane_api: PlaneApi):
        """The event history: seq 1, 2, 3... from execution.queued to execution.completed."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        done = await plane_api.run(me, flow["id"], input={})
        response = await plane_api.client.get(f"{EXECUTIONS}/{done['id']}/logs", headers=me.headers)
        assert response.status_code == 200, response.text
        assert response.json()["next_cursor"] is None
        events = response.json()["data"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events] == [
            "execution.queued", "execution.started",
            "node.started", "node.completed", "node.started", "node.completed",
            "execution.completed",
        ]  # fmt: skip
        assert [e["node_id"] for e in events if e["type"] == "node.completed"] == [
            "start", "mark",
        ]  # fmt: skip
        assert events[-1]["data"]["output"] == [{"done": True}]

    async def test_logs_are_a_paged_list_like_every_other(self, plane_api: PlaneApi):
        """Regression (issue 14, item 13): logs were a bare array. `{data, next_cursor}`,
        `?limit=` pages in seq order, and the pages join up to the whole history."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        done = await plane_api.run(me, flow["id"], input={})
        url = f"{EXECUTIONS}/{done['id']}/logs"
        first = await plane_api.client.get(url, params={"limit": 3}, headers=me.headers)
        assert first.status_code == 200, first.text
        assert [e["seq"] for e in first.json()["data"]] == [1, 2, 3]
        cursor = first.json()["next_cursor"]
        assert cursor is not None
        second = await plane_api.client.get(
            url, params={"limit": 3, "cursor": cursor}, headers=me.headers
        )
        assert [e["seq"] for e in second.json()["data"]] == [4, 5, 6]
        whole = await plane_api.listed(me, url, limit=2)
        assert [e["seq"] for e in whole] == list(range(1, 8))
        for bad in ("nonsense", "bad\u00e9"):
            refused = await plane_api.client.get(url, params={"cursor": bad}, headers=me.headers)
            assert_problem(refused, 422, "invalid_cursor")

    async def test_a_waiting_execution_shows_its_resume_url_to_those_who_may_run_it(
        self, plane_api: PlaneApi
    ):
        """Regression (issue 14, item 13): the resume URL was only reachable from an
        expression. The detail shows `resume_url` to a member who may run workflows, null to a
        viewer, and null once it no longer waits; the URL shown resumes it."""
        owner, viewer = await plane_api.user(), await plane_api.user()
        workspace = await team(plane_api.client, owner)
        await join(plane_api.client, owner, viewer, workspace, "viewer")
        as_owner, as_viewer = owner.in_workspace(workspace), viewer.in_workspace(workspace)
        flow = await plane_api.workflow(owner, waiting_doc(), headers=as_owner)
        queued = await plane_api.execute(owner, flow["id"], headers=as_owner, input={})
        waiting = await plane_api.execution(owner, queued["id"], "waiting", headers=as_owner)
        url = waiting["resume_url"]
        assert url is not None
        assert f"/webhooks/resume/{queued['id']}/" in url
        seen = await plane_api.execution(viewer, queued["id"], "waiting", headers=as_viewer)
        assert seen["resume_url"] is None
        resumed = await plane_api.client.post(url, json={"ok": True})
        assert resumed.status_code == 202, resumed.text
        done = await plane_api.execution(owner, queued["id"], "completed", headers=as_owner)
        assert done["resume_url"] is None

    async def test_a_timed_wait_has_no_resume_url(self, plane_api: PlaneApi):
        """A wait for a time cannot be resumed by a call, so no URL is shown."""
        me = await plane_api.user()
        doc = waiting_doc()
        doc["nodes"][1]["parameters"] = {"seconds": 3600}
        flow = await plane_api.workflow(me, doc)
        queued = await plane_api.execute(me, flow["id"], input={})
        waiting = await plane_api.execution(me, queued["id"], "waiting")
        assert waiting["resume_url"] is None

    async def test_unknown_execution_ids_are_404_everywhere(self, plane_api: PlaneApi):
        """get, logs, events, cancel and retry of an unknown id: 404 execution_not_found."""
        me = await plane_api.user()
        url = f"{EXECUTIONS}/{UNKNOWN}"
        for method, path, body in (
            ("GET", url, None),
            ("GET", f"{url}/logs", None),
            ("GET", f"{url}/events", None),
            ("POST", f"{url}/cancel", None),
            ("POST", f"{url}/retry", {"from_failed": True}),
        ):
            response = await plane_api.client.request(method, path, json=body, headers=me.headers)
            assert_problem(response, 404, "execution_not_found")

    async def test_executions_need_a_token(self, plane_api: PlaneApi):
        """The list without a bearer token is 401."""
        assert_problem(await plane_api.client.get(EXECUTIONS), 401)


class TestCancel:
    async def test_cancelling_a_waiting_execution_cancels_it_at_once(self, plane_api: PlaneApi):
        """The cancel call itself makes a waiting execution cancelled, its history ending so."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, waiting_doc())
        queued = await plane_api.execute(me, flow["id"], input={})
        await plane_api.execution(me, queued["id"], "waiting")
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{queued['id']}/cancel", headers=me.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert response.json()["completed_at"] is not None
        logs = await plane_api.listed(me, f"{EXECUTIONS}/{queued['id']}/logs")
        assert logs[-1]["type"] == "execution.cancelled"
        again = await plane_api.client.get(f"{EXECUTIONS}/{queued['id']}", headers=me.headers)
        assert again.json()["status"] == "cancelled"

    async def test_cancelling_a_finished_execution_is_409(self, plane_api: PlaneApi):
        """A completed execution cannot be cancelled: 409 already_finished."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        done = await plane_api.run(me, flow["id"], input={})
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{done['id']}/cancel", headers=me.headers
        )
        assert_problem(response, 409, "already_finished")


class TestRetry:
    async def test_retrying_a_completed_execution_is_409(self, plane_api: PlaneApi):
        """Only failed, timed-out or cancelled executions are retried: 409 not_retryable."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        done = await plane_api.run(me, flow["id"], input={})
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{done['id']}/retry", json={"from_failed": True}, headers=me.headers
        )
        assert_problem(response, 409, "not_retryable")

    async def test_retry_from_failed_starts_a_new_execution_with_its_parent(
        self, plane_api: PlaneApi
    ):
        """202 with the parent id; the retry reuses prep's output and fails again at boom."""
        me = await plane_api.user()
        doc = failing_doc()
        doc["nodes"][1]["parameters"]["fields"] = {"at": "{{ now }}"}
        flow = await plane_api.workflow(me, doc)
        failed = await plane_api.run(me, flow["id"], input={"n": 1})
        assert failed["status"] == "failed"
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{failed['id']}/retry", json={"from_failed": True}, headers=me.headers
        )
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["status"], body["parent_execution_id"]) == ("queued", failed["id"])
        assert body["id"] != failed["id"]
        retried = await plane_api.execution(me, body["id"])
        assert retried["parent_execution_id"] == failed["id"]
        assert (retried["trigger_type"], retried["input"]) == ("retry", {"n": 1})
        assert (retried["status"], retried["error"]["node_id"]) == ("failed", "boom")
        assert await prep_output(plane_api, me, body["id"]) == await prep_output(
            plane_api, me, failed["id"]
        )

    async def test_a_retry_keeps_the_priority_of_the_execution_it_retries(
        self, plane_api: PlaneApi
    ):
        me = await plane_api.user()
        flow = await plane_api.workflow(me, failing_doc())
        failed = await plane_api.run(me, flow["id"], input={}, priority="high")
        assert failed["priority"] == "high"
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{failed['id']}/retry", headers=me.headers
        )
        assert response.status_code == 202, response.text
        retried = await plane_api.execution(me, response.json()["id"])
        assert retried["priority"] == "high"

    async def test_retry_without_a_body_retries_everything(self, plane_api: PlaneApi):
        """`from_failed` is optional (the contract's `{from_failed?}`): no body is a full retry."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, failing_doc())
        failed = await plane_api.run(me, flow["id"], input={})
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{failed['id']}/retry", headers=me.headers
        )
        assert response.status_code == 202, response.text
        assert response.json()["parent_execution_id"] == failed["id"]

    async def test_a_cancelled_execution_can_be_retried(self, plane_api: PlaneApi):
        """Retry of a cancelled run starts it again (here: it waits again)."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, waiting_doc())
        queued = await plane_api.execute(me, flow["id"], input={})
        await plane_api.execution(me, queued["id"], "waiting")
        await plane_api.client.post(f"{EXECUTIONS}/{queued['id']}/cancel", headers=me.headers)
        response = await plane_api.client.post(
            f"{EXECUTIONS}/{queued['id']}/retry", json={"from_failed": False}, headers=me.headers
        )
        assert response.status_code == 202, response.text
        again = await plane_api.execution(me, response.json()["id"], "waiting")
        assert again["parent_execution_id"] == queued["id"]


async def prep_output(plane: PlaneApi, account: Account, execution_id: str) -> Any:
    logs = await plane.listed(account, f"{EXECUTIONS}/{execution_id}/logs")
    (output,) = [
        e["data"]["outputs"]
        for e in logs
        if e["type"] == "node.completed" and e["node_id"] == "prep"
    ]
    return output


class TestEventStream:
    async def test_the_stream_of_a_finished_execution_replays_its_history_and_ends(
        self, plane_api: PlaneApi
    ):
        """`event:` lines in the contract's envelope, in history order, to execution.completed."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        done = await plane_api.run(me, flow["id"], input={})
        events = await stream_events(plane_api, me, done["id"])
        logs = await plane_api.listed(me, f"{EXECUTIONS}/{done['id']}/logs")
        assert [kind for kind, _ in events] == [e["type"] for e in logs]
        for kind, envelope in events:
            assert set(envelope) == {"event", "channel", "data", "timestamp"}
            assert envelope["event"] == kind
            assert envelope["channel"] == f"execution.{done['id']}"
            assert datetime.fromisoformat(envelope["timestamp"])
        assert events[-1][0] == "execution.completed"

    async def test_the_stream_follows_a_running_execution_to_its_end(self, plane_api: PlaneApi):
        """Opened while the run waits: its history, then live events to execution.completed."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, timed_wait_doc(0.5))
        queued = await plane_api.execute(me, flow["id"], input={})
        await plane_api.execution(me, queued["id"], "waiting")
        events = await stream_events(plane_api, me, queued["id"])
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "execution.queued"
        assert "execution.waiting" in kinds
        assert "execution.resumed" in kinds
        assert kinds[-1] == "execution.completed"
        seqs = [envelope["data"]["seq"] for _, envelope in events]
        assert seqs == list(range(1, len(seqs) + 1))
        assert all(set(e) == {"event", "channel", "data", "timestamp"} for _, e in events)

    async def test_replayed_and_live_events_carry_the_same_data_shape(self, plane_api: PlaneApi):
        """An event's `data` has one shape whether replayed from the history or relayed live."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, timed_wait_doc(0.5))
        queued = await plane_api.execute(me, flow["id"], input={})
        await plane_api.execution(me, queued["id"], "waiting")
        events = await stream_events(plane_api, me, queued["id"])
        shapes: dict[str, set[frozenset[str]]] = {}
        for kind, envelope in events:
            assert "seq" in envelope["data"], (kind, envelope)
            shapes.setdefault(kind, set()).add(frozenset(envelope["data"]))
        node_ids = [e["data"]["node_id"] for kind, e in events if kind == "node.completed"]
        assert node_ids == ["start", "pause", "after"]
        assert len(shapes["node.started"]) == 1, shapes["node.started"]
        assert len(shapes["node.completed"]) == 1, shapes["node.completed"]

    async def test_the_stream_ends_when_a_waiting_execution_is_cancelled(self, plane_api: PlaneApi):
        """A stream on a waiting execution ends with execution.cancelled when it is cancelled."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, waiting_doc())
        queued = await plane_api.execute(me, flow["id"], input={})
        await plane_api.execution(me, queued["id"], "waiting")
        reading = asyncio.create_task(stream_events(plane_api, me, queued["id"]))
        await until_subscribed(plane_api, f"execution.{queued['id']}")
        cancelled = await plane_api.client.post(
            f"{EXECUTIONS}/{queued['id']}/cancel", headers=me.headers
        )
        assert cancelled.json()["status"] == "cancelled"
        events = await reading
        assert events[-1][0] == "execution.cancelled"

    async def test_a_stream_opened_as_the_execution_ends_still_ends(
        self, plane_api: PlaneApi, monkeypatch: pytest.MonkeyPatch
    ):
        """Regression: an execution ending between the history read and the subscription."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, timed_wait_doc(0.3))
        queued = await plane_api.execute(me, flow["id"], input={})
        await plane_api.execution(me, queued["id"], "waiting")
        bus = plane_api.runtime.shared.bus
        subscribe = bus.subscribe
        channel = f"execution.{queued['id']}"

        # Force the interleaving: the stream's subscription happens only once the run ended.
        @asynccontextmanager
        async def late_subscribe(*channels: str) -> AsyncIterator[Subscription]:
            if channel in channels:
                await plane_api.execution(me, queued["id"], "completed")
            async with subscribe(*channels) as subscription:
                yield subscription

        monkeypatch.setattr(bus, "subscribe", late_subscribe)
        events = await stream_events(plane_api, me, queued["id"])
        assert events[-1][0] == "execution.completed"
