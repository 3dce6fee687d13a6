"""The sendgrid node and credential against a loopback fake of SendGrid's v3 API
(tests/_saas/sendgrid.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.sendgrid import SENDGRID_CREDENTIAL, SendGrid
from linkflow.nodes.sdk import NodeError, NodeResult, OnError
from linkflow.nodes.testing import (
    FIXED_NOW,
    FakeContext,
    MemoryBlobStore,
    items,
    per_item,
    run_node,
)
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, events, run_in_engine
from tests._saas.sendgrid import KEY, LIMITED_KEY, FakeSendGrid, errors, fake_sendgrid, rate_limited
from tests.unit.engine._support import StepClock

SEND = "/v3/mail/send"
MAIL = {"from_address": "LinkFlow <flows@example.com>", "to": "ada@example.com",
        "subject": "Report", "text": "See attached."}  # fmt: skip


@pytest.fixture
def sendgrid() -> Iterator[FakeSendGrid]:
    with fake_sendgrid() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(fake: FakeSendGrid, key: str = KEY) -> dict[str, Any]:
    return {"type": "sendgrid", "api_key": key, "base_url": fake.url}


async def run(
    fake: FakeSendGrid, http: httpx.AsyncClient, parameters: dict[str, Any],
    *jsons: dict[str, Any], key: str = KEY, **ctx: Any,
) -> NodeResult:  # fmt: skip
    context = FakeContext(items=ctx.pop("items", None) or items(*(jsons or ({},))),
                          parameters=parameters, credentials={"sendgrid": credential(fake, key)},
                          http=http, **ctx)  # fmt: skip
    return await run_node(SendGrid, context)


async def failure(fake: FakeSendGrid, http: httpx.AsyncClient, parameters: dict[str, Any],
                  **kwargs: Any) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(fake, http, parameters, **kwargs)
    return caught.value


class TestSend:
    async def test_one_message_per_item_with_the_bearer_key_and_sendgrids_document(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """SendGrid gets its JSON document (personalizations with to/cc/bcc and names,
        text before html); the item carries X-Message-Id and the recipients."""
        result = await run(sendgrid, http, {
            **MAIL, "to": ["Ada <ada@example.com>", "bob@example.com"], "cc": "cy@example.com",
            "bcc": ["dee@example.com"], "reply_to": "help@example.com",
            "html": "<p>See attached.</p>", "categories": ["reports"],
        }, {"n": 1})  # fmt: skip
        (request,) = sendgrid.calls(SEND)
        assert request.method == "POST"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["content-type"] == "application/json"
        assert body_json(request) == {
            "personalizations": [{
                "to": [{"email": "ada@example.com", "name": "Ada"}, {"email": "bob@example.com"}],
                "cc": [{"email": "cy@example.com"}], "bcc": [{"email": "dee@example.com"}],
            }],
            "from": {"email": "flows@example.com", "name": "LinkFlow"},
            "reply_to": {"email": "help@example.com"},
            "subject": "Report",
            "content": [{"type": "text/plain", "value": "See attached."},
                        {"type": "text/html", "value": "<p>See attached.</p>"}],
            "categories": ["reports"],
        }  # fmt: skip
        (item,) = result.outputs["main"]
        assert item.json == {
            "n": 1, "message_id": sendgrid.sent[0]["message_id"],
            "recipients": ["ada@example.com", "bob@example.com", "cy@example.com",
                           "dee@example.com"],
        }  # fmt: skip

    async def test_attachments_come_from_the_items_binaries_in_base64(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        blobs = MemoryBlobStore()
        report = await blobs.put(b"a,b\n1,2\n", mime_type="text/csv", file_name="report.csv")
        await run(sendgrid, http, {**MAIL, "attachments": ["*"]}, blobs=blobs,
                  items=items({}, binary={"data": report.to_json()}))  # fmt: skip
        (mail,) = sendgrid.sent
        assert mail["attachments"] == [{
            "content": base64.b64encode(b"a,b\n1,2\n").decode(), "filename": "report.csv",
            "type": "text/csv", "disposition": "attachment",
        }]  # fmt: skip

    async def test_a_dynamic_template_needs_no_subject_or_body(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """template_id and the personalization's dynamic_template_data, nothing else."""
        await run(sendgrid, http, {
            "from_address": "flows@example.com", "to": "ada@example.com",
            "template_id": "d-0123456789abcdef", "dynamic_template_data": {"name": "Ada"},
        })  # fmt: skip
        (mail,) = sendgrid.sent
        assert mail["template_id"] == "d-0123456789abcdef"
        assert mail["personalizations"] == [
            {"to": [{"email": "ada@example.com"}], "dynamic_template_data": {"name": "Ada"}}
        ]
        assert "content" not in mail
        assert "subject" not in mail

    async def test_bad_input_is_refused_before_sending(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """No body and no template at save time; at run time a bad address, a name twice
        across to/cc/bcc, a missing binary: each names the operation, nothing is sent."""
        with pytest.raises(ValueError, match="one of text, html and template_id is required"):
            await run(sendgrid, http, {"from_address": "a@example.com", "to": "b@example.com",
                                       "subject": "s"})  # fmt: skip
        twice = await failure(sendgrid, http, {**MAIL, "bcc": "ADA@example.com"})
        assert twice.message == ("sendgrid mail send: ADA@example.com is named twice across to, "
                                 "cc and bcc (SendGrid refuses that)")  # fmt: skip
        bad = await failure(sendgrid, http, {**MAIL, "to": "not-an-address"})
        assert bad.message == "sendgrid mail send: to holds 'not-an-address', not an e-mail address"
        missing = await failure(sendgrid, http, {**MAIL, "attachments": ["data"]})
        assert missing.message == "sendgrid mail send: the item has no binary 'data' (it has: none)"
        assert sendgrid.requests == []

    async def test_failed_items_go_to_the_error_output_and_the_others_are_sent(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        to = per_item(lambda item, _: item.json["to"] if item else "")
        result = await run(sendgrid, http, {**MAIL, "to": to}, {"to": "ada@example.com"},
                           {"to": "nobody"}, on_error=OnError.OUTPUT)  # fmt: skip
        assert [i.json["recipients"] for i in result.outputs["main"]] == [["ada@example.com"]]
        (failed,) = result.outputs["error"]
        assert "to holds 'nobody'" in failed.json["error"]["message"]


class TestFailures:
    async def test_sendgrids_validation_errors_are_quoted_with_their_fields(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        sendgrid.fail_next(errors(400, ("The attachment content must be base64 encoded.",
                                        "attachments.0.content")))  # fmt: skip
        error = await failure(sendgrid, http, MAIL)
        assert error.message == (
            "sendgrid mail send: refused (HTTP 400: The attachment content must be base64 "
            "encoded. (attachments.0.content))"
        )
        assert error.retryable is False

    async def test_a_wrong_key_and_a_key_without_mail_send_are_told_apart(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """401 and 403 in SendGrid's shape; neither message quotes the key."""
        wrong = await failure(sendgrid, http, MAIL, key="SG.not-a-key")
        assert wrong.message == (
            "sendgrid mail send: the credential was refused (HTTP 401: The provided "
            "authorization grant is invalid, expired, or revoked)"
        )
        limited = await failure(sendgrid, http, MAIL, key=LIMITED_KEY)
        assert limited.message == "sendgrid mail send: not permitted (HTTP 403: access forbidden)"
        assert LIMITED_KEY not in limited.message
        assert sendgrid.sent == []

    async def test_a_429_is_retryable_after_retry_after_or_the_rate_limit_reset(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """Retry-After when SendGrid sends it; otherwise the X-RateLimit-Reset second."""
        sendgrid.fail_next(rate_limited(int(FIXED_NOW.timestamp()) + 60, retry_after_s=5))
        error = await failure(sendgrid, http, MAIL)
        assert error.message == "sendgrid mail send: rate limited (HTTP 429); retry after 5 s"
        assert (error.retryable, error.retry_after_s) == (True, 5.0)
        sendgrid.fail_next(rate_limited(int(FIXED_NOW.timestamp()) + 42))
        error = await failure(sendgrid, http, MAIL)
        assert (error.retryable, error.retry_after_s) == (True, 42.0)

    async def test_a_5xx_and_a_timeout_are_retryable(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        sendgrid.fail_next(Reply(503, "<html>Service Unavailable</html>", content_type="text/html"))
        error = await failure(sendgrid, http, MAIL)
        assert error.message == (
            "sendgrid mail send: the service failed (HTTP 503: <html>Service Unavailable</html>)"
        )
        assert error.retryable is True
        sendgrid.fail_next(HANG)
        error = await failure(sendgrid, http, {**MAIL, "timeout_s": 0.2})
        assert error.message == "sendgrid mail send: timed out after 0.2 s"
        assert error.retryable is True

    async def test_the_engine_retries_a_429_after_its_delay_then_sends(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """The node never sleeps: the engine waits SendGrid's 4 s (its clock records it)
        and the second attempt is accepted."""
        sendgrid.fail_next(rate_limited(0, retry_after_s=4))
        clock = StepClock()
        result = await run_in_engine(
            http, "sendgrid", MAIL, clock=clock, retry={"max_attempts": 3, "backoff_s": 60},
            credentials={"sendgrid": {"type": "sendgrid", "data": credential(sendgrid)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [4.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [4.0]
        assert len(sendgrid.calls(SEND)) == 2
        assert result.output_of(NODE)[0]["message_id"] == sendgrid.sent[0]["message_id"]


class TestCredential:
    async def test_the_check_lists_the_keys_scopes(
        self, sendgrid: FakeSendGrid, http: httpx.AsyncClient
    ) -> None:
        """GET /v3/scopes: a full key may send; a limited key and a wrong one fail."""
        assert SENDGRID_CREDENTIAL.check is not None
        said = await SENDGRID_CREDENTIAL.check(_Check(http), credential(sendgrid))
        assert said == "the key may send mail (4 scopes)"
        assert sendgrid.calls("/v3/scopes")[0].headers["authorization"] == f"Bearer {KEY}"
        with pytest.raises(NodeError, match=r"^sendgrid test: the key is valid but lacks the "
                           r"mail\.send scope$"):  # fmt: skip
            await SENDGRID_CREDENTIAL.check(_Check(http), credential(sendgrid, LIMITED_KEY))
        with pytest.raises(NodeError, match=r"^sendgrid test: the credential was refused"):
            await SENDGRID_CREDENTIAL.check(_Check(http), credential(sendgrid, "SG.nope"))

    def test_the_key_is_secret_and_the_base_url_defaults_to_sendgrid(self) -> None:
        assert SENDGRID_CREDENTIAL.secret_fields == {"api_key"}
        field = SENDGRID_CREDENTIAL.field("base_url")
        assert field is not None
        assert field.default == "https://api.sendgrid.com"


class _Check:
    """The `CheckContext` the control plane gives a check: the guarded client, a budget."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    @property
    def timeout_s(self) -> float:
        return 5.0

    def http(self) -> httpx.AsyncClient:
        return self._http

    async def resolve_host(self, host: str, port: int) -> list[str]:
        raise AssertionError("an HTTP check resolves nothing itself")
