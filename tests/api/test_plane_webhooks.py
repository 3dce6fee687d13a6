"""`ANY /webhooks/{endpoint_id}[/{path}]`: the public endpoints of webhook triggers, their three
response modes, their checks (signature, address, size, method, path) and their counters."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from linkflow.store import Webhook
from tests.api._plane import PlaneApi, assert_problem, manual_doc, plane_api, webhook_doc
from tests.api._support import Account, eventually

__all__ = ["plane_api"]  # the fixture, imported for pytest

SECRET = "hook-secret-4c1d"


async def hook_url(plane: PlaneApi, account: Account, doc: dict[str, Any]) -> str:
    """Create and activate `doc`; the URL of its one webhook."""
    flow = await plane.workflow(account, doc, activate=True)
    (hook,) = flow["webhooks"]
    url: str = hook["url"]
    return url


def endpoint_of(url: str) -> uuid.UUID:
    return uuid.UUID(url.split("/webhooks/", 1)[1].split("/", 1)[0])


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class TestResponseModes:
    async def test_last_node_answers_with_the_last_nodes_first_item(self, plane_api: PlaneApi):
        """`last_node`: 200 and the computed item, in the same call."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(response_mode="last_node"))
        answer = await plane_api.client.post(url, json={"n": 5})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"seen": {"n": 5}}
        assert answer.headers["content-type"].startswith("application/json")

    async def test_the_request_reaches_the_workflow_as_one_item(self, plane_api: PlaneApi):
        """The trigger's item is `{method, path, headers, query, body}` of the call."""
        me = await plane_api.user()
        doc = webhook_doc(after=[], response_mode="last_node", method="GET", path="look/here")
        url = await hook_url(plane_api, me, doc)
        answer = await plane_api.client.get(url, params={"q": "1"}, headers={"X-Custom": "v"})
        assert answer.status_code == 200, answer.text
        item = answer.json()
        assert (item["method"], item["path"], item["query"]) == ("GET", "look/here", {"q": "1"})
        assert item["headers"]["x-custom"] == "v"
        assert item["body"] is None

    async def test_immediately_answers_202_with_the_execution_id(self, plane_api: PlaneApi):
        """`immediately`: 202 with the execution id; that webhook run then completes."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(response_mode="immediately"))
        answer = await plane_api.client.post(url, json={"n": 1})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "queued"
        done = await plane_api.execution(me, answer.json()["execution_id"])
        assert (done["status"], done["trigger_type"]) == ("completed", "webhook")
        assert done["input"]["body"] == {"n": 1}
        assert done["output"] == [{"seen": {"n": 1}}]

    async def test_respond_node_answers_with_its_status_headers_and_body(self, plane_api: PlaneApi):
        """`respond_node`: the respond_to_webhook node's status, headers and evaluated body."""
        me = await plane_api.user()
        respond = {
            "id": "reply",
            "type": "respond_to_webhook",
            "parameters": {
                "status": 201,
                "headers": {"X-Reply": "yes"},
                "body": {"got": "{{ json.body.n }}"},
            },
        }
        doc = webhook_doc(after=[respond], response_mode="respond_node")
        url = await hook_url(plane_api, me, doc)
        answer = await plane_api.client.post(url, json={"n": 7})
        assert answer.status_code == 201, answer.text
        assert answer.headers["x-reply"] == "yes"
        assert answer.json() == {"got": 7}

    async def test_a_failing_workflow_answers_a_problem_naming_the_node_and_execution(
        self, plane_api: PlaneApi
    ):
        """Regression (issue 14, item 2): `last_node` and the workflow fails: a 500
        problem+json `execution_failed` naming the failing node and the execution, not a
        bare `{"execution_id", "error"}`."""
        me = await plane_api.user()
        boom = {"id": "boom", "type": "stop_and_error", "parameters": {"message": "no way"}}
        url = await hook_url(plane_api, me, webhook_doc(after=[boom], response_mode="last_node"))
        answer = await plane_api.client.post(url, json={})
        body = assert_problem(answer, 500, "execution_failed")
        assert "no way" in body["detail"]
        assert body["node_id"] == "boom"
        failed = await plane_api.execution(me, body["execution_id"])
        assert failed["status"] == "failed"

    async def test_a_failure_answers_the_status_the_workflow_settings_choose(
        self, plane_api: PlaneApi
    ):
        """`settings.webhook_error_status` picks the failure's status, for respond_node too."""
        me = await plane_api.user()
        boom = {"id": "boom", "type": "stop_and_error", "parameters": {"message": "no way"}}
        doc = webhook_doc(after=[boom], response_mode="respond_node")
        doc["settings"] = {"webhook_error_status": 422}
        url = await hook_url(plane_api, me, doc)
        body = assert_problem(await plane_api.client.post(url, json={}), 422, "execution_failed")
        assert body["node_id"] == "boom"

    @pytest.mark.parametrize("status", [200, 302, 600, "500", True])
    async def test_a_webhook_error_status_that_is_not_an_error_status_is_refused(
        self, plane_api: PlaneApi, status: object
    ):
        """Only a 4xx or 5xx integer: a workflow cannot answer its failures as successes."""
        me = await plane_api.user()
        doc = {**webhook_doc(), "settings": {"webhook_error_status": status}}
        refused = await plane_api.client.post("/api/v1/workflows", json=doc, headers=me.headers)
        body = assert_problem(refused, 422)
        assert "settings.webhook_error_status" in refused.text, body


class TestChecks:
    async def test_the_legacy_body_only_signature_passes_with_the_opt_in(
        self, plane_api: PlaneApi
    ):
        """With `secret` and `legacy_signature: true`: no signature or a wrong one is 401;
        `sha256=<hex HMAC of the raw body>` passes (tests/api/test_plane_webhook_secrets.py
        has the timestamped scheme)."""
        me = await plane_api.user()
        doc = webhook_doc(response_mode="last_node", secret=SECRET, legacy_signature=True)
        url = await hook_url(plane_api, me, doc)
        body = b'{"n": 3}'
        json_type = {"content-type": "application/json"}
        missing = await plane_api.client.post(url, content=body, headers=json_type)
        assert_problem(missing, 401, "invalid_signature")
        for wrong in (
            signature(body, "other-secret"),
            signature(b'{"n": 4}'),
            signature(body).removeprefix("sha256="),
            "sha256=zz",
        ):
            refused = await plane_api.client.post(
                url, content=body, headers={**json_type, "X-LinkFlow-Signature": wrong}
            )
            assert_problem(refused, 401, "invalid_signature")
        signed = await plane_api.client.post(
            url, content=body, headers={**json_type, "X-LinkFlow-Signature": signature(body)}
        )
        assert signed.status_code == 200, signed.text
        assert signed.json() == {"seen": {"n": 3}}

    async def test_an_ip_allowlist_without_the_caller_is_403(self, plane_api: PlaneApi):
        """The caller (127.0.0.1) outside `ip_allowlist` is refused; inside it passes."""
        me = await plane_api.user()
        elsewhere = await hook_url(plane_api, me, webhook_doc(ip_allowlist=["10.0.0.0/8"]))
        assert_problem(await plane_api.client.post(elsewhere, json={}), 403, "ip_not_allowed")
        here = await hook_url(plane_api, me, webhook_doc(ip_allowlist=["127.0.0.0/8"]))
        assert (await plane_api.client.post(here, json={})).status_code == 202

    async def test_a_body_over_max_body_bytes_is_413(self, plane_api: PlaneApi):
        """`max_body_bytes: 16`: 17 bytes are refused with 413, 16 bytes pass."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(max_body_bytes=16))
        too_big = await plane_api.client.post(url, content=b"x" * 17)
        assert_problem(too_big, 413)
        assert (await plane_api.client.post(url, content=b"x" * 16)).status_code == 202

    async def test_a_webhook_may_accept_more_than_the_apis_own_body_limit(
        self, plane_api: PlaneApi
    ):
        """The webhook's `max_body_bytes` replaces the API's 1 MiB limit, both ways."""
        me = await plane_api.user()
        assert plane_api.settings.max_body_bytes < 1_500_000
        url = await hook_url(plane_api, me, webhook_doc(max_body_bytes=2 * 1024 * 1024))
        assert (await plane_api.client.post(url, content=b"x" * 1_500_000)).status_code == 202
        assert_problem(await plane_api.client.post(url, content=b"x" * 2_100_000), 413)

    async def test_a_chunked_body_is_cut_off_at_the_limit(self, plane_api: PlaneApi):
        """No Content-Length: the body is read until it passes the limit, then 413."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(max_body_bytes=1000))

        async def chunks(count: int) -> Any:
            for _ in range(count):
                yield b"y" * 300

        assert_problem(await plane_api.client.post(url, content=chunks(4)), 413)
        assert (await plane_api.client.post(url, content=chunks(3))).status_code == 202

    async def test_a_limit_over_64_mib_is_refused_at_validation(self, plane_api: PlaneApi):
        """A webhook may not ask to hold more than 64 MiB in memory."""
        me = await plane_api.user()
        doc = webhook_doc(max_body_bytes=64 * 1024 * 1024 + 1)
        created = await plane_api.client.post("/api/v1/workflows", json=doc, headers=me.headers)
        body = assert_problem(created, 422)
        assert any("max_body_bytes" in error["field"] for error in body["errors"]), body

    async def test_a_wrong_method_is_405(self, plane_api: PlaneApi):
        """A POST webhook called with GET or PUT: 405."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(method="POST"))
        assert_problem(await plane_api.client.get(url), 405, "method_not_allowed")
        assert_problem(await plane_api.client.put(url, json={}), 405, "method_not_allowed")

    async def test_an_unknown_endpoint_is_404(self, plane_api: PlaneApi):
        """A random endpoint id is 404; a malformed one is a 4xx, never a 500."""
        unknown = await plane_api.client.post(f"/webhooks/{uuid.uuid4()}", json={})
        assert_problem(unknown, 404, "webhook_not_found")
        with_path = await plane_api.client.post(f"/webhooks/{uuid.uuid4()}/a/b", json={})
        assert_problem(with_path, 404, "webhook_not_found")
        malformed = await plane_api.client.post("/webhooks/not-an-id", json={})
        assert 400 <= malformed.status_code < 500, malformed.text

    async def test_a_wrong_path_is_404(self, plane_api: PlaneApi):
        """The endpoint id with another path than the trigger's is 404, as for an unknown id."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(path="orders"))
        assert_problem(await plane_api.client.post(url + "x", json={}), 404, "webhook_not_found")
        bare = url.removesuffix("/orders")
        assert_problem(await plane_api.client.post(bare, json={}), 404, "webhook_not_found")

    async def test_the_webhook_of_an_inactive_workflow_is_404(self, plane_api: PlaneApi):
        """A draft workflow's endpoint (its future URL) answers 404 like an unknown one."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, webhook_doc())
        async with plane_api.container.database.session() as session:
            endpoint = (await session.scalars(
                select(Webhook.id).where(Webhook.workflow_id == uuid.UUID(flow["id"]))
            )).one()  # fmt: skip
        response = await plane_api.client.post(f"/webhooks/{endpoint}", json={})
        assert_problem(response, 404, "webhook_not_found")

    async def test_malformed_json_is_a_4xx_problem_and_starts_nothing(self, plane_api: PlaneApi):
        """A broken body under `content-type: application/json`: 422 invalid_json, no run."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, webhook_doc(), activate=True)
        (hook,) = flow["webhooks"]
        response = await plane_api.client.post(
            hook["url"], content=b'{"n": ', headers={"content-type": "application/json"}
        )
        assert_problem(response, 422, "invalid_json")
        runs = await plane_api.client.get(
            "/api/v1/executions", params={"workflow_id": flow["id"]}, headers=me.headers
        )
        assert runs.json()["data"] == []

    async def test_no_account_is_needed_and_a_bad_token_is_ignored(self, plane_api: PlaneApi):
        """Webhooks are public: a garbage Authorization header changes nothing."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(response_mode="last_node"))
        answer = await plane_api.client.post(
            url, json={"n": 1}, headers={"Authorization": "Bearer nonsense"}
        )
        assert answer.status_code == 200, answer.text


class TestTestUrls:
    async def test_a_test_url_serves_an_inactive_workflow_once(self, plane_api: PlaneApi):
        """A draft's test URL (`POST .../test-webhook`) answers one call, then is 404."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, webhook_doc(response_mode="last_node", path="try"))
        armed = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/test-webhook", headers=me.headers
        )
        assert armed.status_code == 200, armed.text
        (hook,) = armed.json()
        assert (hook["node_id"], hook["method"]) == ("hook", "POST")
        assert hook["url"].startswith("http://testserver/webhooks/")
        assert hook["url"].endswith("/try")
        first = await plane_api.client.post(hook["url"], json={"n": 1})
        assert first.status_code == 200, first.text
        assert first.json() == {"seen": {"n": 1}}
        assert_problem(await plane_api.client.post(hook["url"], json={}), 404)
        again = await plane_api.client.get(f"/api/v1/workflows/{flow['id']}", headers=me.headers)
        assert (again.json()["status"], again.json()["webhooks"]) == ("draft", [])

    async def test_a_test_url_needs_a_webhook_trigger(self, plane_api: PlaneApi):
        """A workflow without a webhook trigger has no test URL: 422 no_webhook_trigger."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, manual_doc())
        response = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/test-webhook", headers=me.headers
        )
        assert_problem(response, 422, "no_webhook_trigger")


class TestCounters:
    async def test_calls_are_counted_with_the_time_of_the_last(self, plane_api: PlaneApi):
        """Two accepted calls (and one refused): call_count 2 and last_called_at set."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc())
        endpoint = endpoint_of(url)
        assert (await plane_api.client.get(url)).status_code == 405
        for _ in range(2):
            assert (await plane_api.client.post(url, json={})).status_code == 202

        async def counted() -> Webhook | None:
            async with plane_api.container.database.session() as session:
                row = (await session.scalars(select(Webhook).where(Webhook.id == endpoint))).one()
            return row if row.call_count == 2 and row.last_called_at is not None else None

        await eventually(counted, what="the webhook's counter to reach 2")


class TestManyAtOnce:
    async def test_more_waiting_callers_than_worker_slots_all_get_their_answer(
        self, plane_api: PlaneApi
    ):
        """12 callers waiting on slow runs, with 8 worker slots in this app: the last four
        wait their turn in the queue, and everyone gets their own answer."""
        me = await plane_api.user()
        slow = [{"id": "slow", "type": "code",
                 "parameters": {"code": "import time\ntime.sleep(0.4)\nreturn items"}},
                {"id": "answer", "type": "set",
                 "parameters": {"fields": {"n": "{{ json.body.n }}"}, "keep_only_set": True}}]
        url = await hook_url(plane_api, me, webhook_doc(after=slow, response_mode="last_node"))
        calls = [plane_api.client.post(url, json={"n": n}) for n in range(12)]
        answers = await asyncio.gather(*calls)
        assert [a.status_code for a in answers] == [200] * 12, [a.text for a in answers]
        assert [a.json() for a in answers] == [{"n": n} for n in range(12)]


        async def all_completed() -> bool | None:
            # The rows follow the histories a batch later (their projection is not waited for).
            runs = await plane_api.client.get(
                "/api/v1/executions", params={"limit": 50}, headers=me.headers
            )
            statuses = [run["status"] for run in runs.json()["data"]]
            return True if statuses == ["completed"] * 12 else None

        await eventually(all_completed, what="the 12 executions to show completed")


class TestCallerHangsUp:
    async def test_a_caller_leaving_mid_body_is_an_info_line_and_no_execution(
        self, plane_api: PlaneApi
    ):
        """No 500, no traceback, nothing started: the caller left before its body arrived."""
        me = await plane_api.user()
        url = await hook_url(plane_api, me, webhook_doc(response_mode="last_node"))
        app = plane_api.client._transport.app  # type: ignore[attr-defined]
        path = url.removeprefix("http://testserver")
        scope = {
            "type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
            "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        messages = iter([{"type": "http.request", "body": b'{"n": ', "more_body": True},
                         {"type": "http.disconnect"}])  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return next(messages)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        with structlog.testing.capture_logs() as logs:
            await app(scope, receive, send)
        events = [entry["event"] for entry in logs]
        assert "request.failed" not in events
        assert "request.client_disconnected" in events
        assert not [message for message in sent if message.get("status") == 500]
        listed = await plane_api.client.get("/api/v1/executions", headers=me.headers)
        assert listed.json()["data"] == []


class TestEditingAnActiveWorkflow:
    async def test_its_webhook_keeps_its_counts_and_takes_the_new_settings(
        self, plane_api: PlaneApi
    ):
        """An edit re-registers the triggers: the same URL, the call count kept, the node's
        new settings in force; a trigger removed from the document is gone (404)."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, webhook_doc(), activate=True)
        (hook,) = flow["webhooks"]
        assert (await plane_api.client.post(hook["url"], json={})).status_code == 202
        endpoint = endpoint_of(hook["url"])

        def counted(calls: int) -> Callable[[], Awaitable[Webhook | None]]:
            async def check() -> Webhook | None:
                async with plane_api.container.database.session() as session:
                    row = (
                        await session.scalars(select(Webhook).where(Webhook.id == endpoint))
                    ).one()
                return row if row.call_count == calls else None

            return check

        await eventually(counted(1), what="the first call to be counted")
        edited = webhook_doc(method="PUT")
        updated = await plane_api.client.put(
            f"/api/v1/workflows/{flow['id']}", json=edited, headers=me.headers
        )
        assert updated.status_code == 200, updated.text
        assert [h["url"] for h in updated.json()["webhooks"]] == [hook["url"]]
        assert_problem(await plane_api.client.post(hook["url"], json={}), 405)
        assert (await plane_api.client.put(hook["url"], json={})).status_code == 202
        await eventually(counted(2), what="the count to go on from 1, not from 0")
        without = manual_doc()
        removed = await plane_api.client.put(
            f"/api/v1/workflows/{flow['id']}", json=without, headers=me.headers
        )
        assert removed.status_code == 200, removed.text
        assert_problem(await plane_api.client.put(hook["url"], json={}), 404, "webhook_not_found")
