"""A fake of OpenAI's API (https://platform.openai.com/docs/api-reference) on loopback.

What it speaks, as OpenAI does: `Authorization: Bearer <key>` and an optional
`OpenAI-Organization`; `GET /v1/models` (a list object); `POST /v1/chat/completions`
(`model`, `messages`, and `response_format` `json_schema`, whose schema strict mode
holds to `additionalProperties: false` at its root), answering a `chat.completion`
with one choice; `POST /v1/embeddings` (`input`, `dimensions`) answering a list of
`embedding` objects. Errors are `{"error": {"message", "type", "param", "code"}}`
(invalid_api_key, with the key shown masked as OpenAI does; model_not_found;
invalid_request_error). A 429 is staged by a test (`fail_next(rate_limited(...))`):
OpenAI's rate_limit_exceeded body with its reset headers, or `insufficient_quota`.

The answer's content is the next of `contents` a test queued, else an echo of the
last user message, or, under a schema, an object with a sample value per property.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = [
    "API_KEY",
    "ORGANIZATION",
    "FakeOpenAI",
    "error",
    "fake_openai",
    "rate_limited",
    "vector",
]

API_KEY: Final = "sk-proj-loopback0000000000000000000000000000000000"
ORGANIZATION: Final = "org-loopback"
CHAT_MODEL: Final = "gpt-4o-mini"
EMBEDDING_MODEL: Final = "text-embedding-3-small"
MODELS: Final = (CHAT_MODEL, EMBEDDING_MODEL, "gpt-4o")
DIMENSIONS: Final = 8
"""The fake's vectors are short: the shape matters, not the 1536 numbers."""
_SAMPLES: Final[dict[str, Any]] = {"string": "text", "number": 1.5, "integer": 1,
                                   "boolean": True, "array": [], "object": {}}  # fmt: skip


def error(status: int, message: str, type_: str, code: str | None = None,
          param: str | None = None, **headers: str) -> Reply:  # fmt: skip
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return Reply.json(body, status, **headers)


def rate_limited(reset_requests: str, retry_after_s: int | None = None) -> Reply:
    """OpenAI's 429: the reset headers, and Retry-After when given."""
    headers = {"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-requests": reset_requests,
               "x-ratelimit-reset-tokens": "12ms"}  # fmt: skip
    if retry_after_s is not None:
        headers["retry-after"] = str(retry_after_s)
    return error(429, f"Rate limit reached for {CHAT_MODEL} in organization {ORGANIZATION} on "
                      "requests per min (RPM): Limit 3, Used 3, Requested 1.",
                 "requests", "rate_limit_exceeded", **headers)  # fmt: skip


def _masked(key: str) -> str:
    return key[:3] + "*" * max(len(key) - 7, 0) + key[-4:] if len(key) > 8 else "***"


class FakeOpenAI(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.contents: list[str] = []
        """What the next chat completions answer, in order."""
        self._completions = 0

    def handle(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {API_KEY}":
            key = auth.removeprefix("Bearer ")
            return error(401, f"Incorrect API key provided: {_masked(key)}. You can find your "
                              "API key at https://platform.openai.com/account/api-keys.",
                         "invalid_request_error", "invalid_api_key")  # fmt: skip
        organization = request.headers.get("openai-organization")
        if organization is not None and organization != ORGANIZATION:
            return error(401, f"No such organization: {organization}.",
                         "invalid_request_error", "no_such_organization")  # fmt: skip
        body = body_json(request)
        route = (request.method, request.path)
        if route == ("GET", "/v1/models"):
            data = [{"id": model, "object": "model", "created": 1700000000,
                     "owned_by": "system"} for model in MODELS]  # fmt: skip
            return Reply.json({"object": "list", "data": data})
        if request.method == "POST" and not isinstance(body, dict):
            return error(400, "We could not parse the JSON body of your request.",
                         "invalid_request_error")  # fmt: skip
        if route == ("POST", "/v1/chat/completions"):
            return self._chat(body)
        if route == ("POST", "/v1/embeddings"):
            return self._embeddings(body)
        return error(404, f"Invalid URL ({request.method} {request.path})",
                     "invalid_request_error")  # fmt: skip

    def _model(self, body: dict[str, Any]) -> Reply | None:
        model = body.get("model")
        if not model:
            return error(400, "you must provide a model parameter", "invalid_request_error")
        if model not in MODELS:
            return error(404, f"The model `{model}` does not exist or you do not have access "
                              "to it.", "invalid_request_error", "model_not_found")  # fmt: skip
        return None

    def _chat(self, body: dict[str, Any]) -> Reply:
        refused = self._model(body)
        if refused is not None:
            return refused
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "Missing required parameter: 'messages'.",
                         "invalid_request_error", "missing_required_parameter",
                         "messages")  # fmt: skip
        schema = _schema(body.get("response_format"))
        if isinstance(schema, Reply):
            return schema
        if self.contents:
            content = self.contents.pop(0)
        elif schema is not None:
            properties = schema.get("properties", {})
            content = json.dumps({name: _SAMPLES.get(prop.get("type"), None)
                                  for name, prop in properties.items()})  # fmt: skip
        else:
            users = [m.get("content") for m in messages if m.get("role") == "user"]
            content = f"echo: {users[-1] if users else ''}"
        self._completions += 1
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        return Reply.json({
            "id": f"chatcmpl-{self._completions}", "object": "chat.completion",
            "created": 1767225600, "model": f"{body['model']}-2024-07-18",
            "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content,
                                     "refusal": None, "annotations": []}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "system_fingerprint": "fp_loopback",
        })  # fmt: skip

    def _embeddings(self, body: dict[str, Any]) -> Reply:
        refused = self._model(body)
        if refused is not None:
            return refused
        given = body.get("input")
        inputs: list[Any] = given if isinstance(given, list) else [given]
        if not inputs or not all(isinstance(text, str) and text for text in inputs):
            return error(400, "'$.input' is invalid. Please check the API reference: "
                              "https://platform.openai.com/docs/api-reference.",
                         "invalid_request_error")  # fmt: skip
        size = int(body.get("dimensions") or DIMENSIONS)
        data = [{"object": "embedding", "index": index, "embedding": vector(text, size)}
                for index, text in enumerate(inputs)]  # fmt: skip
        tokens = sum(len(str(text).split()) for text in inputs)
        return Reply.json({"object": "list", "data": data, "model": body["model"],
                           "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})  # fmt: skip


def vector(text: str, size: int = DIMENSIONS) -> list[float]:
    """The fake's embedding of `text`: numbers in [-1, 1] from its hash."""
    digest = hashlib.sha256(text.encode()).digest() * (size // 32 + 1)
    return [round(byte / 127.5 - 1, 6) for byte in digest[:size]]


def _schema(response_format: Any) -> dict[str, Any] | Reply | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    name = spec.get("name")
    if not name:
        return error(400, "Missing required parameter: 'response_format.json_schema.name'.",
                     "invalid_request_error", "missing_required_parameter",
                     "response_format.json_schema.name")  # fmt: skip
    schema = spec.get("schema") or {}
    if spec.get("strict") and schema.get("additionalProperties") is not False:
        return error(400, f"Invalid schema for response_format '{name}': In context=(), "
                          "'additionalProperties' is required to be supplied and to be false.",
                     "invalid_request_error", "invalid_json_schema",
                     "response_format")  # fmt: skip
    return dict(schema)


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    with run_fake(FakeOpenAI()) as fake:
        yield fake
