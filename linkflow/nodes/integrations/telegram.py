"""The Telegram integration: the `telegram` node (send a message, send a photo) and the
`telegram` credential (a bot token), on the Bot API called with httpx through `ctx.http()`.

Decisions:
- No SDK: python-telegram-bot and aiogram bring their own HTTP stacks and polling
  machinery; two Bot API methods are two POSTs.
- The token is part of every URL (`/bot<token>/<method>`), so no message of this
  module quotes a URL, and the token is masked (`***`) in anything a library or
  Telegram might echo; LinkFlow's logging keeps httpx's request lines out.
- `sendPhoto` uploads the item's binary as multipart/form-data (`binary_property`),
  or passes `photo` (an HTTPS URL or a file_id Telegram knows) as JSON.
- Telegram's errors are `{"ok": false, "error_code", "description"}`; a 429 says
  how long to wait in `parameters.retry_after`, which becomes the retry delay.
  Only sending operations are offered: getUpdates would compete with a webhook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import httpx

from linkflow.nodes.builtin._common import Params, canonical_json
from linkflow.nodes.integrations._rest import (
    TIMEOUT_PARAMETER,
    Answer,
    Rest,
    Service,
    base_url,
    default_detail,
    header_retry_after,
)
from linkflow.nodes.sdk import (
    BinaryRef,
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

__all__ = ["CREDENTIALS", "NODES", "TELEGRAM_CREDENTIAL", "Telegram"]

BASE_URL: Final = "https://api.telegram.org"
MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
"""The Bot API's limit for a photo uploaded with sendPhoto."""
OPERATIONS: Final = ("send_message", "send_photo")


def _rate_limited(answer: Answer) -> bool:
    body = answer.body
    return answer.status == 429 or (isinstance(body, dict) and body.get("error_code") == 429)


def _retry_after(answer: Answer, now: datetime) -> float | None:
    body = answer.body
    parameters = body.get("parameters") if isinstance(body, dict) else None
    seconds = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return header_retry_after(answer, now)


def _refuse_not_ok(rest: Rest, operation: str, answer: Answer) -> None:
    body = answer.body
    if not isinstance(body, dict) or "result" not in body:
        raise rest.error(operation, "the answer is not a Bot API result")
    if body.get("ok") is not True:
        raise rest.error(operation, f"Telegram answered {default_detail(body) or 'not ok'}")


SERVICE: Final = Service("telegram", rate_limited=_rate_limited, retry_after=_retry_after)


def _api(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    base = f"{base_url(data, BASE_URL)}/bot{token}"
    return Rest(http, SERVICE, base, now=now, timeout_s=timeout_s, secrets=(token,),
                check=_refuse_not_ok)  # fmt: skip


async def _check(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """getMe with the token: the bot's username."""
    rest = _api(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    bot = (await rest.call("get me", "POST", "/getMe")).body["result"]
    return f"authenticated as @{bot.get('username')}"


TELEGRAM_CREDENTIAL: Final = CredentialType(
    "telegram",
    "Telegram",
    "A Telegram bot's token, from @BotFather.",
    (
        CredentialField(
            "token", required=True, secret=True, description="`123456:ABC-DEF...` from @BotFather."
        ),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The Bot API server (a local Bot API server, or tests).",
        ),
    ),
    check=_check,
)


class Telegram(Node):
    type = "telegram"
    display_name = "Telegram"
    group = NodeGroup.ACTION
    description = (
        "Per item, one Bot API call (credential slot `telegram`): `send_message` sends `text` "
        "to `chat_id` (sendMessage); `send_photo` sends a photo (sendPhoto) with `caption`: "
        "the item's binary `binary_property`, uploaded, or `photo`, an HTTPS URL or a file_id. "
        "The output item is the Message Telegram returns. Telegram's errors fail the item with "
        "its description; a 429 is retryable after Telegram's `retry_after`. The bot token is "
        "never shown in errors or logs."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {"telegram": ("telegram",)}
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": ["message"], "default": "message",
                         "description": "What to act on: a message."},
            "operation": {"type": "string", "enum": list(OPERATIONS), "default": "send_message",
                          "description": "send_message or send_photo."},
            "chat_id": {"type": ["string", "integer"],
                        "description": "The chat: its numeric id, or `@channelusername`."},
            "text": {"type": "string", "minLength": 1, "maxLength": 4096,
                     "description": "send_message: the text."},
            "photo": {"type": "string", "minLength": 1,
                      "description": "send_photo: an HTTPS URL or a file_id (unset: upload "
                                     "the item's binary)."},
            "binary_property": {"type": "string", "minLength": 1, "default": "data",
                                "description": "send_photo: the item's binary to upload."},
            "caption": {"type": "string", "maxLength": 1024,
                        "description": "send_photo: the caption."},
            "parse_mode": {"type": "string", "enum": ["MarkdownV2", "HTML", "Markdown"],
                           "description": "How Telegram reads `text` or `caption`."},
            "disable_notification": {"type": "boolean", "default": False,
                                     "description": "Send silently."},
            "reply_to_message_id": {"type": "integer",
                                    "description": "Reply to this message of the chat."},
            "extra": {"type": "object", "additionalProperties": True, "default": {},
                      "description": "More fields of the Bot API method, sent as they are "
                                     "(e.g. `reply_markup`, `message_thread_id`)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["operation", "chat_id"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        if parameters.get("operation", "send_message") == "send_message" and (
            parameters.get("text") is None
        ):
            return ["text is required for send_message"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        rest: Rest | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal rest
            operation = params.text("operation", index)
            if rest is None:
                data = await ctx.credential("telegram")
                rest = _api(ctx.http(), data, ctx.now, params.number("timeout_s", index))
            if operation == "send_message":
                message = await _send_message(rest, params, index)
            else:
                message = await _send_photo(ctx, rest, params, item, index)
            return [item.derive(message, index)]

        return await amap_items(ctx, apply)


def _common(params: Params, index: int) -> JsonObject:
    fields: JsonObject = {**params.mapping("extra", index), "chat_id": params.get("chat_id", index)}
    for name in ("parse_mode", "reply_to_message_id"):
        value = params.get(name, index)
        if value is not None:
            fields[name] = value
    if params.flag("disable_notification", index):
        fields["disable_notification"] = True
    return fields


async def _send_message(rest: Rest, params: Params, index: int) -> JsonObject:
    body = {**_common(params, index), "text": params.text("text", index)}
    result: JsonObject = (await rest.call("send message", "POST", "/sendMessage", json=body)).body
    return dict(result["result"])


async def _send_photo(
    ctx: NodeContext, rest: Rest, params: Params, item: Item, index: int
) -> JsonObject:
    fields = _common(params, index)
    caption = params.optional_text("caption", index)
    if caption is not None:
        fields["caption"] = caption
    photo = params.optional_text("photo", index)
    if photo is not None:
        body = {**fields, "photo": photo}
        answer = await rest.call("send photo", "POST", "/sendPhoto", json=body)
        return dict(answer.body["result"])
    name = params.text("binary_property", index)
    raw = (item.binary or {}).get(name)
    if raw is None:
        have = ", ".join(sorted(item.binary or {})) or "none"
        raise NodeError(f"telegram send photo: the item has no binary {name!r} (it has: {have})",
                        item_index=index)  # fmt: skip
    ref = BinaryRef.from_json(raw)
    if ref.size > MAX_PHOTO_BYTES:
        raise NodeError(f"telegram send photo: the photo is larger than {MAX_PHOTO_BYTES} bytes",
                        item_index=index)  # fmt: skip
    content = await ctx.blobs.get(ref)
    # Multipart fields are text: objects (reply_markup) as JSON, as the Bot API reads them.
    form = {key: value if isinstance(value, str) else canonical_json(value)
            for key, value in fields.items()}  # fmt: skip
    files = {"photo": (ref.file_name or name, content, ref.mime_type)}
    answer = await rest.call("send photo", "POST", "/sendPhoto", data=form, files=files)
    return dict(answer.body["result"])


NODES: tuple[type[Node], ...] = (Telegram,)
CREDENTIALS: tuple[CredentialType, ...] = (TELEGRAM_CREDENTIAL,)
