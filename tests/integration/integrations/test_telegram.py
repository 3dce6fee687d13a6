"""The telegram node and credential against a loopback fake of the Bot API
(tests/_saas/telegram.py), through the real SSRF-guarded client (loopback allowed).

The bot token is part of every URL, so every failure here also shows it is not quoted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.telegram import TELEGRAM_CREDENTIAL, Telegram
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, MemoryBlobStore, items, run_node
from linkflow.security.ssrf import guarded_client
from tests._http_server import form_parts
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.telegram import BOT, TOKEN, FakeTelegram, fake_telegram, too_many_requests
from tests.unit.engine._support import StepClock

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR photo bytes \x00\xff"
SEND = {"operation": "send_message", "chat_id": 42, "text": "Build 17 passed"}


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    with fake_telegram() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(telegram: FakeTelegram, token: str = TOKEN) -> dict[str, Any]:
    return {"type": "telegram", "token": token, "base_url": telegram.url}


async def run(
    telegram: FakeTelegram, http: httpx.AsyncClient, parameters: dict[str, Any],
    *, token: str = TOKEN, ctx_items: Any = None, blobs: MemoryBlobStore | None = None,
) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=ctx_items or items({}), parameters=parameters, blobs=blobs,
                      credentials={"telegram": credential(telegram, token)}, http=http)  # fmt: skip
    return await run_node(Telegram, ctx)


async def failure(telegram: FakeTelegram, http: httpx.AsyncClient, parameters: dict[str, Any],
                  **kwargs: Any) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(telegram, http, parameters, **kwargs)
    token = kwargs.get("token", TOKEN)
    assert token not in caught.value.message
    assert token.split(":")[1] not in caught.value.message
    return caught.value


class TestSendMessage:
    async def test_sends_json_to_the_bots_method_and_outputs_the_message(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        parameters = {**SEND, "parse_mode": "HTML", "disable_notification": True,
                      "reply_to_message_id": 7, "extra": {"protect_content": True}}  # fmt: skip
        [item] = (await run(telegram, http, parameters)).outputs["main"]
        [request] = telegram.calls("sendMessage")
        assert (request.method, request.path) == ("POST", f"/bot{TOKEN}/sendMessage")
        assert request.headers["content-type"] == "application/json"
        assert body_json(request) == {
            "chat_id": 42, "text": "Build 17 passed", "parse_mode": "HTML",
            "disable_notification": True, "reply_to_message_id": 7, "protect_content": True,
        }  # fmt: skip
        assert item.json == telegram.sent[0]
        assert item.json["text"] == "Build 17 passed"
        assert item.json["chat"]["id"] == 42
        assert item.json["from"]["username"] == BOT["username"]

    async def test_a_channel_username_is_a_chat_id(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        [item] = (await run(telegram, http, {**SEND, "chat_id": "@linkflow_news"})).outputs["main"]
        assert item.json["chat"]["type"] == "channel"

    async def test_an_unknown_chat_is_telegrams_description(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        error = await failure(telegram, http, {**SEND, "chat_id": 99})
        assert error.message == (
            "telegram send message: refused (HTTP 400: Bad Request: chat not found)"
        )
        assert error.retryable is False

    def test_text_is_required_when_the_workflow_is_saved(self) -> None:
        assert Telegram().check({"operation": "send_message", "chat_id": 1}) == [
            "text is required for send_message"
        ]


class TestSendPhoto:
    async def test_uploads_the_items_binary_as_multipart(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        """chat_id and caption are form fields, the photo a file part with its name and type."""
        blobs = MemoryBlobStore()
        ref = await blobs.put(PNG, mime_type="image/png", file_name="chart.png")
        parameters = {"operation": "send_photo", "chat_id": 42, "caption": "Today's chart",
                      "extra": {"reply_markup": {"inline_keyboard": []}}}  # fmt: skip
        with_photo = items({}, binary={"data": ref.to_json()})
        result = await run(telegram, http, parameters, blobs=blobs, ctx_items=with_photo)
        [item] = result.outputs["main"]
        [request] = telegram.calls("sendPhoto")
        assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
        parts = form_parts(request)
        assert parts["chat_id"] == (None, None, b"42")
        assert parts["caption"] == (None, None, b"Today's chart")
        assert parts["reply_markup"] == (None, None, b'{"inline_keyboard":[]}')
        assert parts["photo"] == ("chart.png", "image/png", PNG)
        assert telegram.uploads == [("chart.png", "image/png", PNG)]
        assert item.json["caption"] == "Today's chart"
        assert item.json["photo"][0]["file_id"] == "AgACAgUpload1"

    async def test_a_photo_url_is_sent_as_json(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        parameters = {"operation": "send_photo", "chat_id": 42,
                      "photo": "https://example.com/chart.png"}  # fmt: skip
        await run(telegram, http, parameters)
        assert body_json(telegram.calls("sendPhoto")[0]) == {
            "chat_id": 42, "photo": "https://example.com/chart.png"}  # fmt: skip

    async def test_a_missing_binary_names_what_the_item_has_and_sends_nothing(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        error = await failure(telegram, http, {"operation": "send_photo", "chat_id": 42,
                                               "binary_property": "chart"})  # fmt: skip
        assert error.message == "telegram send photo: the item has no binary 'chart' (it has: none)"
        assert telegram.requests == []


class TestFailures:
    async def test_a_wrong_token_is_refused_and_not_quoted(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        error = await failure(telegram, http, SEND, token="7000000001:AAWrongTokenValue")
        assert error.message == (
            "telegram send message: the credential was refused (HTTP 401: Unauthorized)"
        )

    @pytest.mark.parametrize(
        ("status", "description", "message", "retryable"),
        [
            (403, "Forbidden: bot was blocked by the user",
             "not permitted (HTTP 403: Forbidden: bot was blocked by the user)", False),
            (404, "Not Found", "not found (HTTP 404: Not Found)", False),
            (500, "Internal Server Error",
             "the service failed (HTTP 500: Internal Server Error)", True),
        ],
    )  # fmt: skip
    async def test_error_statuses_name_the_operation_and_telegrams_description(
        self, telegram: FakeTelegram, http: httpx.AsyncClient, status: int, description: str,
        message: str, retryable: bool,
    ) -> None:  # fmt: skip
        telegram.fail_next(Reply.json({"ok": False, "error_code": status,
                                       "description": description}, status))  # fmt: skip
        error = await failure(telegram, http, SEND)
        assert (error.message, error.retryable) == (f"telegram send message: {message}", retryable)

    async def test_a_429_waits_as_long_as_parameters_retry_after_says(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        telegram.fail_next(too_many_requests(5))
        error = await failure(telegram, http, SEND)
        assert error.message == "telegram send message: rate limited (HTTP 429); retry after 5 s"
        assert (error.retryable, error.retry_after_s) == (True, 5.0)

    async def test_a_malformed_answer_is_an_error(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        telegram.fail_next(Reply(200, '{"ok": true, "result": ', content_type="application/json"))
        error = await failure(telegram, http, SEND)
        assert error.message == (
            'telegram send message: the answer is not JSON (HTTP 200): {"ok": true, "result":'
        )

    async def test_a_timeout_is_retryable(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        telegram.fail_next(HANG)
        error = await failure(telegram, http, {**SEND, "timeout_s": 0.2})
        assert (error.message, error.retryable) == (
            "telegram send message: timed out after 0.2 s", True)  # fmt: skip

    async def test_an_address_the_guard_refuses_is_reported_without_the_url(
        self, telegram: FakeTelegram
    ) -> None:
        """With the production policy, loopback is refused before any request is sent."""
        strict = guarded_client(allow_private=False)
        try:
            error = await failure(telegram, strict, SEND)
        finally:
            await strict.aclose()
        assert error.message.startswith("telegram send message: ")
        assert "LINKFLOW_HTTP_ALLOW_PRIVATE=true" in error.message
        assert error.retryable is False
        assert telegram.requests == []

    async def test_the_engine_retries_after_telegrams_retry_after_then_sends(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        telegram.fail_next(too_many_requests(5))
        clock = StepClock()
        result = await run_in_engine(
            http, "telegram", SEND, clock=clock, retry={"max_attempts": 2, "backoff_s": 60},
            credentials={"telegram": {"type": "telegram", "data": credential(telegram)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [5.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [5.0]
        assert TOKEN not in str([e.data for e in result.events])
        assert len(telegram.calls("sendMessage")) == 2
        assert result.output_of(NODE)[0]["text"] == "Build 17 passed"


class TestCredential:
    async def test_the_check_calls_get_me(
        self, telegram: FakeTelegram, http: httpx.AsyncClient
    ) -> None:
        assert TELEGRAM_CREDENTIAL.check is not None
        said = await TELEGRAM_CREDENTIAL.check(Checking(http), credential(telegram))
        assert said == "authenticated as @linkflow_test_bot"
        assert telegram.requests[0].path == f"/bot{TOKEN}/getMe"
        with pytest.raises(NodeError) as caught:
            await TELEGRAM_CREDENTIAL.check(Checking(http), credential(telegram, "1:AAnope"))
        assert caught.value.message == (
            "telegram get me: the credential was refused (HTTP 401: Unauthorized)"
        )
        assert TELEGRAM_CREDENTIAL.secret_fields == {"token"}
