"""The Discord integration: the `discord` node (send a message) and two credentials, a
channel's webhook URL (`discord_webhook`) or a bot token (`discord_bot`), on Discord's
HTTP API called with httpx through `ctx.http()`.

Decisions:
- No SDK: discord.py and its forks run a gateway connection and their own aiohttp
  session, neither guarded nor needed to send a message.
- The credential in the slot picks the way: a webhook posts to its URL with
  `?wait=true` (so Discord returns the message rather than 204); a bot posts to
  `/channels/{channel_id}/messages` with `Authorization: Bot <token>` and the
  `DiscordBot (url, version)` User-Agent Discord requires of bots.
- A webhook URL holds its token in the path: it is a secret field, never quoted
  (masked as `***` should anything echo it).
- Discord's errors are `{"code", "message"}`: both are in the node error. A 429's
  body says `retry_after` in seconds (fractional, more precise than the
  Retry-After header), which becomes the retry delay.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

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

__all__ = ["CREDENTIALS", "DISCORD_BOT", "DISCORD_WEBHOOK", "NODES", "Discord"]

BASE_URL: Final = "https://discord.com/api/v10"
USER_AGENT: Final = "DiscordBot (LinkFlow, 0.1.0)"
"""The form Discord requires of bots, `DiscordBot ($url, $versionNumber)`: a self-hosted
instance has no URL of its own to give, so the product's name stands in for it."""
MAX_EMBEDS: Final = 10


def _detail(body: Any) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return None
    code = body.get("code")
    return f"{body['message']} (code {code})" if code else str(body["message"])


def _retry_after(answer: Answer, now: datetime) -> float | None:
    body = answer.body
    seconds = body.get("retry_after") if isinstance(body, dict) else None
    if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds)
    return header_retry_after(answer, now)


SERVICE: Final = Service("discord", detail=_detail, retry_after=_retry_after)


def _webhook(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> tuple[Rest, str]:
    url = str(data.get("webhook_url") or "").rstrip("/")
    token = urlsplit(url).path.rsplit("/", 1)[-1]
    rest = Rest(http, SERVICE, "", now=now, timeout_s=timeout_s, secrets=(url, token))
    return rest, url


def _bot(
    http: httpx.AsyncClient, data: Mapping[str, Any], now: Callable[[], datetime], timeout_s: float
) -> Rest:
    token = str(data.get("token") or "")
    headers = {"Authorization": f"Bot {token}", "User-Agent": USER_AGENT}
    return Rest(http, SERVICE, base_url(data, BASE_URL), now=now, timeout_s=timeout_s,
                headers=headers, secrets=(token,))  # fmt: skip


async def _check_webhook(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET the webhook: its name and channel."""
    rest, url = _webhook(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    hook = (await rest.call("webhook get", "GET", url, absolute=True)).body
    return f"webhook {hook.get('name')!r} of channel {hook.get('channel_id')}"


async def _check_bot(ctx: CheckContext, data: Mapping[str, Any]) -> str:
    """GET /users/@me with the token: the bot's name."""
    rest = _bot(ctx.http(), data, lambda: datetime.now(UTC), ctx.timeout_s)
    me = (await rest.call("user get", "GET", "/users/@me")).body
    return f"authenticated as {me.get('username')}"


DISCORD_WEBHOOK: Final = CredentialType(
    "discord_webhook",
    "Discord webhook",
    "A channel's webhook URL (channel settings, Integrations, Webhooks).",
    (
        CredentialField(
            "webhook_url",
            "url",
            required=True,
            secret=True,
            description="https://discord.com/api/webhooks/<id>/<token>: it holds the token.",
        ),
    ),
    check=_check_webhook,
)
DISCORD_BOT: Final = CredentialType(
    "discord_bot",
    "Discord bot",
    "A Discord application's bot token (Developer Portal, Bot).",
    (
        CredentialField("token", required=True, secret=True, description="The bot's token."),
        CredentialField(
            "base_url",
            "url",
            default=BASE_URL,
            description="The HTTP API's address, with its version (another one for tests).",
        ),
    ),
    check=_check_bot,
)


class Discord(Node):
    type = "discord"
    display_name = "Discord"
    group = NodeGroup.ACTION
    description = (
        "Per item, sends a Discord message (credential slot `discord`): `content` and/or "
        "`embeds`, through a webhook (`discord_webhook`: as `username` with `avatar_url`, in "
        "`thread_id`) or as a bot (`discord_bot`: to `channel_id`). The output item is the "
        "message Discord returns. Discord's errors fail the item with its code and message; a "
        "429 is retryable after Discord's `retry_after`."
    )
    credential_slots: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "discord": ("discord_webhook", "discord_bot")
    }
    parameters_schema: ClassVar[JsonObject] = {
        "type": "object",
        "properties": {
            "resource": {"type": "string", "enum": ["message"], "default": "message",
                         "description": "What to act on: a message."},
            "operation": {"type": "string", "enum": ["send"], "default": "send",
                          "description": "send: post a message."},
            "content": {"type": "string", "maxLength": 2000,
                        "description": "The message text (Discord markdown)."},
            "embeds": {"type": "array", "items": {"type": "object"}, "maxItems": MAX_EMBEDS,
                       "description": "Rich embeds (`title`, `description`, `fields`...)."},
            "tts": {"type": "boolean", "default": False,
                    "description": "Read the message aloud (text-to-speech)."},
            "channel_id": {"type": "string", "pattern": "^[0-9]{1,20}$",
                           "description": "bot: the channel to post to."},
            "username": {"type": "string", "minLength": 1, "maxLength": 80,
                         "description": "webhook: the name shown instead of the webhook's."},
            "avatar_url": {"type": "string", "minLength": 1,
                           "description": "webhook: the avatar shown instead of the webhook's."},
            "thread_id": {"type": "string", "pattern": "^[0-9]{1,20}$",
                          "description": "webhook: post in this thread of the channel."},
            "extra": {"type": "object", "additionalProperties": True, "default": {},
                      "description": "More fields of the message, sent as they are (e.g. "
                                     "`allowed_mentions`, `message_reference`)."},
            "timeout_s": TIMEOUT_PARAMETER,
        },
        "required": ["operation"],
        "additionalProperties": False,
    }  # fmt: skip

    def check(self, parameters: Mapping[str, Any]) -> list[str]:
        if parameters.get("content") is None and not parameters.get("embeds"):
            return ["one of content and embeds is required"]
        return []

    async def run(self, ctx: NodeContext) -> NodeResult:
        params = Params(ctx, self)
        data: JsonObject | None = None

        async def apply(item: Item, index: int) -> Sequence[Item]:
            nonlocal data
            if data is None:
                data = await ctx.credential("discord")
            return [item.derive(await _send(ctx, data, params, index), index)]

        return await amap_items(ctx, apply)


def _message(params: Params, index: int) -> JsonObject:
    body: JsonObject = dict(params.mapping("extra", index))
    content = params.optional_text("content", index)
    if content is not None:
        body["content"] = content
    embeds = params.get("embeds", index)
    if embeds:
        body["embeds"] = embeds
    if content is None and not embeds:
        raise NodeError("discord message send: one of content and embeds is required")
    if params.flag("tts", index):
        body["tts"] = True
    return body


async def _send(ctx: NodeContext, data: JsonObject, params: Params, index: int) -> JsonObject:
    timeout_s = params.number("timeout_s", index)
    body = _message(params, index)
    if data.get("type") == "discord_bot":
        channel = params.optional_text("channel_id", index)
        if not channel:
            raise NodeError("discord message send: channel_id is required with a bot credential")
        rest = _bot(ctx.http(), data, ctx.now, timeout_s)
        answer = await rest.call("message send", "POST", f"/channels/{channel}/messages",
                                 json=body)  # fmt: skip
        return dict(answer.body)
    rest, url = _webhook(ctx.http(), data, ctx.now, timeout_s)
    for name in ("username", "avatar_url"):
        value = params.optional_text(name, index)
        if value is not None:
            body[name] = value
    query = {"wait": True, "thread_id": params.optional_text("thread_id", index)}
    answer = await rest.call("message send", "POST", url, params=query, json=body, absolute=True)
    if not isinstance(answer.body, dict):
        raise rest.error("message send", "Discord returned no message")
    return dict(answer.body)


NODES: tuple[type[Node], ...] = (Discord,)
CREDENTIALS: tuple[CredentialType, ...] = (DISCORD_WEBHOOK, DISCORD_BOT)
