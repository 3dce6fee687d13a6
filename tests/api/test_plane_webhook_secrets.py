"""Webhook secrets, signatures and endpoints against hostile callers and viewers (issue 13):
the signing secret is write-only, signatures are timestamped and accepted once, stored
inputs keep no credentials, URLs are random and rotate, respond answers are sandboxed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from typing import Any

from sqlalchemy import select

from linkflow.store import Webhook, Workflow, WorkflowVersion
from tests.api._plane import PlaneApi, assert_problem, plane_api, webhook_doc
from tests.api._support import Account

__all__ = ["plane_api"]  # the fixture, imported for pytest

SECRET = "whsec-7f3a9c1e-do-not-leak"
OTHER = "whsec-second-value-2b8d"
BODY = b'{"n": 3}'
JSON = {"content-type": "application/json"}


def signed(body: bytes = BODY, secret: str = SECRET, *, at: int | None = None) -> dict[str, str]:
    """The headers of a call signed by the timestamped scheme, computed here from the spec
    (not by the server's code)."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {**JSON, "X-LinkFlow-Timestamp": str(stamp),
            "X-LinkFlow-Signature": f"sha256={digest}"}  # fmt: skip


def now() -> int:
    return int(time.time())


def body_only(body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {**JSON, "X-LinkFlow-Signature": f"sha256={digest}"}


async def active_hook(
    plane: PlaneApi, account: Account, **params: Any
) -> tuple[dict[str, Any], str]:
    """A signed `last_node` webhook workflow, active; the workflow and its URL."""
    params = {"response_mode": "last_node", "secret": SECRET, **params}
    flow = await plane.workflow(account, webhook_doc(**params), activate=True)
    (hook,) = flow["webhooks"]
    return flow, hook["url"]


class TestTheSecretIsWriteOnly:
    async def test_no_response_of_the_api_carries_the_secret(self, plane_api: PlaneApi):
        """Create, get, list, update, versions, export, activate, deactivate, clone and test
        URLs: the plain secret appears in none; the document says `{"sealed": true}`."""
        me = await plane_api.user()
        client, headers = plane_api.client, me.headers
        created = await client.post("/api/v1/workflows", json=webhook_doc(secret=SECRET),
                                    headers=headers)  # fmt: skip
        assert created.status_code == 201, created.text
        flow_id = created.json()["id"]
        base = f"/api/v1/workflows/{flow_id}"
        assert created.json()["nodes"][0]["parameters"]["secret"] == {"sealed": True}
        edited = webhook_doc(name="Renamed", secret=SECRET, path="p")
        responses = [created,
                     await client.put(base, json=edited, headers=headers),
                     await client.get(base, headers=headers),
                     await client.get("/api/v1/workflows", headers=headers),
                     await client.get(f"{base}/versions", headers=headers),
                     await client.get(f"{base}/versions/2", headers=headers),
                     await client.get(f"{base}/export", headers=headers),
                     await client.post(f"{base}/activate", headers=headers),
                     await client.post(f"{base}/test-webhook", headers=headers),
                     await client.post(f"{base}/deactivate", headers=headers),
                     await client.post(f"{base}/clone", headers=headers)]  # fmt: skip
        for response in responses:
            assert response.status_code in {200, 201}, response.text
            assert SECRET not in response.text, response.request.url
        async with plane_api.container.database.session() as session:
            documents = [*await session.scalars(select(Workflow.nodes)),
                         *await session.scalars(select(WorkflowVersion.nodes))]  # fmt: skip
            sealed = list(await session.scalars(select(Webhook.secret_encrypted)))
        assert all(SECRET not in str(nodes) for nodes in documents)
        assert all(SECRET.encode() not in (value or b"") for value in sealed)

    async def test_the_marker_keeps_the_secret_and_a_new_value_replaces_it(
        self, plane_api: PlaneApi
    ):
        """The document read back and saved again keeps the secret; a new string replaces
        it (the old one is refused); null removes it."""
        me = await plane_api.user()
        flow, url = await active_hook(plane_api, me)
        base = f"/api/v1/workflows/{flow['id']}"
        read = (await plane_api.client.get(base, headers=me.headers)).json()
        resaved = await plane_api.client.put(base, headers=me.headers, json={
            "nodes": read["nodes"], "connections": read["connections"], "message": "same"})
        assert resaved.status_code == 200, resaved.text
        assert resaved.json()["version"] == flow["version"]  # nothing changed
        ok = await plane_api.client.post(url, content=BODY, headers=signed())
        assert ok.status_code == 200, ok.text
        replaced = await plane_api.client.put(
            base, headers=me.headers, json={"nodes": webhook_doc(secret=OTHER,
                                            response_mode="last_node")["nodes"]})  # fmt: skip
        assert replaced.status_code == 200, replaced.text
        assert_problem(await plane_api.client.post(url, content=BODY, headers=signed()),
                       401, "invalid_signature")  # fmt: skip
        new = await plane_api.client.post(url, content=BODY, headers=signed(secret=OTHER))
        assert new.status_code == 200, new.text
        removed = await plane_api.client.put(
            base, headers=me.headers,
            json={"nodes": webhook_doc(secret=None, response_mode="last_node")["nodes"]},
        )  # fmt: skip
        assert removed.status_code == 200, removed.text
        assert (await plane_api.client.post(url, content=BODY, headers=JSON)).status_code == 200

    async def test_a_marker_with_no_stored_secret_is_refused(self, plane_api: PlaneApi):
        """An exported document (the marker, no secret) imported elsewhere: 422
        webhook_secret_unknown naming the node, instead of an unsigned webhook."""
        me = await plane_api.user()
        doc = webhook_doc(secret={"sealed": True})
        for path in ("/api/v1/workflows", "/api/v1/workflows/import"):
            refused = await plane_api.client.post(path, json=doc, headers=me.headers)
            body = assert_problem(refused, 422, "webhook_secret_unknown")
            assert body["errors"][0]["field"] == "body.nodes.hook.parameters.secret"

    async def test_a_clone_keeps_the_secret(self, plane_api: PlaneApi):
        """A clone's webhook checks signatures with the source's secret."""
        me = await plane_api.user()
        flow, _ = await active_hook(plane_api, me)
        clone = await plane_api.client.post(f"/api/v1/workflows/{flow['id']}/clone",
                                            headers=me.headers)  # fmt: skip
        assert clone.status_code == 201, clone.text
        activated = await plane_api.client.post(
            f"/api/v1/workflows/{clone.json()['id']}/activate", headers=me.headers
        )
        (hook,) = activated.json()["webhooks"]
        assert_problem(await plane_api.client.post(hook["url"], content=BODY, headers=JSON), 401)
        ok = await plane_api.client.post(hook["url"], content=BODY, headers=signed())
        assert ok.status_code == 200, ok.text


class TestTimestampedSignatures:
    async def test_a_correct_timestamped_signature_is_accepted(self, plane_api: PlaneApi):
        """`X-LinkFlow-Timestamp` + `sha256=<HMAC of "<timestamp>.<body>">`: 200."""
        me = await plane_api.user()
        _, url = await active_hook(plane_api, me)
        answer = await plane_api.client.post(url, content=BODY, headers=signed())
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"seen": {"n": 3}}

    async def test_wrong_and_stale_signatures_are_refused(self, plane_api: PlaneApi):
        """Wrong secret, body or timestamp: invalid_signature; a right one 301 s old or
        ahead: stale_signature; each a 401 problem."""
        me = await plane_api.user()
        _, url = await active_hook(plane_api, me)
        now = int(time.time())
        wrong = [
            JSON, signed(secret=OTHER), signed(b'{"n": 4}'),
            {**signed(at=now), "X-LinkFlow-Timestamp": str(now + 1)},
            {**signed(), "X-LinkFlow-Timestamp": "soon"},
            # "²³": digits to str.isdigit, not unix seconds.
            {**signed(), "X-LinkFlow-Timestamp": b"\xb2\xb3"},  # type: ignore[dict-item]
            body_only(),
        ]  # fmt: skip
        for headers in wrong:
            refused = await plane_api.client.post(url, content=BODY, headers=headers)
            assert_problem(refused, 401, "invalid_signature")
        for at in (now - 301, now + 301):
            stale = await plane_api.client.post(url, content=BODY, headers=signed(at=at))
            assert_problem(stale, 401, "stale_signature")

    async def test_a_replayed_signature_is_refused(self, plane_api: PlaneApi):
        """The same signed call twice: the second is 401 replayed_signature."""
        me = await plane_api.user()
        _, url = await active_hook(plane_api, me)
        headers = signed()
        assert (await plane_api.client.post(url, content=BODY, headers=headers)).status_code == 200
        again = await plane_api.client.post(url, content=BODY, headers=headers)
        assert_problem(again, 401, "replayed_signature")

    async def test_ten_concurrent_copies_of_one_signed_call_are_accepted_once(
        self, plane_api: PlaneApi
    ):
        """The replay race: exactly one of ten simultaneous copies starts an execution."""
        me = await plane_api.user()
        _, url = await active_hook(plane_api, me, response_mode="immediately")
        headers = signed()
        answers = await asyncio.gather(
            *(plane_api.client.post(url, content=BODY, headers=headers) for _ in range(10))
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202] + [401] * 9, [a.text for a in answers]
        for answer in answers:
            if answer.status_code == 401:
                assert_problem(answer, 401, "replayed_signature")

    async def test_the_body_only_signature_needs_the_opt_in(self, plane_api: PlaneApi):
        """`legacy_signature: true` accepts the old scheme (and the new one still works)."""
        me = await plane_api.user()
        _, url = await active_hook(plane_api, me, legacy_signature=True)
        legacy = await plane_api.client.post(url, content=BODY, headers=body_only())
        assert legacy.status_code == 200, legacy.text
        assert_problem(await plane_api.client.post(url, content=BODY,
                                                   headers=body_only(secret=OTHER)), 401)
        assert (await plane_api.client.post(url, content=BODY, headers=signed())).status_code \
            == 200  # fmt: skip


class TestStoredInputs:
    async def test_credential_and_signature_headers_are_redacted(self, plane_api: PlaneApi):
        """Authorization, Cookie, X-Api-Key, X-Hub-Signature-256, the signature headers:
        `[redacted]` in the stored input and in no event; other headers kept."""
        me = await plane_api.user()
        _, url = await active_hook(plane_api, me, response_mode="immediately")
        sent = {
            "Authorization": "Bearer tok-aaa111", "Cookie": "sid=cookie-bbb222",
            "Proxy-Authorization": "Basic cHJveHktY2NjMzMz", "X-Api-Key": "key-ddd444",
            "X-Hub-Signature-256": "sha256=hub-eee555", "X-Custom": "kept-fff666",
        }  # fmt: skip
        headers = {**signed(), **sent}
        answer = await plane_api.client.post(url, content=BODY, headers=headers)
        assert answer.status_code == 202, answer.text
        execution_id = answer.json()["execution_id"]
        done = await plane_api.execution(me, execution_id)
        stored = done["input"]["headers"]
        for name in (*[n.lower() for n in sent if n != "X-Custom"],
                     "x-linkflow-signature", "x-linkflow-timestamp"):  # fmt: skip
            assert stored[name] == "[redacted]", (name, stored)
        assert stored["x-custom"] == "kept-fff666"
        logs = await plane_api.client.get(f"/api/v1/executions/{execution_id}/logs",
                                          headers=me.headers)  # fmt: skip
        everything = done.__repr__() + logs.text
        for value in (*[v for k, v in sent.items() if k != "X-Custom"],
                      headers["X-LinkFlow-Signature"]):  # fmt: skip
            assert value not in everything


class TestEndpoints:
    async def test_the_url_is_random_and_survives_edits_and_reactivation(
        self, plane_api: PlaneApi
    ):
        """Not derived from the ids (two identical workflows differ), and the same URL
        after an edit and after deactivating and activating again."""
        me = await plane_api.user()
        first, url = await active_hook(plane_api, me, secret=None)
        _, other = await active_hook(plane_api, me, secret=None)
        assert url.split("/webhooks/")[1] != other.split("/webhooks/")[1]
        base = f"/api/v1/workflows/{first['id']}"
        edited = await plane_api.client.put(base, headers=me.headers,
                                            json=webhook_doc(response_mode="immediately"))
        assert [h["url"] for h in edited.json()["webhooks"]] == [url]
        await plane_api.client.post(f"{base}/deactivate", headers=me.headers)
        assert_problem(await plane_api.client.post(url, json={}), 404, "webhook_not_found")
        again = await plane_api.client.post(f"{base}/activate", headers=me.headers)
        assert [h["url"] for h in again.json()["webhooks"]] == [url]
        assert (await plane_api.client.post(url, json={})).status_code == 202

    async def test_a_rotated_url_replaces_the_old_one_at_once(self, plane_api: PlaneApi):
        """`POST .../webhooks/{node}/rotate`: the old URL 404s, the new one answers, the
        workflow lists the new one, the secret still applies."""
        me = await plane_api.user()
        flow, old = await active_hook(plane_api, me)
        first = await plane_api.client.post(old, content=BODY, headers=signed(at=now() - 1))
        assert first.status_code == 200, first.text
        rotated = await plane_api.client.post(
            f"/api/v1/workflows/{flow['id']}/webhooks/hook/rotate", headers=me.headers
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["url"]
        assert new != old
        assert_problem(await plane_api.client.post(old, content=BODY, headers=signed()), 404,
                       "webhook_not_found")  # fmt: skip
        answer = await plane_api.client.post(new, content=BODY, headers=signed())
        assert answer.status_code == 200, answer.text
        listed = await plane_api.client.get(f"/api/v1/workflows/{flow['id']}", headers=me.headers)
        assert [h["url"] for h in listed.json()["webhooks"]] == [new]

    async def test_rotating_drops_an_armed_test_url(self, plane_api: PlaneApi):
        """The node's test URL stops answering when the node's endpoint rotates; a test URL
        is random too (arming twice gives two)."""
        me = await plane_api.user()
        flow = await plane_api.workflow(me, webhook_doc())
        base = f"/api/v1/workflows/{flow['id']}"
        first = (await plane_api.client.post(f"{base}/test-webhook", headers=me.headers)).json()
        second = (await plane_api.client.post(f"{base}/test-webhook", headers=me.headers)).json()
        assert first[0]["url"] != second[0]["url"]
        rotated = await plane_api.client.post(f"{base}/webhooks/hook/rotate", headers=me.headers)
        assert rotated.status_code == 200, rotated.text
        assert_problem(await plane_api.client.post(second[0]["url"], json={}), 404)

    async def test_rotating_what_is_not_a_webhook_node_is_404(self, plane_api: PlaneApi):
        """Unknown node, or another workspace's workflow: 404 problems."""
        me, stranger = await plane_api.user(), await plane_api.user()
        flow = await plane_api.workflow(me, webhook_doc())
        base = f"/api/v1/workflows/{flow['id']}/webhooks"
        assert_problem(await plane_api.client.post(f"{base}/answer/rotate", headers=me.headers),
                       404, "webhook_not_found")  # fmt: skip
        assert_problem(await plane_api.client.post(f"{base}/hook/rotate",
                                                   headers=stranger.headers), 404)
        missing = f"/api/v1/workflows/{uuid.uuid4()}/webhooks/hook/rotate"
        assert_problem(await plane_api.client.post(missing, headers=me.headers), 404)


class TestRespondNodeAnswers:
    async def test_an_answer_is_sandboxed_and_sets_no_cookie(self, plane_api: PlaneApi):
        """HTML with inline script, Set-Cookie, HSTS, CORS, Clear-Site-Data, a CRLF header:
        served with `CSP: sandbox` and nosniff, none of those headers, no 500."""
        me = await plane_api.user()
        respond = {"id": "reply", "type": "respond_to_webhook", "parameters": {
            "status": 200, "body": "<script>fetch('/api/v1/users/me')</script>",
            "headers": {
                "Content-Type": "text/html", "Set-Cookie": "sid=evil; Path=/",
                "Strict-Transport-Security": "max-age=1",
                "Access-Control-Allow-Origin": "https://evil.example",
                "Clear-Site-Data": '"*"', "Content-Security-Policy": "default-src *",
                "X-Split": "a\r\nSet-Cookie: b=1", "X-Reply": "yes",
            },
        }}  # fmt: skip
        doc = webhook_doc(after=[respond], response_mode="respond_node")
        flow = await plane_api.workflow(me, doc, activate=True)
        answer = await plane_api.client.post(flow["webhooks"][0]["url"], json={})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-reply"] == "yes"
        assert answer.headers["content-type"].startswith("text/html")
        policies = answer.headers.get_list("content-security-policy")
        assert "sandbox" in policies, policies
        assert "default-src *" not in policies
        assert answer.headers["x-content-type-options"] == "nosniff"
        for name in ("set-cookie", "strict-transport-security", "access-control-allow-origin",
                     "clear-site-data", "x-split"):  # fmt: skip
            assert name not in answer.headers, name
        assert not answer.cookies
