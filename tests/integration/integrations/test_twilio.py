"""The twilio node and credential against a loopback fake of Twilio's REST API
(tests/_saas/twilio.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from linkflow.nodes.integrations.twilio import TWILIO_CREDENTIAL, Twilio
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Recorded, Reply
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    NUMBER,
    SERVICE_SID,
    FakeTwilio,
    error,
    fake_twilio,
    too_many_requests,
)
from tests.unit.engine._support import StepClock

MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SMS = {"resource": "sms", "operation": "send", "to": "+15558675310", "from": NUMBER,
       "body": "Your code is 1234"}  # fmt: skip


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(twilio: FakeTwilio, token: str = AUTH_TOKEN) -> dict[str, Any]:
    return {"type": "twilio", "account_sid": ACCOUNT_SID, "auth_token": token,
            "base_url": twilio.url}  # fmt: skip


async def run(twilio: FakeTwilio, http: httpx.AsyncClient, parameters: dict[str, Any],
              token: str = AUTH_TOKEN,
              inputs: list[dict[str, Any]] | None = None) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items(*(inputs or [{}])), parameters=parameters, http=http,
                      credentials={"twilio": credential(twilio, token)})  # fmt: skip
    return await run_node(Twilio, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


def form(request: Recorded) -> dict[str, list[str]]:
    return parse_qs(request.body.decode(), keep_blank_values=True)


async def failure(twilio: FakeTwilio, http: httpx.AsyncClient, parameters: dict[str, Any],
                  token: str = AUTH_TOKEN) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(twilio, http, parameters, token)
    assert token not in caught.value.message
    basic = base64.b64encode(f"{ACCOUNT_SID}:{token}".encode()).decode()
    assert basic not in caught.value.message
    return caught.value


class TestSend:
    async def test_an_sms_is_a_form_post_with_basic_auth_and_the_output_is_the_message(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        [message] = out(await run(twilio, http, SMS))
        [request] = twilio.requests
        assert (request.method, request.path) == ("POST", MESSAGES)
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {expected}"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert form(request) == {"To": ["+15558675310"], "From": [NUMBER],
                                 "Body": ["Your code is 1234"]}  # fmt: skip
        assert message["sid"].startswith("SM")
        assert (message["status"], message["to"], message["from"], message["body"]) == (
            "queued", "+15558675310", NUMBER, "Your code is 1234")  # fmt: skip
        assert twilio.messages[0]["sid"] == message["sid"]

    async def test_media_urls_repeat_and_a_service_can_send_instead_of_a_number(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        urls = ["https://example.com/a.png", "https://example.com/b.png"]
        callback = "https://example.com/cb"
        parameters = {"to": "+15558675310", "messaging_service_sid": SERVICE_SID,
                      "media_url": urls, "extra": {"StatusCallback": callback}}  # fmt: skip
        [message] = out(await run(twilio, http, parameters))
        assert form(twilio.requests[0]) == {"To": ["+15558675310"],
                                            "MessagingServiceSid": [SERVICE_SID],
                                            "MediaUrl": urls,
                                            "StatusCallback": [callback]}  # fmt: skip
        assert (message["status"], message["num_media"]) == ("accepted", "2")

    async def test_one_message_per_item(self, twilio: FakeTwilio, http: httpx.AsyncClient) -> None:
        people = [{"phone": "+15550000001"}, {"phone": "+15550000002"}]
        to = per_item(lambda item, _: item.json["phone"] if item else None)
        sent = out(await run(twilio, http, {**SMS, "to": to}, inputs=people))
        assert [m["to"] for m in sent] == ["+15550000001", "+15550000002"]
        assert [form(r)["To"] for r in twilio.requests] == [["+15550000001"], ["+15550000002"]]

    async def test_twilios_message_code_and_link_are_in_the_error(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        invalid = await failure(twilio, http, {**SMS, "to": "12345"})
        assert invalid.message == (
            "twilio sms send: refused (HTTP 400: Invalid 'To' Phone Number: 12345 (Twilio error "
            "21211, https://www.twilio.com/docs/errors/21211))"
        )
        assert invalid.retryable is False
        foreign = await failure(twilio, http, {**SMS, "from": "+15550001111"})
        assert "(Twilio error 21606," in foreign.message

    def test_a_sender_and_a_body_or_media_are_needed_when_the_workflow_is_saved(self) -> None:
        assert Twilio().check({"to": "+15558675310"}) == [
            "sms send needs from or messaging_service_sid",
            "sms send needs a body or a media_url",
        ]
        assert Twilio().check({"to": "+1", "messaging_service_sid": SERVICE_SID,
                               "media_url": ["https://example.com/a.png"]}) == []  # fmt: skip


class TestFailures:
    async def test_a_wrong_token_is_refused_and_never_shown(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        refused = await failure(twilio, http, SMS, token="wrongwrongwrongwrongwrongwrong00")
        assert refused.message == (
            "twilio sms send: the credential was refused (HTTP 401: Authenticate (Twilio error "
            "20003, https://www.twilio.com/docs/errors/20003))"
        )

    async def test_an_unknown_account_is_not_found(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        twilio.fail_next(error(404, 20404, f"The requested resource {MESSAGES} was not found"))
        missing = await failure(twilio, http, SMS)
        assert missing.message.startswith("twilio sms send: not found (HTTP 404: The requested")
        assert missing.retryable is False

    async def test_a_429_is_retryable_after_retry_after(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        twilio.fail_next(too_many_requests(2))
        limited = await failure(twilio, http, SMS)
        assert limited.message == "twilio sms send: rate limited (HTTP 429); retry after 2 s"
        assert (limited.retryable, limited.retry_after_s) == (True, 2.0)
        twilio.fail_next(too_many_requests())
        bare = await failure(twilio, http, SMS)
        assert (bare.retryable, bare.retry_after_s) == (True, None)

    async def test_a_500_a_malformed_answer_and_a_timeout(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        twilio.fail_next(error(500, 20500, "Internal Server Error"))
        down = await failure(twilio, http, SMS)
        assert (down.message, down.retryable) == (
            "twilio sms send: the service failed (HTTP 500: Internal Server Error (Twilio error "
            "20500, https://www.twilio.com/docs/errors/20500))", True)  # fmt: skip
        twilio.fail_next(Reply(201, "<Response>", content_type="application/json"))
        assert (await failure(twilio, http, SMS)).message == (
            "twilio sms send: the answer is not JSON (HTTP 201): <Response>"
        )
        twilio.fail_next(Reply.json({"status": "queued"}, 201))
        assert (await failure(twilio, http, SMS)).message == (
            "twilio sms send: the answer is not a Message (no sid)"
        )
        twilio.fail_next(HANG)
        slow = await failure(twilio, http, {**SMS, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == ("twilio sms send: timed out after 0.2 s", True)
        assert twilio.messages == []

    async def test_the_engine_retries_after_retry_after_then_sends(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        twilio.fail_next(too_many_requests(5))
        clock = StepClock()
        result = await run_in_engine(
            http, "twilio", SMS, clock=clock, retry={"max_attempts": 2, "backoff_s": 60},
            credentials={"twilio": {"type": "twilio", "data": credential(twilio)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [5.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [5.0]
        assert len(twilio.requests) == 2
        assert result.output_of(NODE)[0]["sid"] == twilio.messages[0]["sid"]


class TestCredential:
    async def test_the_check_reads_the_account_and_shows_no_token(
        self, twilio: FakeTwilio, http: httpx.AsyncClient
    ) -> None:
        assert TWILIO_CREDENTIAL.check is not None
        said = await TWILIO_CREDENTIAL.check(Checking(http), credential(twilio))
        assert said == "authenticated as LinkFlow test (active)"
        [request] = twilio.requests
        assert (request.method, request.path) == ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}.json")
        with pytest.raises(NodeError, match=r"^twilio account get: the credential was refused"):
            await TWILIO_CREDENTIAL.check(Checking(http), credential(twilio, "nope"))
