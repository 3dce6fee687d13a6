"""The OpenAI integration: the `openai` node (chat completion, with JSON-schema structured
output, and embeddings) and the `openai` credential (an API key), on OpenAI's REST API
called with httpx through `ctx.http()`.

Decisions:
- No SDK: the `openai` package builds its own httpx client, which would bypass the
  SSRF guard unless ours were passed in; the API is one JSON POST per operation.
- The key goes in `Authorization: Bearer`, the organization (when given) in
  `OpenAI-Organization`; `base_url` serves OpenAI-compatible servers and tests.
- A chat completion takes `messages`, or a single `prompt` (a user message), with an
  optional `system` message first. With `json_schema` it asks for structured output
  (`response_format` `json_schema`) and the output's `content` is the parsed JSON; a
  content that is not JSON, a refusal, or a cut-off answer is a node error.
- The output item of a chat is the first choice, flattened: `content`, `role`,
  `finish_reason`, and the completion's `id`, `model` and `usage`; of an embedding,
  the vector (`embedding`) with `model` and `usage`.
- OpenAI's errors are `{"error": {"message", "type", "param", "code"}}`: the message
  and the code (or type) are in the node error. A 429 is retryable after
  `retry-after-ms`, `Retry-After`, or else the rate-limit reset headers, except
  `insufficient_quota` (a 429 too): no retry pays a bill.
- Completions can take long: the default timeout is 120 s, not the 30 s of other services.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import httpx

from linkflow.nodes.builtin._common import Params
from linkflow.nodes.integrations._rest import (
    TIMEOUT_PARAMETER,
    Answer,
    Rest,
    Service,
    base_url,
    header_retry_after,
)
from linkflow.nodes.sdk import (
    CheckContext,
    CredentialField,
    CredentialType,
    Item,
    JsonObject,
    Node,
    NodeContext,
    NodeError,
    NodeGroup,
    NodeResult,
    amap_items,
)

__all__ = ["CREDENTIALS", "NODES", "OPENAI_CREDENTIAL", "OpenAI", "reset_delay_s"]

BASE_URL: Final = "https://api.openai.com/v1"
OPERATIONS: Final = ("chat", "embedding")
CHAT_TIMEOUT_S: Final = 120.0
"""A long completion takes a minute or more; 120 s leaves room without hanging forever."""
ROLES: Final = ("system", "developer", "user", "assistant", "tool")
_NO_RETRY_CODES: Final = frozenset({"insufficient_quota"})
"""429s that no wait cures: the account is out of credit."""
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S: Final[Mapping[str, float]] = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _error(body: Any) -> Mapping[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _detail(body: Any) -> str | None:
    error = _error(body)
    message = error.get("message")
    if not isinstance(message, str) or not message:
        return None
    code = error.get("code") or error.get("type")
    return f"{message} ({code})" if code else message


def _rate_limited(answer: Answer) -> bool:
    return answer.status == 429 and _error(answer.body).get("code") not in _NO_RETRY_CODES


def reset_delay_s(value: str | None) -> float | None:
    """Seconds in an `x-ratelimit-reset-*` header (a Go duration: `20ms`, `1s`, `6m0s`)."""
    text = (value or "").strip()
    parts = _DURATION.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _retry_after(answer: Answer, now: datetime) -> float | None:
    millis = answer.headers.get("retry-after-ms", "").strip()
    try:
        if millis:
            return max(float(millis) / 1000, 0.0)
    except ValueError:
        pass
    header = header_retry_after(answer, now)
    if header is not None:
        return header
    resets = [reset_delay_s(answer.headers.get(f"x-ratelimit-reset-{kind}"))
              for kind in ("requests", "tokens")]  # fmt: skip
    known = [delay for delay in resets if delay is not None]
    return max(known) if known else None


SERVICE: Final = Service("openai", detail=_detail, rate_limited=_rate_limited,
                         retry_after=_retry_after)  # fmt: skip


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    key = str(data.get("api_key") or "")
    headers = {"Authorization": f"Bearer {key}"}
    organization = data.get("organization")
    if organization:
        headers["OpenAI-Organization"] = str(organization)
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers=headers, secrets=(key,))  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /models: the key works, and sees this many models."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    body = (await rest.call("models list", "GET", "/models")).body
    models = body.get("data") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise rest.error("models list", "the answer has no data list")
    return f"authenticated; the key sees {len(models)} models"


OPENAI_CREDENTIAL: Final = CredentialType(
    "openai",
    "OpenAI",
    "An OpenAI API key (platform.openai.com, API keys), or the key of an OpenAI-compatible "
    "server at `base_url`.",
    (
        CredentialField("api_key", required=True, secret=True, description="The key (sk-...)."),
        CredentialField(
            "organization",
            description="The organization the requests count against (org-...); unset: "
            "the key's default.",
        ),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The API's address, with its version (a compatible server, or tests).",
        ),
    ),
    check=_check,
)


class OpenAI(Node):
    type = "openai"
    display_name = "OpenAI"
    group = NodeGroup.ACTION
    description = (
        "Per item, one OpenAI API call (credential slot `openai`): `chat` (POST "
        "/chat/completions) sends `messages`, or a `prompt` with an optional `system` "
        "message, to `model`; with `json_schema` the answer is structured output, parsed "
        "into `content`. The output item is the first choice: `content`, `role`, "
        "`finish_reason`, with `id`, `model` and `usage`. `embedding` (POST /embeddings) "
        "embeds `input`; the output item holds the vector in `embedding`. OpenAI's errors "
        "fail the item with its message and code; a 429 is retryable after the wait OpenAI "
        "asks for (but not `insufficient_quota`). The key is never shown in errors or logs."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"openai": ("openai",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "chat",
                          "description": "chat (a chat completion) or embedding."},
            "model": {"type": "string", "minLength": 1,
                      "description": "The model, e.g. `gpt-4o-mini` (chat) or "
                                     "`text-embedding-3-small` (embedding)."},
            "messages": {
                "type": "array", "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "role": {"type": "string", "enum": list(ROLES),
                                 "description": "Who speaks: system, developer, user, "
                                                "assistant or tool."},
                        "content": {"type": ["string", "array", "null"],
                                    "description": "The text, or OpenAI's content parts."},
                    },
                    "required": ["role"],
                    "additionalProperties": True,
                },
                "description": "chat: the conversation, as OpenAI takes it (instead of "
                               "`prompt`).",
            },
            "prompt": {"type": "string", "minLength": 1,
                       "description": "chat: a single user message (instead of `messages`)."},
            "system": {"type": "string", "minLength": 1,
                       "description": "chat: a system message, put first."},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2,
                            "description": "chat: sampling temperature (unset: the model's)."},
            "max_tokens": {"type": "integer", "minimum": 1,
                           "description": "chat: at most this many tokens in the answer."},
            "json_schema": {"type": "object", "additionalProperties": True,
                            "description": "chat: a JSON Schema the answer must follow "
                                           "(structured output); `content` is then the "
                                           "parsed JSON."},
            "schema_name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                            "default": "output",
                            "description": "chat: the name of `json_schema`, as OpenAI "
                                           "asks for one."},
            "strict": {"type": "boolean", "default": True,
                       "description": "chat: hold the answer to `json_schema` exactly "
                                      "(OpenAI's strict mode)."},
            "input": {"type": "string", "minLength": 1,
                      "description": "embedding: the text to embed."},
            "dimensions": {"type": "integer", "minimum": 1,
                           "description": "embedding: the vector's length, for models that "
                                          "allow a shorter one."},
            "extra": {"type": "object", "additionalProperties": True, "default": {},
                      "description": "More fields of the request, sent as they are "
                                     "(e.g. `top_p`, `seed`, `user`)."},
            "timeout_s": {**TIMEOUT_PARAMETER, "default": CHAT_TIMEOUT_S},
        },
        "required": ["operation", "model"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        operation = parameters.get("operation", "chat")
        if operation == "chat":
            if parameters.get("messages") is None and parameters.get("prompt") is None:
                return ["chat needs messages or a prompt"]
            if parameters.get("messages") is not None and parameters.get("prompt") is not None:
                return ["chat takes messages or a prompt, not both"]
        if operation == "embedding" and parameters.get("input") is None:
            return ["input is required for embedding"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            operation = params.text("operation", index)
            if operation not in OPERATIONS:
                raise NodeError(f"openai: no operation {operation!r}", item_index=index)
            if rest is None:
                data = await ctx.credential("openai")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            if operation == "chat":
                return [item.derive(await _chat(rest, params, index), index)]
            return [item.derive(await _embedding(rest, params, index), index)]

        return await amap_items(ctx, apply)


def _messages(params: Params, index: int) -> list[Any]:
    messages = params.array("messages", index)
    prompt = params.optional_text("prompt", index)
    if messages and prompt is not None:
        raise NodeError("openai chat: give messages or a prompt, not both", item_index=index)
    if prompt is not None:
        messages = [{"role": "user", "content": prompt}]
    if not messages:
        raise NodeError("openai chat: messages or a prompt is required", item_index=index)
    system = params.optional_text("system", index)
    return ([{"role": "system", "content": system}] if system else []) + list(messages)


def _chat_body(params: Params, index: int) -> JsonObject:
    body: JsonObject = {**params.mapping("extra", index), "model": params.text("model", index),
                        "messages": _messages(params, index)}  # fmt: skip
    for name in ("temperature", "max_tokens"):
        value = params.get(name, index)
        if value is not None:
            body[name] = value
    schema = params.get("json_schema", index)
    if schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": params.text("schema_name", index), "schema": schema,
            "strict": params.flag("strict", index)}}  # fmt: skip
    return body


async def _chat(rest: Rest, params: Params, index: int) -> JsonObject:
    body = _chat_body(params, index)
    completion = (await rest.call("chat", "POST", "/chat/completions", json=body)).body
    choices = completion.get("choices") if isinstance(completion, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    if not isinstance(first, dict) or not isinstance(first.get("message"), dict):
        raise rest.error("chat", "the answer has no choices[0].message")
    message = first["message"]
    finish = first.get("finish_reason")
    content = message.get("content")
    refusal = message.get("refusal")
    if refusal:
        raise rest.error("chat", f"the model refused: {refusal}")
    if "response_format" in body:
        content = _structured(rest, content, finish)
    return {"content": content, "role": message.get("role", "assistant"),
            "finish_reason": finish, "id": completion.get("id"),
            "model": completion.get("model"), "usage": completion.get("usage")}  # fmt: skip


def _structured(rest: Rest, content: Any, finish: Any) -> Any:
    if finish == "length":
        raise rest.error("chat", "the answer was cut off at max_tokens before its JSON ended")
    if not isinstance(content, str):
        raise rest.error("chat", "the answer has no content to parse as JSON")
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        shown = content if len(content) <= 80 else content[:80] + "…"
        raise rest.error("chat", f"the content is not JSON, though json_schema asked for it: "
                                 f"{shown!r}") from None  # fmt: skip


async def _embedding(rest: Rest, params: Params, index: int) -> JsonObject:
    body: JsonObject = {
        **params.mapping("extra", index),
        "model": params.text("model", index),
        "input": params.text("input", index),
        "encoding_format": "float",
    }
    dimensions = params.get("dimensions", index)
    if dimensions is not None:
        body["dimensions"] = dimensions
    answer = (await rest.call("embedding", "POST", "/embeddings", json=body)).body
    if not isinstance(answer, dict):
        answer = {}
    data = answer.get("data")
    first = data[0] if isinstance(data, list) and data else None
    vector = first.get("embedding") if isinstance(first, dict) else None
    if not isinstance(vector, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in vector
    ):
        raise rest.error("embedding", "the answer has no data[0].embedding list of numbers")
    return {"embedding": vector, "model": answer.get("model"), "usage": answer.get("usage")}


NODES: tuple[type[Node], ...] = (OpenAI,)
CREDENTIALS: tuple[CredentialType, ...] = (OPENAI_CREDENTIAL,)
