"""Outgoing webhooks and failure alerts, through the API of `serve` with its worker running:
real receivers on 127.0.0.1, a real SMTP server, the embedded queue."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from linkflow.queue import Job, JobType
from linkflow.services.outgoing_events import failure_alerts_on
from linkflow.services.webhook_signatures import signature
from linkflow.store import WebhookDelivery
from tests._http_server import Recorded, Reply, TestServer, serve
from tests._smtp import Inbox, smtp_sink
from tests.api._plane import (
    PlaneApi,
    assert_problem,
    failing_doc,
    manual_doc,
    plane_api,
    running_plane,
)
from tests.api._support import Account, api_settings, eventually

__all__ = ["plane_api"]  # the fixture, imported for pytest

SUBSCRIPTIONS = "/api/v1/webhook-subscriptions"
DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    with smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="module")
async def api(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]
) -> AsyncIterator[PlaneApi]:
    """The plane with loopback URLs allowed (the receivers), fast retries and SMTP."""
    data_dir: Path = tmp_path_factory.mktemp("outgoing")
    settings = api_settings(
        data_dir, db_url, http_allow_private=True, delivery_backoff_s=0.05,
        smtp_host="127.0.0.1", smtp_port=inbox[1], smtp_security="none",
        smtp_from="LinkFlow <alerts@linkflow.test>",
    )  # fmt: skip
    async with running_plane(settings) as running:
        yield running


class Flaky:
    """A receiver route that answers 500 to the first `failures` calls, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, _request: Recorded) -> Reply:
        with self.lock:
            self.calls += 1
            failing = self.calls <= self.failures
        return Reply(500, "not now") if failing else Reply(200, "ok")


@pytest.fixture
def receiver() -> Iterator[tuple[TestServer, dict[str, Flaky]]]:
    routes = {"/a": Flaky(2), "/b": Flaky(2), "/down": Flaky(10**6), "/ok": Flaky(0)}
    with serve(dict(routes)) as server:
        yield server, routes


async def subscribe(api: PlaneApi, account: Account, **body: Any) -> dict[str, Any]:
    response = await api.client.post(SUBSCRIPTIONS, json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(api: PlaneApi, account: Account, subscription_id: str) -> list[Any]:
    return await api.listed(account, f"{SUBSCRIPTIONS}/{subscription_id}/deliveries", limit=2)


async def delivery_reaching(
    api: PlaneApi, account: Account, subscription_id: str, status: str
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        found = await deliveries(api, account, subscription_id)
        return found[0] if found and found[0]["status"] == status else None

    return await eventually(reached, timeout_s=DEADLINE_S, what=f"a delivery {status}")


def verify(request: Recorded, secret: str) -> dict[str, Any]:
    """What a receiver does: check the signature over timestamp and body; the event."""
    stamp = int(request.headers["x-linkflow-timestamp"])
    expected = signature(secret.encode(), stamp, request.body)
    assert request.headers["x-linkflow-signature"] == expected
    body: dict[str, Any] = json.loads(request.body)
    return body


class TestDelivery:
    async def test_a_receiver_failing_twice_gets_each_event_once_per_subscription_signed(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        """Two subscriptions, each receiver failing its first two attempts: each gets the
        event (signed, with one delivery id) once with success, after 3 attempts."""
        server, _ = receiver
        account = await api.user()
        subscriptions = [
            await subscribe(api, account, url=server.url(path), events=["execution.completed"])
            for path in ("/a", "/b")
        ]
        assert all(s["secret"].startswith("whsec_") for s in subscriptions)
        flow = await api.workflow(account, manual_doc("Delivered flow"))
        done = await api.run(account, flow["id"])
        assert done["status"] == "completed"
        for path, subscription in zip(("/a", "/b"), subscriptions, strict=True):
            record = await delivery_reaching(api, account, subscription["id"], "succeeded")
            assert record["attempts"] == 3
            assert record["last_status_code"] == 200
            assert record["execution_id"] == done["id"]
            hits = server.hits(path)
            assert len(hits) == 3
            assert {hit.headers["x-linkflow-delivery"] for hit in hits} == {record["id"]}
            assert {hit.headers["x-linkflow-event"] for hit in hits} == {"execution.completed"}
            body = verify(hits[-1], subscription["secret"])
            assert body["id"] == record["id"]
            assert body["event"] == "execution.completed"
            execution = body["data"]["execution"]
            assert execution["id"] == done["id"]
            assert execution["status"] == "completed"
            assert execution["workflow_name"] == "Delivered flow"
            assert "input" not in execution
            assert "output" not in execution
        # The secret is shown once: reads never carry it.
        shown = await api.client.get(f"{SUBSCRIPTIONS}/{subscriptions[0]['id']}",
                                     headers=account.headers)  # fmt: skip
        assert shown.status_code == 200
        assert "secret" not in shown.json()

    async def test_a_receiver_that_always_fails_gets_five_attempts_then_the_delivery_is_dead(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        """5 attempts, then `dead` in the API and the job among the dead letters; a
        redelivery sends it again (same id) once the receiver is back."""
        server, routes = receiver
        account = await api.user()
        subscription = await subscribe(api, account, url=server.url("/down"),
                                       events=["execution.failed"])  # fmt: skip
        flow = await api.workflow(account, failing_doc())
        failed = await api.run(account, flow["id"])
        assert failed["status"] == "failed"
        dead = await delivery_reaching(api, account, subscription["id"], "dead")
        assert dead["attempts"] == 5
        assert dead["last_status_code"] == 500
        assert "500" in dead["last_error"]
        assert len(server.hits("/down")) == 5
        letters = await api.runtime.shared.queue.dead_letters()
        assert any(letter.job.payload.get("delivery_id") == dead["id"] for letter in letters)

        routes["/down"].failures = 0
        again = await api.client.post(
            f"{SUBSCRIPTIONS}/{subscription['id']}/deliveries/{dead['id']}/redeliver",
            headers=account.headers,
        )
        assert again.status_code == 202, again.text
        delivered = await delivery_reaching(api, account, subscription["id"], "succeeded")
        assert delivered["id"] == dead["id"]
        assert delivered["attempts"] == 6
        assert server.hits("/down")[-1].headers["x-linkflow-delivery"] == dead["id"]

    async def test_only_the_events_and_workflow_a_subscription_names_are_sent(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        """A subscription to another workflow's failures gets nothing of this completion;
        an inactive one neither; one for every workflow's completions gets it."""
        server, _ = receiver
        account = await api.user()
        flow = await api.workflow(account, manual_doc("Watched"))
        other = await api.workflow(account, manual_doc("Other"))
        narrow = await subscribe(api, account, url=server.url("/ok"), events=["execution.failed"],
                                 workflow_id=other["id"])  # fmt: skip
        paused = await subscribe(api, account, url=server.url("/ok"),
                                 events=["execution.completed"], active=False)  # fmt: skip
        wide = await subscribe(api, account, url=server.url("/ok"),
                               events=["execution.completed", "execution.failed"])  # fmt: skip
        done = await api.run(account, flow["id"])
        record = await delivery_reaching(api, account, wide["id"], "succeeded")
        assert record["execution_id"] == done["id"]
        # Both rows would have been written in the same transaction as `wide`'s.
        assert await deliveries(api, account, narrow["id"]) == []
        assert await deliveries(api, account, paused["id"]) == []

    async def test_an_ended_execution_that_lost_its_deliveries_gets_them_at_recovery(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        """The crash window (an end stored, its delivery rows not): recovery at start-up
        finds the execution and sends the event."""
        server, _ = receiver
        account = await api.user()
        subscription = await subscribe(api, account, url=server.url("/ok"),
                                       events=["execution.completed"])  # fmt: skip
        flow = await api.workflow(account, manual_doc())
        done = await api.run(account, flow["id"])
        await delivery_reaching(api, account, subscription["id"], "succeeded")
        async with api.runtime.database.transaction() as session:
            await session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.execution_id == uuid.UUID(done["id"]))
            )
        before = len(server.hits("/ok"))
        outgoing = api.runtime.shared.outgoing
        assert outgoing is not None
        assert await outgoing.recover() >= 1
        record = await delivery_reaching(api, account, subscription["id"], "succeeded")
        assert record["execution_id"] == done["id"]
        assert len(server.hits("/ok")) > before


class TestSubscriptions:
    async def test_create_list_patch_delete(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        server, _ = receiver
        account = await api.user()
        created = await subscribe(api, account, url=server.url("/ok"), description="ops",
                                  events=["execution.waiting", "execution.completed"])  # fmt: skip
        assert created["events"] == ["execution.completed", "execution.waiting"]
        assert created["active"] is True
        listed = await api.listed(account, SUBSCRIPTIONS)
        assert [item["id"] for item in listed] == [created["id"]]
        path = f"{SUBSCRIPTIONS}/{created['id']}"
        patched = await api.client.patch(path, json={"active": False,
                                                     "events": ["execution.failed"]},
                                         headers=account.headers)  # fmt: skip
        assert patched.status_code == 200, patched.text
        assert patched.json()["active"] is False
        assert patched.json()["events"] == ["execution.failed"]
        assert patched.json()["description"] == "ops"
        removed = await api.client.delete(path, headers=account.headers)
        assert removed.status_code == 204
        assert_problem(await api.client.get(path, headers=account.headers), 404,
                       "webhook_subscription_not_found")  # fmt: skip

    async def test_another_workspace_can_neither_see_nor_change_a_subscription(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        server, _ = receiver
        owner, stranger = await api.user(), await api.user()
        created = await subscribe(api, owner, url=server.url("/ok"), events=["execution.failed"])
        path = f"{SUBSCRIPTIONS}/{created['id']}"
        assert await api.listed(stranger, SUBSCRIPTIONS) == []
        for method, url, body in (
            ("GET", path, None), ("PATCH", path, {"active": False}), ("DELETE", path, None),
            ("GET", f"{path}/deliveries", None),
            ("POST", f"{path}/deliveries/{created['id']}/redeliver", None),
        ):  # fmt: skip
            response = await api.client.request(method, url, json=body, headers=stranger.headers)
            assert_problem(response, 404, "webhook_subscription_not_found")
        still = await api.client.get(path, headers=owner.headers)
        assert still.json()["active"] is True

    async def test_bad_events_and_unknown_workflows_are_refused(
        self, api: PlaneApi, receiver: tuple[TestServer, dict[str, Flaky]]
    ) -> None:
        server, _ = receiver
        account, stranger = await api.user(), await api.user()
        foreign = await api.workflow(stranger, manual_doc())
        url = server.url("/ok")
        for body, code in (
            ({"url": url, "events": ["execution.exploded"]}, "invalid_events"),
            ({"url": url, "events": ["execution.failed"], "workflow_id": foreign["id"]},
             "workflow_not_found"),
            ({"url": "not a url", "events": ["execution.failed"]}, "invalid_url"),
        ):  # fmt: skip
            response = await api.client.post(SUBSCRIPTIONS, json=body, headers=account.headers)
            assert_problem(response, 422, code)


class TestRefusedUrls:
    @pytest.mark.parametrize(
        "url",
        ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data",
         "http://10.0.0.8/", "http://[::1]/x", "ftp://example.com/x", "file:///etc/passwd"],
    )  # fmt: skip
    async def test_an_address_the_ssrf_guard_refuses_is_refused_at_creation(
        self, plane_api: PlaneApi, url: str
    ) -> None:
        """With private addresses not allowed (the default), as for the HTTP node."""
        account = await plane_api.user()
        response = await plane_api.client.post(
            SUBSCRIPTIONS, json={"url": url, "events": ["execution.failed"]},
            headers=account.headers,
        )  # fmt: skip
        problem = assert_problem(response, 422, "url_not_allowed")
        assert problem["errors"][0]["field"] == "body.url"
        assert await plane_api.listed(account, SUBSCRIPTIONS) == []


class TestFailureAlerts:
    async def test_a_failed_execution_mails_the_workspace_admins_when_alerts_are_on(
        self, api: PlaneApi, inbox: tuple[Inbox, int]
    ) -> None:
        messages, _ = inbox
        account = await api.user()
        turned_on = await api.client.put(
            f"/api/v1/workspaces/{account.workspace_id}",
            json={"settings": {"notifications": {"execution_failed": True}}},
            headers=account.headers,
        )
        assert turned_on.status_code == 200, turned_on.text
        flow = await api.workflow(account, failing_doc("Nightly import"))
        failed = await api.run(account, flow["id"])
        assert failed["status"] == "failed"

        async def arrived() -> Message | None:
            mine = [m for m in messages.messages if m["To"] == account.email]
            return mine[0] if mine else None

        mail = await eventually(arrived, timeout_s=DEADLINE_S, what="the failure alert")
        assert mail["Subject"] == "[LinkFlow] Execution failed: Nightly import"
        text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
        assert failed["id"] in text
        assert "boom" in text
        assert "Node:      boom" in text

    def test_alerts_are_off_unless_the_workspace_turns_them_on(self) -> None:
        assert not failure_alerts_on({})
        assert not failure_alerts_on({"notifications": {"execution_failed": "yes"}})
        assert failure_alerts_on({"notifications": {"execution_failed": True}})


class TestBadJobs:
    async def test_jobs_without_a_handler_or_payload_are_dead_lettered_and_work_goes_on(
        self, api: PlaneApi
    ) -> None:
        """An execution job without an id, a delivery job without a delivery and a
        notification of an unknown kind go to the dead letters with the reason; the
        worker still runs executions after them."""
        queue = api.runtime.shared.queue
        jobs = [
            Job(type=JobType.WORKFLOW_EXECUTION, payload={"nothing": 1}),
            Job(type=JobType.WEBHOOK_DELIVERY, payload={"delivery_id": "not-a-uuid"}),
            Job(type=JobType.NOTIFICATION, payload={"kind": "horoscope"}),
        ]
        for job in jobs:
            await queue.enqueue(job)

        async def all_dead() -> dict[str, str] | None:
            letters = {letter.job.id: letter.reason for letter in await queue.dead_letters(500)}
            return letters if all(job.id in letters for job in jobs) else None

        reasons = await eventually(all_dead, timeout_s=DEADLINE_S, what="three dead letters")
        assert all("cannot be decoded" in reasons[job.id] for job in jobs)
        account = await api.user()
        flow = await api.workflow(account, manual_doc())
        assert (await api.run(account, flow["id"]))["status"] == "completed"
