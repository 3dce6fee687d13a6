"""A fake of Telegram's Bot API (https://core.telegram.org/bots/api) on loopback.

What it speaks, as Telegram does: methods at `/bot<token>/<method>`, parameters as
a query string, JSON, a URL-encoded form or multipart/form-data (files as parts);
answers `{"ok": true, "result": ...}`, or `{"ok": false, "error_code", "description"}`
with the same HTTP status (401 Unauthorized for a wrong token, 404 Not Found for an
unknown method, 400 "Bad Request: chat not found"). A 429 is staged by a test
(`fail_next(too_many_requests(5))`): Telegram's body with `parameters.retry_after`
and no Retry-After header.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl

from tests._http_server import form_parts
from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["BOT", "TOKEN", "FakeTelegram", "fake_telegram", "too_many_requests"]

TOKEN: Final = "7000000001:AAFakeLoopbackTokenForTests_0123456"
BOT: Final = {"id": 7000000001, "is_bot": True, "first_name": "LinkFlow",
              "username": "linkflow_test_bot"}  # fmt: skip
DATE: Final = 1767268800


def too_many_requests(retry_after_s: int) -> Reply:
    return Reply.json({"ok": False, "error_code": 429,
                       "description": f"Too Many Requests: retry after {retry_after_s}",
                       "parameters": {"retry_after": retry_after_s}}, 429)  # fmt: skip


def _error(status: int, description: str) -> Reply:
    return Reply.json({"ok": False, "error_code": status, "description": description}, status)


class FakeTelegram(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.chats: dict[str, dict[str, Any]] = {
            "42": {"id": 42, "type": "private", "first_name": "Ada", "username": "ada"},
            "@linkflow_news": {"id": -1001234567890, "type": "channel", "title": "News",
                               "username": "linkflow_news"},
        }  # fmt: skip
        self.sent: list[dict[str, Any]] = []
        """Every message sent, as Telegram returned it."""
        self.uploads: list[tuple[str | None, str | None, bytes]] = []
        """Every photo uploaded: (file name, content type, bytes)."""
        self._ids = itertools.count(100)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.rsplit("/", 1)[-1] == method]

    def handle(self, request: Recorded) -> Reply:
        prefix, _, method = request.path.lstrip("/").partition("/")
        if prefix != f"bot{TOKEN}":
            return _error(401, "Unauthorized")
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        args = _arguments(request)
        result = handler(args)
        return result if isinstance(result, Reply) else Reply.json({"ok": True, "result": result})

    def _getMe(self, _: dict[str, Any]) -> dict[str, Any]:
        return dict(BOT)

    def _message(self, args: dict[str, Any], **content: Any) -> dict[str, Any] | Reply:
        chat = self.chats.get(str(args.get("chat_id")))
        if chat is None:
            return _error(400, "Bad Request: chat not found")
        message = {"message_id": next(self._ids), "from": dict(BOT), "chat": chat, "date": DATE,
                   **content}  # fmt: skip
        if args.get("reply_to_message_id") is not None:
            message["reply_to_message"] = {"message_id": int(args["reply_to_message_id"])}
        self.sent.append(message)
        return message

    def _sendMessage(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        text = args.get("text")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if args.get("parse_mode") not in (None, "MarkdownV2", "HTML", "Markdown"):
            return _error(400, "Bad Request: unsupported parse_mode")
        return self._message(args, text=text)

    def _sendPhoto(self, args: dict[str, Any]) -> dict[str, Any] | Reply:
        photo = args.get("photo")
        if isinstance(photo, tuple):
            self.uploads.append(photo)
            file_id = f"AgACAgUpload{len(self.uploads)}"
        elif isinstance(photo, str) and photo:
            file_id = photo if not photo.startswith("https://") else f"AgACAgUrl{len(self.sent)}"
        else:
            return _error(400, "Bad Request: there is no photo in the request")
        sizes = [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 90, "height": 90,
                  "file_size": 1024}]  # fmt: skip
        extra = {"caption": args["caption"]} if args.get("caption") else {}
        return self._message(args, photo=sizes, **extra)


def _arguments(request: Recorded) -> dict[str, Any]:
    """Parameters from the query and the body, whatever its encoding; a file part as
    (file name, content type, bytes)."""
    args: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
    content_type = request.headers.get("content-type", "")
    if not request.body:
        return args
    if content_type.startswith("application/json"):
        args.update(body_json(request) or {})
    elif content_type.startswith("multipart/form-data"):
        for name, (file_name, part_type, payload) in form_parts(request).items():
            args[name] = (file_name, part_type, payload) if file_name else payload.decode()
    else:
        args.update(parse_qsl(request.body.decode()))
    return args


@contextmanager
def fake_telegram() -> Iterator[FakeTelegram]:
    with run_fake(FakeTelegram()) as fake:
        yield fake
