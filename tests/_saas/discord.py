"""A fake of Discord's HTTP API (https://discord.com/developers/docs/reference) on loopback.

What it speaks, as Discord does: webhooks at `/api/webhooks/{id}/{token}` (POST
executes one: 204, or the message with `?wait=true`; `thread_id` in the query; GET
reads the webhook), bots at `/api/v10/...` with `Authorization: Bot <token>`
(`GET /users/@me`, `POST /channels/{id}/messages`); errors as `{"message", "code"}`
with Discord's JSON error codes (10003 Unknown Channel, 10015 Unknown Webhook, 50006
empty message, 50027 Invalid Webhook Token). A 429 is staged by a test
(`fail_next(rate_limited(1.5))`): Discord's body with a fractional `retry_after`,
`Retry-After` rounded up, and `X-RateLimit-Scope`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["BOT_TOKEN", "CHANNEL", "WEBHOOK_ID", "WEBHOOK_TOKEN", "FakeDiscord", "fake_discord",
           "rate_limited"]  # fmt: skip

BOT_TOKEN: Final = "MTAwMDAwMDAwMDAwMDAwMDAx.GfakeL.loopback-bot-token-value"
CHANNEL: Final = "1100000000000000001"
WEBHOOK_ID: Final = "1200000000000000001"
WEBHOOK_TOKEN: Final = "whTokenLoopback_0123456789abcdefghijklmnopqrstuvwxyz"
BOT_USER: Final = {"id": "1000000000000000001", "username": "LinkFlow Bot", "bot": True}
_WEBHOOK = re.compile(r"/api/webhooks/(\d+)/([^/]+)")
_MESSAGES = re.compile(r"/api/v10/channels/(\d+)/messages")


def rate_limited(retry_after_s: float) -> Reply:
    return Reply.json({"message": "You are being rate limited.", "retry_after": retry_after_s,
                       "global": False}, 429,
                      **{"Retry-After": str(math.ceil(retry_after_s)),
                         "X-RateLimit-Scope": "user"})  # fmt: skip


def _error(status: int, code: int, message: str) -> Reply:
    return Reply.json({"message": message, "code": code}, status)


class FakeDiscord(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        """Every message created, as Discord returned it."""
        self._ids = itertools.count(1300000000000000001)

    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    def handle(self, request: Recorded) -> Reply:
        hook = _WEBHOOK.fullmatch(request.path)
        if hook is not None:
            return self._webhook(request, hook.group(1), hook.group(2))
        if request.path.startswith("/api/v10/"):
            if request.headers.get("authorization") != f"Bot {BOT_TOKEN}":
                return _error(401, 0, "401: Unauthorized")
            if request.method == "GET" and request.path == "/api/v10/users/@me":
                return Reply.json({**BOT_USER, "discriminator": "0"})
            channel = _MESSAGES.fullmatch(request.path)
            if request.method == "POST" and channel is not None:
                if channel.group(1) != CHANNEL:
                    return _error(404, 10003, "Unknown Channel")
                return self._create(request, author=dict(BOT_USER))
        return _error(404, 0, "404: Not Found")

    def _webhook(self, request: Recorded, hook_id: str, token: str) -> Reply:
        if hook_id != WEBHOOK_ID:
            return _error(404, 10015, "Unknown Webhook")
        if token != WEBHOOK_TOKEN:
            return _error(401, 50027, "Invalid Webhook Token")
        if request.method == "GET":
            return Reply.json({"id": WEBHOOK_ID, "type": 1, "name": "Deploys",
                               "channel_id": CHANNEL, "guild_id": "1400000000000000001",
                               "token": WEBHOOK_TOKEN})  # fmt: skip
        if request.method != "POST":
            return _error(405, 0, "405: Method Not Allowed")
        body = body_json(request) or {}
        author = {"id": WEBHOOK_ID, "username": body.get("username") or "Deploys", "bot": True}
        created = self._create(request, author=author, webhook_id=WEBHOOK_ID)
        if request.query.get("wait") != ["true"] or created.status != 200:
            return created if created.status != 200 else Reply(204)
        return created

    def _create(self, request: Recorded, **fields: Any) -> Reply:
        body = body_json(request)
        if not isinstance(body, dict):
            return _error(400, 50109, "The request body contains invalid JSON.")
        if not body.get("content") and not body.get("embeds"):
            return _error(400, 50006, "Cannot send an empty message")
        thread = request.query.get("thread_id", [None])[0]
        message = {"id": str(next(self._ids)), "type": 0, "channel_id": thread or CHANNEL,
                   "content": body.get("content", ""), "embeds": body.get("embeds", []),
                   "tts": bool(body.get("tts")), "timestamp": "2026-01-01T12:00:00.000000+00:00",
                   **fields}  # fmt: skip
        self.messages.append(message)
        return Reply.json(message)


@contextmanager
def fake_discord() -> Iterator[FakeDiscord]:
    with run_fake(FakeDiscord()) as fake:
        yield fake
