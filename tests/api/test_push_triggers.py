"""Push triggers through the webhook route (issue 17, item 4): GitHub, Slack, Telegram and
Stripe calls start an execution only when they carry the service's signature, computed
here from each service's documentation (not by the server's code); a forged, missing,
stale or body-swapped call is 401 and starts nothing; Slack's URL check is answered."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from tests.api._plane import PlaneApi, assert_problem, plane_api
from tests.api._support import Account

__all__ = ["plane_api"]  # the fixture, imported for pytest

SECRET = "push-secret-4e1b7d-do-not-leak"
OTHER = "push-secret-other-9a02"
JSON = {"content-type": "application/json"}


def hub(body: bytes, secret: str = SECRET) -> str:
    """GitHub: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(body: bytes, event: str = "issues", secret: str = SECRET) -> dict[str, str]:
    return {**JSON, "X-GitHub-Event": event, "X-GitHub-Delivery": "72d3162e-cc78",
            "X-Hub-Signature-256": hub(body, secret)}  # fmt: skip


def slack(body: bytes, *, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    """Slack: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<raw body>`."""
    stamp = str(int(time.time()) if at is None else at)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {**JSON, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def stripe(body: bytes, *, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    """Stripe: `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`."""
    stamp = str(int(time.time()) if at is None else at)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {**JSON, "Stripe-Signature": f"t={stamp},v1={digest.hexdigest()}"}


def telegram(token: str = SECRET) -> dict[str, str]:
    return {**JSON, "X-Telegram-Bot-Api-Secret-Token": token}


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def push_doc(node_type: str, **params: Any) -> dict[str, Any]:
    """A push trigger, then a set node keeping the item's `event` and `body`."""
    answer = {"id": "seen", "type": "set", "parameters": {
        "fields": {"event": "{{ json.event }}", "body": "{{ json.body }}"},
        "keep_only_set": True,
    }}  # fmt: skip
    trigger = {"id": "push", "type": node_type, "parameters": {"secret": SECRET, **params}}
    return {"name": f"{node_type} flow", "nodes": [trigger, answer],
            "connections": [{"from": "push", "to": "seen"}]}  # fmt: skip


async def active(plane: PlaneApi, account: Account, node_type: str,
                 **params: Any) -> tuple[dict[str, Any], str]:  # fmt: skip
    flow = await plane.workflow(account, push_doc(node_type, **params), activate=True)
    (hook,) = flow["webhooks"]
    return flow, hook["url"]


async def started(plane: PlaneApi, account: Account, answer: Any) -> dict[str, Any]:
    """The call was accepted (202) and its execution completed; that execution."""
    assert answer.status_code == 202, answer.text
    return await plane.execution(account, answer.json()["execution_id"], "completed")


async def executions_of(plane: PlaneApi, account: Account, flow: dict[str, Any]) -> list[Any]:
    return await plane.listed(account, "/api/v1/executions", workflow_id=flow["id"])


async def refused(plane: PlaneApi, url: str, body: bytes, headers: dict[str, str],
                  code: str = "invalid_signature") -> None:  # fmt: skip
    assert_problem(await plane.client.post(url, content=body, headers=headers), 401, code)


ISSUE = encoded({"action": "opened", "issue": {"number": 7, "title": "Broken"}})


class TestGitHubTrigger:
    async def test_a_signed_delivery_starts_an_execution_with_the_event(
        self, plane_api: PlaneApi
    ):
        """`X-Hub-Signature-256` over the raw body: 202, and the item carries the
        `X-GitHub-Event` type and the payload; the signature is stored `[redacted]`."""
        me = await plane_api.user()
        _, url = await active(plane_api, me, "github_trigger")
        headers = github(ISSUE)
        done = await started(plane_api, me, await plane_api.client.post(
            url, content=ISSUE, headers=headers))  # fmt: skip
        assert done["output"] == [{"event": "issues", "body": json.loads(ISSUE)}]
        assert done["input"]["event"] == "issues"
        assert done["input"]["headers"]["x-hub-signature-256"] == "[redacted]"
        assert done["input"]["headers"]["x-github-delivery"] == "72d3162e-cc78"
        assert headers["X-Hub-Signature-256"] not in str(done)

    async def test_forged_missing_and_body_swapped_deliveries_start_nothing(
        self, plane_api: PlaneApi
    ):
        """Another secret, no signature, a malformed one, a captured signature sent with
        another body: each 401 `invalid_signature`, and the workflow has no execution."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "github_trigger")
        other_body = encoded({"action": "deleted", "issue": {"number": 7}})
        for body, headers in [
            (ISSUE, github(ISSUE, secret=OTHER)),
            (ISSUE, {**JSON, "X-GitHub-Event": "issues"}),
            (ISSUE, {**github(ISSUE), "X-Hub-Signature-256": "sha256=zz"}),
            (ISSUE, {**github(ISSUE), "X-Hub-Signature-256": hub(ISSUE)[len("sha256="):]}),
            (other_body, github(ISSUE)),
        ]:  # fmt: skip
            await refused(plane_api, url, body, headers)
        assert await executions_of(plane_api, me, flow) == []

    async def test_events_outside_the_list_are_acknowledged_without_an_execution(
        self, plane_api: PlaneApi
    ):
        """`events: [issues]`: GitHub's `ping` gets 200 ignored (its delivery shows green),
        an `issues` delivery starts the workflow; an unsigned ping is still 401."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "github_trigger", events=["issues"])
        ping = encoded({"zen": "Keep it logically awesome.", "hook_id": 1})
        ignored = await plane_api.client.post(url, content=ping, headers=github(ping, "ping"))
        assert ignored.status_code == 200, ignored.text
        assert ignored.json() == {"status": "ignored", "event": "ping"}
        await refused(plane_api, url, ping, github(ping, "ping", secret=OTHER))
        assert await executions_of(plane_api, me, flow) == []
        await started(plane_api, me, await plane_api.client.post(
            url, content=ISSUE, headers=github(ISSUE)))  # fmt: skip
        assert len(await executions_of(plane_api, me, flow)) == 1

    async def test_the_secret_is_write_only(self, plane_api: PlaneApi):
        """The document reads back `{"sealed": true}`; saving it again keeps the secret."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "github_trigger")
        base = f"/api/v1/workflows/{flow['id']}"
        read = await plane_api.client.get(base, headers=me.headers)
        assert SECRET not in read.text
        assert read.json()["nodes"][0]["parameters"]["secret"] == {"sealed": True}
        saved = await plane_api.client.put(base, headers=me.headers, json={
            "nodes": read.json()["nodes"], "connections": read.json()["connections"]})
        assert saved.status_code == 200, saved.text
        await started(plane_api, me, await plane_api.client.post(
            url, content=ISSUE, headers=github(ISSUE)))  # fmt: skip

    async def test_a_trigger_without_a_secret_is_refused_on_save(self, plane_api: PlaneApi):
        """A push trigger cannot be saved unsigned: 422 naming the node's parameters."""
        me = await plane_api.user()
        doc = push_doc("github_trigger")
        del doc["nodes"][0]["parameters"]["secret"]
        answer = await plane_api.client.post("/api/v1/workflows", json=doc, headers=me.headers)
        assert_problem(answer, 422)
        assert "secret" in answer.text


MENTION = encoded({
    "type": "event_callback", "team_id": "T0001", "api_app_id": "A0001",
    "event": {"type": "app_mention", "user": "U0001", "text": "<@U0002> hi", "ts": "1.2"},
    "event_id": "Ev0001", "event_time": 1700000000,
})  # fmt: skip
CHALLENGE = encoded({
    "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "type": "url_verification",
    "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
})  # fmt: skip


class TestSlackTrigger:
    async def test_the_url_verification_is_answered_with_its_challenge(
        self, plane_api: PlaneApi
    ):
        """A signed `url_verification`: 200 `{"challenge"}`, no execution; unsigned: 401."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "slack_trigger", events=["app_mention"])
        answer = await plane_api.client.post(url, content=CHALLENGE, headers=slack(CHALLENGE))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"challenge": json.loads(CHALLENGE)["challenge"]}
        await refused(plane_api, url, CHALLENGE, JSON)
        assert await executions_of(plane_api, me, flow) == []

    async def test_a_signed_event_starts_an_execution_with_the_event(
        self, plane_api: PlaneApi
    ):
        """An `event_callback`: 202; the item's `event` is the inner event's type."""
        me = await plane_api.user()
        _, url = await active(plane_api, me, "slack_trigger")
        done = await started(plane_api, me, await plane_api.client.post(
            url, content=MENTION, headers=slack(MENTION)))  # fmt: skip
        assert done["output"] == [{"event": "app_mention", "body": json.loads(MENTION)}]
        assert done["input"]["headers"]["x-slack-signature"] == "[redacted]"

    async def test_forged_stale_and_body_swapped_events_start_nothing(
        self, plane_api: PlaneApi
    ):
        """Wrong secret, no headers, a bad timestamp, a signature replayed with another
        body: 401 `invalid_signature`; a right signature 301 s old or ahead: 401
        `stale_signature`. None starts an execution."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "slack_trigger")
        now = int(time.time())
        other = MENTION.replace(b"hi", b"bye")
        for body, headers in [
            (MENTION, slack(MENTION, secret=OTHER)),
            (MENTION, JSON),
            (MENTION, {**slack(MENTION), "X-Slack-Request-Timestamp": "soon"}),
            (MENTION, {**slack(MENTION, at=now), "X-Slack-Request-Timestamp": str(now + 1)}),
            (other, slack(MENTION)),
        ]:  # fmt: skip
            await refused(plane_api, url, body, headers)
        for at in (now - 301, now + 301):
            await refused(plane_api, url, MENTION, slack(MENTION, at=at), "stale_signature")
        assert await executions_of(plane_api, me, flow) == []


UPDATE = encoded({
    "update_id": 10000,
    "message": {"message_id": 1365, "date": 1441645532, "text": "/start",
                "chat": {"id": 1111111, "type": "private"},
                "from": {"id": 1111111, "is_bot": False, "first_name": "Ada"}},
})  # fmt: skip


class TestTelegramTrigger:
    async def test_an_update_with_the_secret_token_starts_an_execution(
        self, plane_api: PlaneApi
    ):
        """`X-Telegram-Bot-Api-Secret-Token` equal to the secret: 202, the item's `event`
        is the update's kind; the token is stored `[redacted]`."""
        me = await plane_api.user()
        _, url = await active(plane_api, me, "telegram_trigger")
        done = await started(plane_api, me, await plane_api.client.post(
            url, content=UPDATE, headers=telegram()))  # fmt: skip
        assert done["output"] == [{"event": "message", "body": json.loads(UPDATE)}]
        stored = done["input"]["headers"]["x-telegram-bot-api-secret-token"]
        assert stored == "[redacted]"
        assert SECRET not in str(done)

    async def test_a_missing_or_wrong_token_starts_nothing(self, plane_api: PlaneApi):
        """No token, another token, the token with a byte more or less: 401."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "telegram_trigger")
        for headers in (JSON, telegram(OTHER), telegram(SECRET + "x"), telegram(SECRET[:-1])):
            await refused(plane_api, url, UPDATE, headers)
        assert await executions_of(plane_api, me, flow) == []


INVOICE = encoded({
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy", "object": "event", "type": "invoice.paid",
    "data": {"object": {"id": "in_1", "object": "invoice", "amount_paid": 2000}},
    "livemode": False, "created": 1686089970,
})  # fmt: skip


class TestStripeTrigger:
    async def test_a_signed_event_starts_an_execution_with_its_type(self, plane_api: PlaneApi):
        """`Stripe-Signature` `t=...,v1=...`: 202, the item's `event` is the event's type."""
        me = await plane_api.user()
        _, url = await active(plane_api, me, "stripe_trigger", events=["invoice.paid"])
        done = await started(plane_api, me, await plane_api.client.post(
            url, content=INVOICE, headers=stripe(INVOICE)))  # fmt: skip
        assert done["output"] == [{"event": "invoice.paid", "body": json.loads(INVOICE)}]
        assert done["input"]["headers"]["stripe-signature"] == "[redacted]"

    async def test_forged_stale_and_body_swapped_events_start_nothing(
        self, plane_api: PlaneApi
    ):
        """Wrong secret, none, a `v0` signature only, a signature with another body: 401
        `invalid_signature`; signed 301 s ago or ahead: 401 `stale_signature`."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "stripe_trigger")
        now = int(time.time())
        v1 = stripe(INVOICE)["Stripe-Signature"]
        other = INVOICE.replace(b"2000", b"1")
        for body, headers in [
            (INVOICE, stripe(INVOICE, secret=OTHER)),
            (INVOICE, JSON),
            (INVOICE, {**JSON, "Stripe-Signature": v1.replace("v1=", "v0=")}),
            (other, stripe(INVOICE)),
        ]:  # fmt: skip
            await refused(plane_api, url, body, headers)
        for at in (now - 301, now + 301):
            await refused(plane_api, url, INVOICE, stripe(INVOICE, at=at), "stale_signature")
        assert await executions_of(plane_api, me, flow) == []

    async def test_a_filtered_out_event_type_is_acknowledged(self, plane_api: PlaneApi):
        """`events: [invoice.paid]`: a signed `customer.created` gets 200 ignored."""
        me = await plane_api.user()
        flow, url = await active(plane_api, me, "stripe_trigger", events=["invoice.paid"])
        created = INVOICE.replace(b"invoice.paid", b"customer.created")
        answer = await plane_api.client.post(url, content=created, headers=stripe(created))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "ignored", "event": "customer.created"}
        assert await executions_of(plane_api, me, flow) == []
