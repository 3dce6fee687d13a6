"""A fake of Slack's Web API (https://api.slack.com/web) on loopback.

What it speaks, as Slack does: methods at `/api/<method>`; the token in
`Authorization: Bearer` (none: `not_authed`, another: `invalid_auth`); HTTP 200
with `{"ok": false, "error": "<code>"}` for a refused call; reads as GET query
parameters, writes as JSON bodies (or forms); `conversations.list` and
`users.list` paged by `limit` and an opaque base64 `cursor`, the next one in
`response_metadata.next_cursor` ("" on the last page); message timestamps as ids.
Rate limits are staged by a test (`fail_next(rate_limited(3))`): HTTP 429 with
Retry-After, as Slack answers them.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["BOT_USER", "TOKEN", "FakeSlack", "fake_slack", "rate_limited"]

TOKEN: Final = "xoxb-1111-2222-loopbackTOKEN"
BOT_USER: Final = "U0BOT"
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,79}")


def rate_limited(retry_after_s: int) -> Reply:
    return Reply.json({"ok": False, "error": "ratelimited"}, 429,
                      **{"Retry-After": str(retry_after_s)})  # fmt: skip


def _cursor(kind: str, position: int) -> str:
    return base64.b64encode(f"{kind}:{position}".encode()).decode()


class FakeSlack(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.channels: list[dict[str, Any]] = []
        self.users: list[dict[str, Any]] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.cursors: list[str] = []
        """Every next_cursor answered, in order."""
        self._clock = itertools.count(1)
        self._ids = itertools.count(1)
        for name in ("general", "random"):
            self.add_channel(name)
        self.add_user("U0BOT", "linkflow_bot", is_bot=True)

    # -- state ------------------------------------------------------------------------

    def add_channel(self, name: str, *, is_private: bool = False) -> dict[str, Any]:
        channel = {
            "id": f"C{next(self._ids):08d}", "name": name, "is_channel": True,
            "is_private": is_private, "is_archived": False, "created": 1700000000,
            "creator": BOT_USER, "num_members": 1,
        }  # fmt: skip
        self.channels.append(channel)
        return channel

    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> dict[str, Any]:
        user = {"id": user_id, "team_id": "T0LINK", "name": name, "deleted": False,
                "real_name": name.title(), "is_bot": is_bot,
                "profile": {"real_name": name.title(), "display_name": name}}  # fmt: skip
        self.users.append(user)
        return user

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == f"/api/{method}"]

    # -- the API ----------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        method = request.path.removeprefix("/api/")
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if not request.path.startswith("/api/") or handler is None:
            return Reply.json({"ok": False, "error": "unknown_method"}, 404)
        auth = request.headers.get("authorization", "")
        if not auth:
            return _refused("not_authed")
        if auth != f"Bearer {TOKEN}":
            return _refused("invalid_auth")
        args = _arguments(request)
        if args is None:
            return _refused("invalid_json")
        result: dict[str, Any] | Reply = handler(args)
        if isinstance(result, Reply):
            return result
        return Reply.json({"ok": True, **result})

    def _auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"url": "https://linkflow.slack.com/", "team": "LinkFlow", "user": "linkflow_bot",
                "team_id": "T0LINK", "user_id": BOT_USER, "bot_id": "B0BOT"}  # fmt: skip

    def _channel(self, ref: Any) -> dict[str, Any] | None:
        name = str(ref).removeprefix("#")
        return next((c for c in self.channels if ref == c["id"] or c["name"] == name), None)

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        channel = self._channel(args.get("channel"))
        if channel is None:
            return _refused("channel_not_found")
        if not args.get("text") and not args.get("blocks"):
            return _refused("no_text")
        ts = f"1700000000.{next(self._clock):06d}"
        message = {"type": "message", "user": BOT_USER, "bot_id": "B0BOT", "ts": ts,
                   "text": args.get("text", ""), "blocks": args.get("blocks", []),
                   **({"thread_ts": args["thread_ts"]} if "thread_ts" in args else {})}  # fmt: skip
        self.messages[(channel["id"], ts)] = message
        return {"channel": channel["id"], "ts": ts, "message": message}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None:
            return _refused("message_not_found")
        message.update({k: args[k] for k in ("text", "blocks") if k in args})
        return {"channel": args["channel"], "ts": args["ts"], "text": message["text"],
                "message": message}  # fmt: skip

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        key = (str(args.get("channel")), str(args.get("ts")))
        if self.messages.pop(key, None) is None:
            return _refused("message_not_found")
        return {"channel": key[0], "ts": key[1]}

    def _conversations_create(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        name = str(args.get("name") or "")
        if not _NAME.fullmatch(name):
            return _refused("invalid_name_specials")
        if any(c["name"] == name for c in self.channels):
            return _refused("name_taken")
        private = args.get("is_private") in (True, "true")
        return {"channel": self.add_channel(name, is_private=private)}

    def _conversations_list(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        types = str(args.get("types") or "public_channel").split(",")
        found = [c for c in self.channels
                 if ("private_channel" if c["is_private"] else "public_channel") in types
                 and not (c["is_archived"] and args.get("exclude_archived") == "true")]  # fmt: skip
        return self._page("channels", found, args)

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        user = next((u for u in self.users if u["id"] == args.get("user")), None)
        return {"user": user} if user is not None else _refused("user_not_found")

    def _users_list(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        return self._page("members", self.users, args)

    def _page(
        self, key: str, records: list[dict[str, Any]], args: dict[str, Any]
    ) -> dict[str, Any] | Reply:
        limit = min(int(args.get("limit") or 100), 1000)
        start = 0
        if args.get("cursor"):
            try:
                kind, _, position = base64.b64decode(args["cursor"]).decode().partition(":")
                start = int(position)
            except ValueError:
                return _refused("invalid_cursor")
            if kind != key:
                return _refused("invalid_cursor")
        chunk = records[start : start + limit]
        more = start + limit < len(records)
        next_cursor = _cursor(key, start + limit) if more else ""
        if next_cursor:
            self.cursors.append(next_cursor)
        return {
            key: json.loads(json.dumps(chunk)),
            "response_metadata": {"next_cursor": next_cursor},
        }


def _refused(code: str, **extra: Any) -> Reply:
    return Reply.json({"ok": False, "error": code, **extra})


def _arguments(request: Recorded) -> dict[str, Any] | None:
    """A method's arguments: the query, then a JSON or form body, as Slack reads them."""
    args: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
    content_type = request.headers.get("content-type", "")
    if request.body and content_type.startswith("application/json"):
        body = body_json(request)
        if not isinstance(body, dict):
            return None
        args.update(body)
    elif request.body:
        args.update(parse_qsl(request.body.decode()))
    return args


@contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    with run_fake(FakeSlack()) as fake:
        yield fake
