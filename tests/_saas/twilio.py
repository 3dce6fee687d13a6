"""A fake of Twilio's REST API (https://www.twilio.com/docs/messaging/api/message-resource)
on loopback.

What it speaks, as Twilio does: HTTP basic auth `AccountSid:AuthToken`; `GET
/2010-04-01/Accounts/{Sid}.json` (the account); `POST
/2010-04-01/Accounts/{Sid}/Messages.json` with form-encoded `To`, `From` (one of the
account's numbers) or `MessagingServiceSid`, `Body`, and `MediaUrl` repeated per URL,
answering 201 with the Message resource (status `queued`, or `accepted` through a
service). Errors are `{"code", "message", "more_info", "status"}` (20003 Authenticate,
20404 not found, 21211 invalid To, 21602 no body, 21603 no From, 21606 a From not
the account's). A 429 is staged by a test (`fail_next(too_many_requests(2))`):
Twilio's 20429 with Retry-After.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qs

from tests._saas._base import FakeApi, Recorded, Reply, run_fake

__all__ = [
    "ACCOUNT_SID", "AUTH_TOKEN", "NUMBER", "SERVICE_SID", "FakeTwilio", "error", "fake_twilio",
    "too_many_requests",
]  # fmt: skip

ACCOUNT_SID: Final = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN: Final = "loopbacktoken0000000000000000000"
NUMBER: Final = "+15005550006"
"""The account's one phone number."""
SERVICE_SID: Final = "MG" + "fedcba9876543210" * 2
DATE: Final = "Thu, 01 Jan 2026 12:00:00 +0000"
_ACCOUNT = re.compile(r"/2010-04-01/Accounts/([^/]+)\.json")
_MESSAGES = re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages\.json")
_E164 = re.compile(r"(?:whatsapp:)?\+[1-9]\d{1,14}")


def error(status: int, code: int, message: str, **headers: str) -> Reply:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return Reply.json(body, status, **headers)


def too_many_requests(retry_after_s: int | None = None) -> Reply:
    headers = {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return error(429, 20429, "Too Many Requests", **headers)


class FakeTwilio(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self._sids = itertools.count(1)
        self.messages: list[dict[str, Any]] = []
        """What was sent, in order."""

    def handle(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != _basic(ACCOUNT_SID, AUTH_TOKEN):
            reply = error(401, 20003, "Authenticate")
            return Reply(reply.status, reply.body, {"WWW-Authenticate": 'Basic realm="Twilio API"'},
                         reply.content_type)  # fmt: skip
        account = _ACCOUNT.fullmatch(request.path)
        if request.method == "GET" and account is not None and account.group(1) == ACCOUNT_SID:
            return Reply.json({
                "sid": ACCOUNT_SID, "friendly_name": "LinkFlow test", "status": "active",
                "type": "Full", "auth_token": AUTH_TOKEN, "date_created": DATE,
                "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}.json",
            })  # fmt: skip
        messages = _MESSAGES.fullmatch(request.path)
        if request.method == "POST" and messages is not None and messages.group(1) == ACCOUNT_SID:
            return self._send(parse_qs(request.body.decode(), keep_blank_values=True))
        return error(404, 20404, f"The requested resource {request.path} was not found")

    def _send(self, form: dict[str, list[str]]) -> Reply:
        def one(name: str) -> str | None:
            return form[name][0] if form.get(name) else None

        to, sender, service, body = one("To"), one("From"), one("MessagingServiceSid"), one("Body")
        media = form.get("MediaUrl", [])
        if to is None:
            return error(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if sender is None and service is None:
            return error(400, 21603, "A 'From' phone number is required.")
        if sender is not None and sender != NUMBER:
            return error(400, 21606, f"The From phone number {sender} is not a valid, "
                                     "SMS-capable inbound phone number or short code for your "
                                     "account.")  # fmt: skip
        if service is not None and service != SERVICE_SID:
            return error(404, 20404, f"The requested resource /Services/{service} was not found")
        if not body and not media:
            return error(400, 21602, "Message body is required.")
        sid = f"SM{next(self._sids):032x}"
        uri = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}"
        message = {
            "account_sid": ACCOUNT_SID, "api_version": "2010-04-01", "body": body or "",
            "date_created": DATE, "date_sent": None, "date_updated": DATE,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender, "messaging_service_sid": service, "num_media": str(len(media)),
            "num_segments": str(max(1, -(-len(body or "") // 160))), "price": None,
            "price_unit": "USD", "sid": sid,
            "status": "queued" if sender is not None else "accepted",
            "subresource_uris": {"media": f"{uri}/Media.json"}, "to": to, "uri": f"{uri}.json",
        }  # fmt: skip
        self.messages.append({**message, "media_url": media})
        return Reply.json(message, 201)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    with run_fake(FakeTwilio()) as fake:
        yield fake
