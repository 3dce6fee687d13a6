"""A fake of SendGrid's v3 Web API (https://www.twilio.com/docs/sendgrid/api-reference) on
loopback, for the operations the `sendgrid` node and credential use.

What it speaks, as SendGrid does: `POST /v3/mail/send` with a JSON mail document,
answered 202 with an empty body and the message's id in `X-Message-Id`; `GET
/v3/scopes` listing the key's scopes; the key in `Authorization: Bearer` (none or
unknown: 401, a key without the `mail.send` scope: 403); and every refusal in
SendGrid's error shape `{"errors": [{"message", "field", "help"}]}`, with the
validation messages SendGrid gives for a missing from, subject, content or to, and
attachments that are not base64. Rate limits are staged by a test
(`fail_next(rate_limited(...))`): 429 with SendGrid's `X-RateLimit-*` headers and,
optionally, Retry-After.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from tests._saas._base import FakeApi, Recorded, Reply, body_json, run_fake

__all__ = ["KEY", "LIMITED_KEY", "FakeSendGrid", "errors", "fake_sendgrid", "rate_limited"]

KEY: Final = "SG.loopback-full-access.key-value-0123456789"
LIMITED_KEY: Final = "SG.loopback-stats-only.key-value-9876543210"
"""A key whose scopes do not include mail.send."""
_SCOPES: Final = {
    KEY: ["mail.send", "alerts.read", "stats.read", "templates.read"],
    LIMITED_KEY: ["stats.read"],
}
_HELP: Final = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


def errors(status: int, *problems: tuple[str, str | None], **headers: str) -> Reply:
    """SendGrid's error answer: one `{"message", "field", "help"}` per problem."""
    body = {"errors": [{"message": message, "field": field, "help": f"{_HELP}#{field}"
                        if field else None} for message, field in problems]}  # fmt: skip
    return Reply.json(body, status, **headers)


def rate_limited(reset_epoch_s: int, retry_after_s: int | None = None) -> Reply:
    headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": str(reset_epoch_s)}  # fmt: skip
    if retry_after_s is not None:
        headers["Retry-After"] = str(retry_after_s)
    return errors(429, ("too many requests", None), **headers)


class FakeSendGrid(FakeApi):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        """The mail documents accepted, each with the `message_id` it was given."""
        self._ids = itertools.count(1)

    def calls(self, path: str) -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

    def handle(self, request: Recorded) -> Reply:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if key not in _SCOPES:
            return errors(401, ("The provided authorization grant is invalid, expired, or "
                                "revoked", None))  # fmt: skip
        if (request.method, request.path) == ("GET", "/v3/scopes"):
            return Reply.json({"scopes": _SCOPES[key]})
        if (request.method, request.path) != ("POST", "/v3/mail/send"):
            return errors(404, ("resource not found", None))
        if "mail.send" not in _SCOPES[key]:
            return errors(403, ("access forbidden", None))
        if not request.headers.get("content-type", "").startswith("application/json"):
            return errors(415, ("Content-Type should be application/json.", None))
        mail = body_json(request)
        if not isinstance(mail, dict):
            return errors(400, ("Bad Request", None))
        problems = _problems(mail)
        if problems:
            return errors(400, *problems)
        message_id = f"lf{next(self._ids):06d}LoopbackSG"
        self.sent.append({**mail, "message_id": message_id})
        return Reply(202, b"", {"X-Message-Id": message_id})


def _problems(mail: dict[str, Any]) -> list[tuple[str, str | None]]:
    """SendGrid's validation of a mail document, for the rules the node can break."""
    found: list[tuple[str, str | None]] = []
    sender = mail.get("from")
    if not isinstance(sender, dict) or "@" not in str(sender.get("email", "")):
        found.append(("The from object must be provided for every email send. It is an object "
                      "that requires the email parameter, but may also contain a name "
                      "parameter.", "from"))  # fmt: skip
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        found.append(("The personalizations field is required and must have at least one "
                      "personalization.", "personalizations"))  # fmt: skip
        personalizations = []
    for n, personalization in enumerate(personalizations):
        if not personalization.get("to"):
            found.append(("The to array is required for all personalization objects, and must "
                          "have at least one email object with a valid email address.",
                          f"personalizations.{n}.to"))  # fmt: skip
    template = mail.get("template_id")
    if not template and not mail.get("subject"):
        found.append(("The subject is required. You can get around this requirement if you "
                      "use a template with a subject defined or if every personalization has "
                      "a subject defined.", "subject"))  # fmt: skip
    if not template and not mail.get("content"):
        found.append(("Unless a valid template_id is provided, the content parameter is "
                      "required. There must be at least one defined content block. We "
                      "typically suggest both text/plain and text/html blocks are included, "
                      "but only one block is required.", "content"))  # fmt: skip
    content = mail.get("content") or []
    if len(content) > 1 and content[0].get("type") != "text/plain":
        found.append(("If present, text/plain content must be first, followed by text/html, "
                      "followed by any other content.", "content"))  # fmt: skip
    for n, attachment in enumerate(mail.get("attachments") or []):
        try:
            base64.b64decode(str(attachment.get("content", "")), validate=True)
        except binascii.Error:
            found.append(("The attachment content must be base64 encoded.",
                          f"attachments.{n}.content"))  # fmt: skip
    return found


@contextmanager
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    with run_fake(FakeSendGrid()) as fake:
        yield fake
