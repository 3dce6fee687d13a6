"""The openai node and credential against a loopback fake of OpenAI's API
(tests/_saas/openai.py), through the real SSRF-guarded client (loopback allowed)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from linkflow.nodes.integrations.openai import OPENAI_CREDENTIAL, OpenAI, reset_delay_s
from linkflow.nodes.sdk import NodeError, NodeResult
from linkflow.nodes.testing import FakeContext, items, per_item, run_node
from linkflow.security.ssrf import guarded_client
from tests._saas._base import HANG, Reply, body_json
from tests._saas._engine import NODE, Checking, events, run_in_engine
from tests._saas.openai import (
    API_KEY,
    ORGANIZATION,
    FakeOpenAI,
    error,
    fake_openai,
    rate_limited,
    vector,
)
from tests.unit.engine._support import StepClock

CHAT = {"operation": "chat", "model": "gpt-4o-mini"}
EMBED = {"operation": "embedding", "model": "text-embedding-3-small"}
PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}  # fmt: skip


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with fake_openai() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = guarded_client(allow_private=True)
    yield client
    await client.aclose()


def credential(openai: FakeOpenAI, key: str = API_KEY, **fields: str) -> dict[str, Any]:
    return {"type": "openai", "api_key": key, "base_url": f"{openai.url}/v1", **fields}


async def run(openai: FakeOpenAI, http: httpx.AsyncClient, parameters: dict[str, Any],
              key: str = API_KEY,
              inputs: list[dict[str, Any]] | None = None) -> NodeResult:  # fmt: skip
    ctx = FakeContext(items=items(*(inputs or [{}])), parameters=parameters, http=http,
                      credentials={"openai": credential(openai, key)})  # fmt: skip
    return await run_node(OpenAI, ctx)


def out(result: NodeResult) -> list[dict[str, Any]]:
    return [item.json for item in result.outputs["main"]]


async def failure(openai: FakeOpenAI, http: httpx.AsyncClient, parameters: dict[str, Any],
                  key: str = API_KEY) -> NodeError:  # fmt: skip
    with pytest.raises(NodeError) as caught:
        await run(openai, http, parameters, key)
    assert key not in caught.value.message
    return caught.value


class TestChat:
    async def test_a_prompt_and_a_system_message_become_the_conversation(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        """POST /v1/chat/completions with the key as a bearer token, the system message
        first, the prompt as the user's; the output is the first choice, flattened."""
        parameters = {**CHAT, "system": "Be brief.", "prompt": "Hello", "temperature": 0.2,
                      "max_tokens": 50, "extra": {"seed": 7}}  # fmt: skip
        [answer] = out(await run(openai, http, parameters))
        [request] = openai.requests
        assert (request.method, request.path) == ("POST", "/v1/chat/completions")
        assert request.headers["authorization"] == f"Bearer {API_KEY}"
        assert request.headers["content-type"] == "application/json"
        assert "openai-organization" not in request.headers
        assert body_json(request) == {
            "model": "gpt-4o-mini", "seed": 7, "temperature": 0.2, "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "Hello"}],
        }  # fmt: skip
        assert answer == {"content": "echo: Hello", "role": "assistant", "finish_reason": "stop",
                          "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
                          "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                    "total_tokens": 5}}  # fmt: skip

    async def test_messages_go_as_given_one_completion_per_item(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        messages = per_item(lambda item, _: [{"role": "user", "content": item.json["question"]}]
                            if item else None)  # fmt: skip
        questions = [{"question": "one?"}, {"question": "two?"}]
        answers = out(await run(openai, http, {**CHAT, "messages": messages}, inputs=questions))
        assert [body_json(r)["messages"] for r in openai.requests] == [
            [{"role": "user", "content": "one?"}],
            [{"role": "user", "content": "two?"}],
        ]
        assert [a["content"] for a in answers] == ["echo: one?", "echo: two?"]

    async def test_a_json_schema_asks_for_structured_output_and_the_content_is_parsed(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        openai.contents.append('{"name": "Ada", "age": 36}')
        parameters = {**CHAT, "prompt": "Who wrote the first program?", "json_schema": PERSON,
                      "schema_name": "person"}  # fmt: skip
        [answer] = out(await run(openai, http, parameters))
        assert body_json(openai.requests[0])["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        }
        assert answer["content"] == {"name": "Ada", "age": 36}

    async def test_content_that_is_not_json_under_a_schema_fails_the_item(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        openai.contents.append("Ada Lovelace, 36")
        parameters = {**CHAT, "prompt": "Who?", "json_schema": PERSON}
        failed = await failure(openai, http, parameters)
        assert failed.message == ("openai chat: the content is not JSON, though json_schema "
                                  "asked for it: 'Ada Lovelace, 36'")  # fmt: skip
        assert failed.retryable is False

    async def test_a_refusal_and_a_cut_off_answer_under_a_schema_are_errors(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        parameters = {**CHAT, "prompt": "Who?", "json_schema": PERSON}
        choice = {"index": 0, "finish_reason": "stop",
                  "message": {"role": "assistant", "content": None,
                              "refusal": "I can't help with that."}}  # fmt: skip
        openai.fail_next(Reply.json({"id": "c", "object": "chat.completion",
                                     "choices": [choice]}))  # fmt: skip
        refused = await failure(openai, http, parameters)
        assert refused.message == "openai chat: the model refused: I can't help with that."
        cut = {
            "index": 0,
            "finish_reason": "length",
            "message": {"role": "assistant", "content": '{"name": "A', "refusal": None},
        }
        openai.fail_next(Reply.json({"id": "c", "object": "chat.completion", "choices": [cut]}))
        assert (await failure(openai, http, parameters)).message == (
            "openai chat: the answer was cut off at max_tokens before its JSON ended"
        )

    async def test_openais_message_and_code_are_in_the_error(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        """A strict schema that leaves additionalProperties open is OpenAI's 400; an unknown
        model its 404."""
        loose = {"type": "object", "properties": {"name": {"type": "string"}}}
        invalid = await failure(openai, http, {**CHAT, "prompt": "x", "json_schema": loose})
        assert invalid.message == (
            "openai chat: refused (HTTP 400: Invalid schema for response_format 'output': In "
            "context=(), 'additionalProperties' is required to be supplied and to be false. "
            "(invalid_json_schema))"
        )
        missing = await failure(openai, http, {**CHAT, "model": "gpt-nope", "prompt": "x"})
        assert missing.message == (
            "openai chat: not found (HTTP 404: The model `gpt-nope` does not exist or you do "
            "not have access to it. (model_not_found))"
        )
        assert missing.retryable is False

    def test_a_chat_needs_messages_or_a_prompt_when_the_workflow_is_saved(self) -> None:
        assert OpenAI().check(CHAT) == ["chat needs messages or a prompt"]
        both = {**CHAT, "prompt": "x", "messages": [{"role": "user", "content": "y"}]}
        assert OpenAI().check(both) == ["chat takes messages or a prompt, not both"]
        assert OpenAI().check(EMBED) == ["input is required for embedding"]


class TestEmbedding:
    async def test_each_items_input_becomes_its_vector(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        parameters = {
            **EMBED,
            "input": per_item(lambda item, _: item.json["text"] if item else None),
            "dimensions": 4,
        }
        texts = [{"text": "red apple"}, {"text": "green pear"}]
        outputs = out(await run(openai, http, parameters, inputs=texts))
        assert [(r.method, r.path) for r in openai.requests] == [("POST", "/v1/embeddings")] * 2
        assert body_json(openai.requests[0]) == {"model": "text-embedding-3-small",
                                                 "input": "red apple", "dimensions": 4,
                                                 "encoding_format": "float"}  # fmt: skip
        assert outputs == [
            {"embedding": vector(text["text"], 4), "model": "text-embedding-3-small",
             "usage": {"prompt_tokens": 2, "total_tokens": 2}} for text in texts]  # fmt: skip

    async def test_an_answer_without_a_vector_fails_the_item(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        openai.fail_next(Reply.json({"object": "list", "data": [{"embedding": "AAAA"}]}))
        failed = await failure(openai, http, {**EMBED, "input": "x"})
        assert failed.message == (
            "openai embedding: the answer has no data[0].embedding list of numbers"
        )


class TestFailures:
    async def test_a_wrong_key_is_refused_and_never_shown(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        wrong = "sk-proj-wrongwrongwrongwrongwrong"
        refused = await failure(openai, http, {**CHAT, "prompt": "x"}, key=wrong)
        assert refused.message.startswith(
            "openai chat: the credential was refused (HTTP 401: Incorrect API key provided: sk-"
        )
        assert refused.message.endswith("(invalid_api_key))")
        assert refused.retryable is False

    async def test_a_429_is_retryable_after_retry_after_or_the_reset_header(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        chat = {**CHAT, "prompt": "x"}
        openai.fail_next(rate_limited("20s", retry_after_s=3))
        limited = await failure(openai, http, chat)
        assert limited.message == "openai chat: rate limited (HTTP 429); retry after 3 s"
        assert (limited.retryable, limited.retry_after_s) == (True, 3.0)
        openai.fail_next(rate_limited("1m30.5s"))
        reset = await failure(openai, http, chat)
        assert (reset.retryable, reset.retry_after_s) == (True, 90.5)

    async def test_insufficient_quota_is_not_retried(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        openai.fail_next(error(429, "You exceeded your current quota, please check your plan "
                                    "and billing details.", "insufficient_quota",
                               "insufficient_quota"))  # fmt: skip
        broke = await failure(openai, http, {**CHAT, "prompt": "x"})
        assert broke.message == (
            "openai chat: refused (HTTP 429: You exceeded your current quota, please check "
            "your plan and billing details. (insufficient_quota))"
        )
        assert broke.retryable is False

    async def test_a_500_a_malformed_answer_and_a_timeout(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        chat = {**CHAT, "prompt": "x"}
        openai.fail_next(error(500, "The server had an error while processing your request. "
                                    "Sorry about that!", "server_error"))  # fmt: skip
        down = await failure(openai, http, chat)
        assert (down.message, down.retryable) == (
            "openai chat: the service failed (HTTP 500: The server had an error while "
            "processing your request. Sorry about that! (server_error))", True)  # fmt: skip
        openai.fail_next(Reply(200, "{not json", content_type="application/json"))
        assert (await failure(openai, http, chat)).message == (
            "openai chat: the answer is not JSON (HTTP 200): {not json"
        )
        openai.fail_next(Reply.json({"object": "chat.completion", "choices": []}))
        assert (await failure(openai, http, chat)).message == (
            "openai chat: the answer has no choices[0].message"
        )
        openai.fail_next(HANG)
        slow = await failure(openai, http, {**chat, "timeout_s": 0.2})
        assert (slow.message, slow.retryable) == ("openai chat: timed out after 0.2 s", True)

    def test_the_reset_headers_read_as_go_durations(self) -> None:
        assert [reset_delay_s(v) for v in ("12ms", "1s", "6m0s", "1h2m3.5s")] == [
            0.012, 1.0, 360.0, 3723.5]  # fmt: skip
        assert [reset_delay_s(v) for v in (None, "", "soon", "5", "1s later")] == [None] * 5

    async def test_the_engine_retries_after_the_wait_openai_asks_for_then_answers(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        openai.fail_next(rate_limited("4s"))
        clock = StepClock()
        result = await run_in_engine(
            http, "openai", {**CHAT, "prompt": "retried"}, clock=clock,
            retry={"max_attempts": 2, "backoff_s": 60},
            credentials={"openai": {"type": "openai", "data": credential(openai)}},
        )  # fmt: skip
        assert result.status == "completed", result.error
        assert clock.slept == [4.0]
        assert [e["delay_s"] for e in events(result, "node.retrying")] == [4.0]
        assert len(openai.requests) == 2
        assert result.output_of(NODE)[0]["content"] == "echo: retried"


class TestCredential:
    async def test_the_check_lists_the_models_with_the_organization(
        self, openai: FakeOpenAI, http: httpx.AsyncClient
    ) -> None:
        assert OPENAI_CREDENTIAL.check is not None
        data = credential(openai, organization=ORGANIZATION)
        said = await OPENAI_CREDENTIAL.check(Checking(http), data)
        assert said == "authenticated; the key sees 3 models"
        [request] = openai.requests
        assert (request.method, request.path) == ("GET", "/v1/models")
        assert request.headers["openai-organization"] == ORGANIZATION
        with pytest.raises(NodeError, match=r"^openai models list: the credential was refused"):
            await OPENAI_CREDENTIAL.check(Checking(http), credential(openai, "sk-nope-nope-nope"))
        with pytest.raises(NodeError, match=r"No such organization: org-other"):
            await OPENAI_CREDENTIAL.check(Checking(http),
                                          credential(openai, organization="org-other"))  # fmt: skip
